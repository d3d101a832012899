# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zpool_import against scripted zpool commands (cases in test_zpool_import.yml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.freebsd_ha.storage.plugins.modules import zpool_import
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import check_case, load_cases

IDS, CASES = load_cases(Path(__file__).with_suffix(".yml"))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_zpool_import(run_module, case):
    result, script = run_module(
        zpool_import, case["params"], case.get("commands", []), check_mode=case.get("check_mode", False), diff=True
    )
    check_case(result, script, case["expect"], ("diff", "pool"))
    if "importable_names" in case["expect"]:
        assert [entry["name"] for entry in result["importable"]] == case["expect"]["importable_names"]
