#!/usr/bin/env python3
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: move the leader of 20 datasets among 3 nodes, playbooks/move_leader.yml beside a hand-written loop.

Runs in the benchmark lab ("bench" in tests/labs.py; 3 nodes), prints a table, asserts nothing about
time. Two twin resources of --count datasets each (same names on every node, f0 writes, f1 and f2 follow, one
common snapshot, then new writes on f0): the runbook moves one to f1, benchmarks/manual_move.sh moves the other
to f1 with a shell loop (fence and snapshot on f0, then `zfs send -I | ssh zfs recv` to both followers in
parallel, promote f1). Wall time, ssh round trips from the controller per host, and bytes sent (only increments:
each dataset holds --size MB that both sides already share).

Usage (as root, after scripts/install): benchmarks/move_leader.py [--count 20] [--size 2] [--keep]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
_SPEC = importlib.util.spec_from_file_location("bench_failover", ROOT / "benchmarks" / "failover.py")
bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(bench)
MANUAL = ROOT / "benchmarks" / "manual_move.sh"
NODES = ["f0", "f1", "f2"]


def seed(root, count, size_mb):
    """root/dNNN on every node: f0 writable (writer f0, epoch 1), f1/f2 read-only copies of @seed, then new writes."""
    names = [f"{root}/d{index:03d}" for index in range(count)]
    bench.node(
        "f0",
        f"""set -e
        for ds in {" ".join(names)}; do
            zfs create -p -o mountpoint=/bench/${{ds#zdata/}} $ds
            zfs set freebsd-ha:writer=f0 $ds && zfs set freebsd-ha:epoch=1 $ds
            dd if=/dev/urandom of=/bench/${{ds#zdata/}}/seed bs=1M count={size_mb} status=none
            zfs snapshot $ds@seed
            for f in f1 f2; do
                ssh $f zfs create -p -o mountpoint=none $(dirname $ds)
                zfs send $ds@seed | ssh $f zfs recv -u $ds
                ssh $f "zfs set readonly=on $ds && zfs set mountpoint=/bench/${{ds#zdata/}} $ds \\
                    && zfs set freebsd-ha:writer=f0 $ds && zfs set freebsd-ha:epoch=1 $ds"
            done
            dd if=/dev/urandom of=/bench/${{ds#zdata/}}/new bs=64k count=1 status=none
        done""",
    )
    return names


def inventory_for(names):
    directory = Path(tempfile.mkdtemp(prefix="bench-move-"))
    (directory / "group_vars").mkdir()
    hosts = "".join(f"        {name}:\n" for name in NODES)
    (directory / "hosts.yml").write_text(f"all:\n  children:\n    ring:\n      hosts:\n{hosts}")
    resource = {
        "backend": "zfs",
        "nodes": NODES,
        "primary": "f0",
        "datasets": [{"name": name, "mountpoint": f"/bench/{name[len('zdata/') :]}"} for name in names],
    }
    (directory / "group_vars" / "all.yml").write_text(yaml.safe_dump({"ha_resources": {"bench": resource}}))
    return directory


def manual(names):
    started = time.monotonic()
    done = subprocess.run(
        ["sh", str(MANUAL), str(bench.INVENTORY / "ssh_config"), *names], capture_output=True, text=True, check=False
    )
    seconds = time.monotonic() - started
    calls = {line.split()[1]: int(line.split()[2]) for line in done.stdout.splitlines() if line.startswith("ssh_calls")}
    sent = [int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("bytes ")]
    error = None if done.returncode == 0 else (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return seconds, calls, sent[0] if sent else None, error


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--size", type=int, default=2, help="MB each dataset already shares with the followers")
    parser.add_argument("--keep", action="store_true", help="leave the benchmark lab running")
    options = parser.parse_args()
    playbook = ROOT / "playbooks" / "move_leader.yml"
    if not playbook.exists():
        sys.exit("playbooks/move_leader.yml does not exist yet: nothing to compare the hand-written loop with")
    bench.labctl("destroy")
    bench.labctl("up", "--nodes", "3")
    bench.labctl("inventory", "--dir", str(bench.INVENTORY))
    addresses = tuple(f"{bench.LAB_NET}.{index + 1}" for index in range(3))
    table = [
        "| run | wall s | ssh round trips f0 / f1 / f2 | bytes sent | note |",
        "| --- | --- | --- | --- | --- |",
    ]
    try:
        names = seed("zdata/mvrb", options.count, options.size)
        twins = seed("zdata/mvmn", options.count, options.size)
        result = bench.runbook("move_leader.yml", inventory_for(names), "-e", "ha_target=f1")
        table.append(bench.row(f"move_leader.yml, {options.count} datasets f0 -> f1", result, addresses, NODES))
        table.append(bench.row(f"shell loop, {options.count} datasets f0 -> f1", manual(twins), addresses, NODES))
    finally:
        print("\n".join(table))
        if not options.keep:
            bench.labctl("destroy")


if __name__ == "__main__":
    sys.exit(main())
