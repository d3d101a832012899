# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zrepl_job against scripted zrepl commands and a stepping clock (cases in test_zrepl_job.yml).

Status outputs are built from zrepl's documented schema by test__zrepl.status_document (constructed,
not captured; times are seconds after FrozenClock's 2026-11-21T13:40:00Z). The clock starts there and
only moves when the module sleeps, so a ten-minute wait runs in milliseconds.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from ansible_collections.freebsd_ha.storage.plugins.modules import zrepl_job
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import FrozenClock, check_case, load_cases
from ansible_collections.freebsd_ha.storage.tests.unit.plugins.modules.test_zrepl_info import lookup, script_steps

IDS, CASES = load_cases(Path(__file__).with_suffix(".yml"))


class SteppingClock:
    """FrozenClock's time plus the seconds slept; sleep() records and advances instead of blocking."""

    def __init__(self):
        self.elapsed = 0.0
        self.sleeps = []

    def now(self):
        return FrozenClock.now() + timedelta(seconds=self.elapsed)

    def monotonic(self):
        return self.elapsed

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.elapsed += seconds


def expand(steps):
    """Return the steps with `repeat: N` written out N times."""
    return [dict(step) for step in steps for _repeat in range(step.get("repeat", 1))]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_zrepl_job(run_module, monkeypatch, case):
    clock = SteppingClock()
    monkeypatch.setattr(zrepl_job, "CLOCK", clock)
    steps = script_steps(expand(case.get("commands", [])))
    result, script = run_module(zrepl_job, case["params"], steps, check_mode=case.get("check_mode", False), diff=True)
    expect = case["expect"]
    check_case(result, script, expect, keys=("signal_outcome", "duration"))
    assert clock.sleeps == expect.get("sleeps", [])
    if "planned" not in expect:
        assert len(script.ran) == len(result["commands"])
    for path, value in expect.get("values", {}).items():
        assert lookup(result, path) == value, path
