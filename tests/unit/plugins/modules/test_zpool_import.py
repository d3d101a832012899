# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zpool_import against scripted zpool commands (cases in test_zpool_import.yml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.freebsd_ha.storage.plugins.modules import zpool_import
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import load_cases

IDS, CASES = load_cases(Path(__file__).with_suffix(".yml"))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_zpool_import(run_module, case):
    result, script = run_module(
        zpool_import, case["params"], case.get("commands", []), check_mode=case.get("check_mode", False), diff=True
    )
    expect = case["expect"]
    assert result["failed"] == expect.get("failed", False), result.get("msg")
    if "changed" in expect:
        assert result["changed"] == expect["changed"]
        assert ("diff" in result) == expect["changed"]
    for text in expect.get("msg_contains", []):
        assert text in result["msg"]
    for key in ("rc", "diff", "pool"):
        if key in expect:
            assert result[key] == expect[key]
    if "importable_names" in expect:
        assert [entry["name"] for entry in result["importable"]] == expect["importable_names"]
    if "stderr_contains" in expect:
        assert expect["stderr_contains"] in result["stderr"]
    if "planned" in expect:
        last = [Path(result["commands"][-1][0]).name, *result["commands"][-1][1:]]
        assert last == expect["planned"]
        assert len(script.ran) == len(result["commands"]) - 1
