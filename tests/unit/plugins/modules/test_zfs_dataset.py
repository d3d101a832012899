# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zfs_dataset against scripted zfs commands (cases in test_zfs_dataset.yml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.module_utils.common.warnings import get_warning_messages

from ansible_collections.freebsd_ha.storage.plugins.modules import zfs_dataset
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import load_cases

IDS, CASES = load_cases(Path(__file__).with_suffix(".yml"))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_zfs_dataset(run_module, case):
    result, script = run_module(
        zfs_dataset, case["params"], case.get("commands", []), check_mode=case.get("check_mode", False), diff=True
    )
    expect = case["expect"]
    assert result["failed"] == expect.get("failed", False), result.get("msg")
    if "changed" in expect:
        assert result["changed"] == expect["changed"]
        assert ("diff" in result) == expect["changed"]
    for text in expect.get("msg_contains", []):
        assert text in result["msg"]
    for key in ("rc", "diff", "dataset"):
        if key in expect:
            assert result[key] == expect[key]
    if "stderr_contains" in expect:
        assert expect["stderr_contains"] in result["stderr"]
    if "planned" in expect:
        # Check mode: the writes appear in commands but were never run.
        ran = [argv[0] if argv else None for argv in script.ran]
        planned = [
            [arg.rsplit("/", 1)[-1] if i == 0 else arg for i, arg in enumerate(argv)] for argv in result["commands"]
        ]
        assert planned[-len(expect["planned"]) :] == expect["planned"]
        assert len(ran) == len(result["commands"]) - len(expect["planned"])
    if "warning_contains" in expect:
        assert any(expect["warning_contains"] in w for w in get_warning_messages())
