# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zfs_dataset against scripted zfs commands (cases in test_zfs_dataset.yml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.module_utils.common.warnings import get_warning_messages

from ansible_collections.freebsd_ha.storage.plugins.modules import zfs_dataset
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import check_case, load_cases

IDS, CASES = load_cases(Path(__file__).with_suffix(".yml"))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_zfs_dataset(run_module, case):
    result, script = run_module(
        zfs_dataset, case["params"], case.get("commands", []), check_mode=case.get("check_mode", False), diff=True
    )
    check_case(result, script, case["expect"], ("diff", "dataset"))
    if "warning_contains" in case["expect"]:
        assert any(case["expect"]["warning_contains"] in w for w in get_warning_messages())
