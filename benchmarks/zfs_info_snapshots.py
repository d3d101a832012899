#!/usr/bin/env python3
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: zfs_info over a pool with 10,000+ snapshots, beside the bare `zfs list` it wraps.

Runs in a lab of its own ("bench-zfs-info" in tests/labs.py), prints figures, asserts nothing about time.
Usage (as root, after scripts/install): benchmarks/zfs_info_snapshots.py [--datasets 100 --snapshots 100]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from labs import lab  # noqa: E402  (the one table of lab dirs and nets)

# A lab of its own, so the benchmark can run beside a developer lab (127.0.10.x) or the test labs.
LAB_DIR = str(lab("bench-zfs-info").dir)
ENV = lab("bench-zfs-info").env
NODE = "f0"
BENCH_ROOT = "zdata/bench"


def labctl(*args):
    return subprocess.run(
        [str(ROOT / "tests/lab/labctl"), *args], env=ENV, check=True, capture_output=True, text=True
    ).stdout


def in_node(script):
    return labctl("exec", NODE, "--", "sh", "-c", script)


def timed(argv, env=None):
    started = time.monotonic()
    completed = subprocess.run(argv, env=env or ENV, check=True, capture_output=True, text=True)
    return time.monotonic() - started, completed.stdout


def populate(datasets, snapshots):
    existing = in_node(f"zfs list -H -o name -t snapshot -r {BENCH_ROOT} 2>/dev/null | wc -l").strip()
    wanted = (datasets + 1) * snapshots
    if int(existing or 0) >= wanted:
        return int(existing)
    children = " ".join(f"{BENCH_ROOT}/ds{index:03d}" for index in range(datasets))
    # Recursive snapshots make 10,000 snapshots in `snapshots` calls instead of 10,000.
    in_node(
        f"zfs create -p {BENCH_ROOT} && for ds in {children}; do zfs create -p $ds; done && "
        f"i=0; while [ $i -lt {snapshots} ]; do zfs snapshot -r {BENCH_ROOT}@b$i; i=$((i+1)); done"
    )
    return int(in_node(f"zfs list -H -o name -t snapshot -r {BENCH_ROOT} | wc -l").strip())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=100)
    parser.add_argument("--snapshots", type=int, default=100, help="recursive snapshots of the whole tree")
    parser.add_argument("--keep", action="store_true", help="leave the benchmark lab running")
    options = parser.parse_args()

    labctl("up", "--nodes", "2")
    inventory_dir = Path(LAB_DIR) / "ansible"
    labctl("inventory", "--dir", str(inventory_dir))
    try:
        count = populate(options.datasets, options.snapshots)
        with tempfile.TemporaryDirectory() as tree:
            env = dict(
                ENV,
                ANSIBLE_CONFIG=str(inventory_dir / "ansible.cfg"),
                ANSIBLE_CALLBACKS_ENABLED="tree",
                ANSIBLE_CALLBACK_TREE_DIR=tree,
                ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
            )
            module_args = f"roots={BENCH_ROOT} snapshots=true holds=true"
            adhoc = [
                "ansible",
                "-i",
                str(inventory_dir / "inventory.yml"),
                NODE,
                "-m",
                "freebsd_ha.storage.zfs_info",
                "-a",
                module_args,
            ]
            subprocess.run(adhoc, env=env, check=True, capture_output=True)  # warm ssh ControlPersist and caches
            module_seconds, _ = timed(adhoc, env)
            result = json.loads(Path(tree, NODE).read_text())
        commands = result["commands"]
        zfs_calls = [command for command in commands if Path(command[0]).name == "zfs"]
        snapshot_command = next(command for command in zfs_calls if "snapshot" in command)
        ssh = ["ssh", "-F", str(inventory_dir / "ssh_config"), NODE]
        bare_seconds, bare_out = timed([*ssh, shlex.join(["zfs", *snapshot_command[1:]])])
        noop_seconds, _ = timed([*ssh, "true"])
        print(f"snapshots under {BENCH_ROOT}:              {count}")
        print(f"snapshots returned by zfs_info:          {len(result['snapshots'])}")
        print(f"zfs calls made by zfs_info:              {len(zfs_calls)} (all commands: {len(commands)})")
        print(f"zfs_info wall time (ansible ad-hoc):     {module_seconds:.2f} s")
        print(
            f"bare `zfs {' '.join(snapshot_command[1:4])} ...` over ssh: {bare_seconds:.2f} s "
            f"({len(bare_out.splitlines())} lines)"
        )
        print(f"ssh round trip alone:                    {noop_seconds:.2f} s")
    finally:
        if not options.keep:
            labctl("destroy")


if __name__ == "__main__":
    sys.exit(main())
