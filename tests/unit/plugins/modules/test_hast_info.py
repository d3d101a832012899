# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""hast_info against scripted hastctl/sysctl commands (cases in test_hast_info.yml)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ansible.module_utils import basic

from ansible_collections.freebsd_ha.storage.plugins.modules import hast_info
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import FIXTURES, load_cases

IDS, CASES = load_cases(Path(__file__).with_suffix(".yml"))
PREFIX = "FIXTURE:"


def resolve(value):
    """Replace every 'FIXTURE:<relative path>' string in value by the fixture's absolute path."""
    if isinstance(value, str) and value.startswith(PREFIX):
        return str(FIXTURES / value[len(PREFIX) :])
    if isinstance(value, list):
        return [resolve(item) for item in value]
    if isinstance(value, dict):
        return {key: resolve(item) for key, item in value.items()}
    return value


def assert_subset(expected, actual, where="result"):
    """Assert that every key of expected has the same value in actual (recursing into dicts)."""
    for key, value in expected.items():
        assert key in actual, f"{where} has no {key!r}"
        if isinstance(value, dict) and isinstance(actual[key], dict):
            assert_subset(value, actual[key], f"{where}.{key}")
        else:
            assert actual[key] == value, f"{where}.{key} is {actual[key]!r}, expected {value!r}"


def run_case(run_module, module_obj, case, monkeypatch, freeze_clock):
    """Run one YAML case in UTC at the frozen time, with /dev/hast entries faked; return (result, script)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    freeze_clock(module_obj)
    warned = []
    monkeypatch.setattr(basic.AnsibleModule, "warn", lambda self, warning, **kwargs: warned.append(warning))
    present = set(case.get("devices", []))
    if hasattr(module_obj, "device_present"):
        monkeypatch.setattr(module_obj, "device_present", lambda path: path in present)
    commands = resolve(case.get("commands", []))
    result, script = run_module(
        module_obj, resolve(case["params"]), commands, check_mode=case.get("check_mode", False), diff=True
    )
    expect = case["expect"]
    assert result["failed"] == expect.get("failed", False), result.get("msg")
    for text in expect.get("msg_contains", []):
        assert text in result["msg"]
    for text in expect.get("warnings_contain", []):
        assert any(text in warning for warning in warned), warned
    if "stderr_contains" in expect:
        assert expect["stderr_contains"] in result["stderr"]
    assert_subset(expect.get("result", {}), result)
    return result, script


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_hast_info(run_module, case, monkeypatch, freeze_clock):
    result, _script = run_case(run_module, hast_info, case, monkeypatch, freeze_clock)
    assert result.get("changed") is False or result["failed"]
    if "resource_names" in case["expect"]:
        assert list(result["resources"]) == case["expect"]["resource_names"]
