# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The counted pipeline and the parallel runner, with real local processes (no zfs needed)."""

from __future__ import annotations

import threading

import pytest

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _stream
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError


def test_pump_counts_every_byte_that_reaches_the_receiver(tmp_path):
    out = tmp_path / "received"
    size = 3 * _stream.CHUNK + 12345
    send_rc, recv_rc, count, _stdout, stderr = _stream.pump(
        ["head", "-c", str(size), "/dev/zero"], ["sh", "-c", f"cat > {out}"]
    )
    assert (send_rc, recv_rc, count, stderr) == (0, 0, size, "")
    assert out.stat().st_size == size


def test_pump_reports_a_receiver_that_dies_and_stops_the_sender():
    send_rc, recv_rc, count, _stdout, stderr = _stream.pump(
        ["cat", "/dev/zero"], ["sh", "-c", "head -c 10 >/dev/null; echo 'cannot receive: gone' >&2; exit 3"]
    )
    assert recv_rc == 3
    assert send_rc != 0  # cat got EPIPE once the module closed the pipe
    assert "cannot receive: gone" in stderr
    assert count >= 10


class FakeRunner:
    def __init__(self, check_mode):
        self.check_mode = check_mode
        self.commands = []

    def argv(self, args):
        return ["printf", *args]


def test_transfer_logs_the_pipeline_and_runs_nothing_in_check_mode(monkeypatch):
    monkeypatch.setattr(_stream, "pump", lambda *a: pytest.fail("ran in check mode"))
    runner = FakeRunner(check_mode=True)
    assert _stream.transfer(runner, ["abc"], ["cat"]) == (None, 0)
    assert runner.commands == [["printf", "abc", "|", "cat"]]


def test_transfer_raises_with_the_failing_stage_rc_and_the_bytes_so_far():
    runner = FakeRunner(check_mode=False)
    with pytest.raises(CommandError) as failed:
        _stream.transfer(runner, ["abcdef"], ["sh", "-c", "cat >/dev/null; echo nope >&2; exit 2"])
    assert failed.value.rc == 2
    assert "after 6 bytes" in failed.value.msg and "nope" in failed.value.stderr


def test_run_parallel_really_runs_jobs_at_the_same_time_and_keeps_their_order():
    barrier = threading.Barrier(3, timeout=5)

    def job(value):
        return lambda: (barrier.wait(), value)[1]

    assert _stream.run_parallel([job(1), job(2), job(3)]) == [1, 2, 3]
