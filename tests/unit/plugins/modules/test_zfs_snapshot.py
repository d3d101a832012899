# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zfs_snapshot against scripted zfs commands (cases in test_zfs_snapshot.yml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.freebsd_ha.storage.plugins.modules import zfs_snapshot
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import load_cases

IDS, CASES = load_cases(Path(__file__).with_suffix(".yml"))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_zfs_snapshot(run_module, freeze_clock, case):
    freeze_clock(zfs_snapshot)
    result, script = run_module(
        zfs_snapshot, case["params"], case.get("commands", []), check_mode=case.get("check_mode", False), diff=True
    )
    for key, value in case["expected"].items():
        assert result[key] == value, key
    if "msg_startswith" in case:
        assert result["msg"].startswith(case["msg_startswith"])
    if not case.get("check_mode"):
        assert len(result["commands"]) == len(script.ran)
