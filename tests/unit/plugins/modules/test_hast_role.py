# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""hast_role against scripted hastctl/sysctl commands (cases in test_hast_role.yml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.freebsd_ha.storage.plugins.modules import hast_role
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import load_cases
from ansible_collections.freebsd_ha.storage.tests.unit.plugins.modules.test_hast_info import run_case

IDS, CASES = load_cases(Path(__file__).with_suffix(".yml"))
WRITES = ("role", "create")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_hast_role(run_module, case, monkeypatch, freeze_clock):
    result, script = run_case(run_module, hast_role, case, monkeypatch, freeze_clock)
    expect = case["expect"]
    if "changed" in expect:
        assert result["changed"] == expect["changed"]
        assert ("diff" in result) == expect["changed"]
    if "diff" in expect:
        assert result["diff"] == expect["diff"]
    if "planned" in expect:
        commands = [[Path(argv[0]).name, *argv[1:]] for argv in result["commands"]]
        assert commands[-len(expect["planned"]) :] == expect["planned"]
        assert not any(argv[1] in WRITES for argv in script.ran), "check mode ran a write"
    if result["failed"] and "ran" in expect:
        assert [argv[1] for argv in script.ran] == expect["ran"]
