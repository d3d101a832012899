# PRIVATE: internal to freebsd_ha.storage, not a public API; it may change without notice.
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Counted send | receive pipelines and parallel jobs: the I/O beside _command.Runner for multi-peer sends."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import (
    C_LOCALE,
    PIPE_SEPARATOR,
    CommandError,
    Result,
)

CHUNK = 1 << 20


def _drain(stream, sink, key):
    sink[key] = stream.read()


def pump(send_argv, recv_argv):
    """Run send_argv piped into recv_argv through this process; return (send rc, recv rc, bytes, stdout, stderr).

    The stream passes through Python so its bytes are counted exactly: zfs-fuse has no `send -P`
    and an estimate is not what was sent. When the receiver dies the sender is closed off (EPIPE).
    """
    env = dict(os.environ, **C_LOCALE)
    send = subprocess.Popen(
        send_argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        recv = subprocess.Popen(
            recv_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
    except OSError:
        send.kill()
        send.wait()
        raise
    output = {}
    readers = [
        threading.Thread(target=_drain, args=(stream, output, key))
        for key, stream in (("send_err", send.stderr), ("recv_err", recv.stderr), ("recv_out", recv.stdout))
    ]
    for reader in readers:
        reader.start()
    count = 0
    try:
        while True:
            data = send.stdout.read1(CHUNK)
            if not data:
                break
            recv.stdin.write(data)
            count += len(data)
    except BrokenPipeError:
        pass
    finally:
        send.stdout.close()
        try:
            recv.stdin.close()
        except BrokenPipeError:
            pass
    send.wait()
    recv.wait()
    for reader in readers:
        reader.join()
    stderr = b"".join(output.get(key, b"") for key in ("send_err", "recv_err")).decode("utf-8", "replace")
    return send.returncode, recv.returncode, count, output.get("recv_out", b"").decode("utf-8", "replace"), stderr


def transfer(runner, send_args, recv_argv):
    """Run `<runner's tool> send_args | recv_argv`, counted; log it; return (Result, bytes) or (None, 0) in check mode."""
    send_argv = runner.argv(send_args)
    recv_argv = [str(arg) for arg in recv_argv]
    flat = [*send_argv, PIPE_SEPARATOR, *recv_argv]
    runner.commands.append(flat)
    if runner.check_mode:
        return None, 0
    started = time.monotonic()
    send_rc, recv_rc, count, stdout, stderr = pump(send_argv, recv_argv)
    duration = time.monotonic() - started
    for stage, returncode in ((send_argv, send_rc), (recv_argv, recv_rc)):
        if returncode != 0:
            raise CommandError(
                f"{' '.join(stage)} failed with rc {returncode} in `{' '.join(flat)}` after {count} bytes: "
                f"{stderr.strip()}",
                argv=flat,
                rc=returncode,
                stdout=stdout,
                stderr=stderr,
            )
    return Result(0, stdout, stderr, duration), count


def run_parallel(jobs):
    """Run the callables at once, one thread each; return their results in order (an exception is re-raised)."""
    if len(jobs) <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [future.result() for future in futures]
