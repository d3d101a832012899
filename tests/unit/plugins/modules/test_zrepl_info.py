# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zrepl_info against scripted zrepl commands (cases in test_zrepl_info.yml).

A step's `status:` is a raw status built from zrepl's documented schema by test__zrepl.status_document
(constructed, not captured); `capture: hn1` is the real 2019 capture, read in place from the research corpus.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.freebsd_ha.storage.plugins.modules import zrepl_info
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import check_case, load_cases
from ansible_collections.freebsd_ha.storage.tests.unit.plugins.module_utils.test__zrepl import hn1_text, status_document

IDS, CASES = load_cases(Path(__file__).with_suffix(".yml"))


def script_steps(steps):
    """Return the command steps with `status:`/`capture:` turned into the stdout zrepl would print."""
    scripted = []
    for original in steps:
        step = dict(original)
        if "status" in step:
            step["stdout"] = status_document(step.pop("status"), step.pop("layout", "v0.6")) + "\n"
        if step.pop("capture", None) == "hn1":
            step["stdout"] = hn1_text()
        scripted.append(step)
    return scripted


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_zrepl_info(run_module, case):
    result, script = run_module(
        zrepl_info, case["params"], script_steps(case.get("commands", [])), check_mode=case.get("check_mode", False)
    )
    expect = case["expect"]
    check_case(result, script, expect, keys=("layout", "internal_jobs", "summary", "active_zfs_commands"))
    assert result.get("changed", False) is False
    assert len(result["commands"]) == len(script.ran)
    if "jobs" in expect:
        assert sorted(result["jobs"]) == expect["jobs"]
    for path, value in expect.get("values", {}).items():
        assert lookup(result, path) == value, path


def lookup(result, path):
    """Return the value at a dotted path such as jobs.csnas.replication.state (list items by index)."""
    value = result
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value
