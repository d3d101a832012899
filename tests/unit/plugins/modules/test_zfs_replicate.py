# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zfs_replicate against scripted zfs and ssh commands (cases in test_zfs_replicate.yml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.freebsd_ha.storage.plugins.modules import zfs_replicate
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import load_cases, read_fixture

IDS, CASES = load_cases(Path(__file__).with_suffix(".yml"))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_zfs_replicate(run_module, freeze_clock, case):
    freeze_clock(zfs_replicate)
    result, script = run_module(
        zfs_replicate, case["params"], case.get("commands", []), check_mode=case.get("check_mode", False), diff=True
    )
    for key, value in case["expected"].items():
        assert result[key] == value, key
    for key, value in case.get("plan", {}).items():
        assert result["plan"][key] == value, f"plan.{key}"
    for text in case.get("msg_contains", []):
        assert text in result["msg"]
    if "stderr_fixture" in case:
        assert result["stderr"] == read_fixture(case["stderr_fixture"])
    if case.get("check_mode"):
        assert result["commands"][len(script.ran) :] == case["planned_writes"]
    else:
        assert len(result["commands"]) == len(script.ran)
