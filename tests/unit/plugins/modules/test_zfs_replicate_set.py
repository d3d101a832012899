# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zfs_replicate_set against scripted zfs and ssh commands (cases in test_zfs_replicate_set.yml).

The counted pipeline runs through the script too: a step's stdout stands for the stream, so the
bytes the module reports are the length of what the scripted sender "sent". Peers run one after
the other here, in the order given, so the script is deterministic; test__stream.py shows they
really run at once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.module_utils import basic

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _stream
from ansible_collections.freebsd_ha.storage.plugins.modules import zfs_replicate_set
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import check_case, load_cases

IDS, CASES = load_cases(Path(__file__).with_suffix(".yml"))


@pytest.fixture
def scripted_streams(monkeypatch):
    def fake_pump(send_argv, recv_argv):
        rc, stdout, stderr = basic.AnsibleModule.run_command(None, [*send_argv, "|", *recv_argv])
        return rc, 0, len(stdout.encode()), "", stderr

    monkeypatch.setattr(_stream, "pump", fake_pump)
    monkeypatch.setattr(_stream, "run_parallel", lambda jobs: [job() for job in jobs])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_zfs_replicate_set(run_module, freeze_clock, scripted_streams, case):
    freeze_clock(zfs_replicate_set)
    result, script = run_module(
        zfs_replicate_set, case["params"], case.get("commands", []), check_mode=case.get("check_mode", False), diff=True
    )
    expect = case["expect"]
    check_case(result, script, expect, keys=("bytes_sent", "in_sync", "rescues", "peers", "diff"))
    if "transfers" in expect:
        keys = expect["transfers"][0].keys()
        assert [{key: row[key] for key in keys} for row in result["transfers"]] == expect["transfers"]
    if case.get("check_mode"):
        assert result["bytes_sent"] == 0
    if "planned" not in expect:
        assert len(result["commands"]) == len(script.ran)
