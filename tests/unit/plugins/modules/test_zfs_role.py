# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zfs_role against scripted zfs commands (cases in test_zfs_role.yml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.freebsd_ha.storage.plugins.modules import zfs_role
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import check_case, load_cases

IDS, CASES = load_cases(Path(__file__).with_suffix(".yml"))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_zfs_role(run_module, case):
    result, script = run_module(
        zfs_role, case["params"], case.get("commands", []), check_mode=case.get("check_mode", False), diff=True
    )
    expect = case["expect"]
    check_case(result, script, expect, ("diff", "datasets", "snapshot"))
    for key, value in expect.get("predicted", {}).items():
        assert result["datasets"][0][key] == value
