# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""carp against scripted ifconfig/sysctl commands (cases in test_carp.yml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.freebsd_ha.storage.plugins.modules import carp
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import check_case, load_cases

IDS, CASES = load_cases(Path(__file__).with_suffix(".yml"))
RESULT_KEYS = ("diff", "state", "advskew", "advbase", "addresses", "demotion", "preempt")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_carp(run_module, monkeypatch, case):
    slept = []
    monkeypatch.setattr(carp.time, "sleep", slept.append)
    result, script = run_module(
        carp, case["params"], case.get("commands", []), check_mode=case.get("check_mode", False), diff=True
    )
    expect = case["expect"]
    check_case(result, script, expect, RESULT_KEYS)
    if "vhids" in expect:
        assert [(v["vhid"], v["state"]) for v in result["vhids"]] == [tuple(v) for v in expect["vhids"]]
    assert slept == expect.get("slept", [])
