#!/usr/bin/env python3
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: planned failover and failback of a zrepl-style pair, the runbooks beside the same steps by hand.

Runs in a lab of its own ("bench" in tests/labs.py, 1 GiB pools), prints a table, asserts nothing
about time. For 1 and for 50 datasets: planned failover (playbooks/failover.yml) wall time, ssh round trips per host
(counted from ansible -vvv: one `SSH: EXEC` per module run) and bytes sent (the runbook's report), beside
benchmarks/manual_failover.sh, which runs the same steps over ssh in the same lab run on a twin set of datasets.
Then failback of a dataset of --size MB after 1 MB of new writes on the new writer: bytes sent against the
dataset's size, runbook (playbooks/failback.yml) beside the manual incremental (rollback + send -I).

Usage (as root, after scripts/install): benchmarks/failover.py [--counts 1 50] [--size 200] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from labs import lab  # noqa: E402  (the one table of lab dirs and nets)

LAB_DIR = str(lab("bench").dir)
LAB_NET = lab("bench").net
ENV = dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET, FBSD_HA_LAB_POOL_SIZE="1G")
INVENTORY = Path(LAB_DIR) / "ansible"
MANUAL = ROOT / "benchmarks" / "manual_failover.sh"
SINK = "zdata/sink/f0"


def labctl(*args):
    return subprocess.run(
        [str(ROOT / "tests/lab/labctl"), *args], env=ENV, check=True, capture_output=True, text=True
    ).stdout


def node(name, script):
    return labctl("exec", name, "--", "sh", "-c", script)


def seed(root, count, size_mb):
    """Make `count` datasets root/dNNN on f0 (writer f0, epoch 1) and read-only replicas on f1, one seed snapshot."""
    names = [f"{root}/d{index:03d}" for index in range(count)]
    node(
        "f0",
        f"""set -e
        for ds in {" ".join(names)}; do
            zfs create -p -o mountpoint=/bench/${{ds#zdata/}} $ds
            zfs set freebsd-ha:writer=f0 $ds && zfs set freebsd-ha:epoch=1 $ds
            dd if=/dev/urandom of=/bench/${{ds#zdata/}}/seed bs=1M count={size_mb} status=none
            zfs snapshot $ds@zrepl_seed
            ssh f1 zfs create -p {SINK}/$(dirname $ds)
            zfs send $ds@zrepl_seed | ssh f1 zfs recv -u {SINK}/$ds
            ssh f1 "zfs set readonly=on {SINK}/$ds && zfs set freebsd-ha:writer=f0 {SINK}/$ds \\
                && zfs set freebsd-ha:epoch=1 {SINK}/$ds"
            echo new > /bench/${{ds#zdata/}}/after-seed
        done""",
    )
    return names


def inventory_for(names):
    """A temporary inventory dir whose group_vars define the resource `bench` over names."""
    directory = Path(tempfile.mkdtemp(prefix="bench-inv-"))
    (directory / "group_vars").mkdir()
    (directory / "hosts.yml").write_text("all:\n  children:\n    pair:\n      hosts:\n        f0:\n        f1:\n")
    resource = {
        "backend": "zrepl",
        "nodes": ["f0", "f1"],
        "primary": "f0",
        "datasets": [{"name": name} for name in names],
        "zrepl": {"sink_root": "zdata/sink"},
    }
    (directory / "group_vars" / "all.yml").write_text(yaml.safe_dump({"ha_resources": {"bench": resource}}))
    return directory


def runbook(playbook, inventory, *extra):
    """Run a runbook with -vvv; return (seconds, {host address: ssh execs}, bytes_sent or None, error or None)."""
    argv = [
        "ansible-playbook",
        "-vvv",
        "-i",
        str(INVENTORY / "inventory.yml"),
        "-i",
        str(inventory),
        str(ROOT / "playbooks" / playbook),
        "-e",
        "ha_resource=bench",
        *extra,
    ]
    env = dict(ENV, ANSIBLE_CONFIG=str(INVENTORY / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    started = time.monotonic()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - started
    execs = {}
    for match in re.finditer(r"^<([0-9.]+)> SSH: EXEC", done.stdout, re.M):
        execs[match.group(1)] = execs.get(match.group(1), 0) + 1
    sent = re.findall(r'"bytes_sent": "?([0-9]+)', done.stdout)
    error = None
    if done.returncode != 0:
        failures = re.findall(r'"msg": "([^"]{0,160})', done.stdout)
        error = failures[-1] if failures else f"exit {done.returncode}"
    return seconds, execs, int(sent[-1]) if sent else None, error


def manual(step, names, *extra):
    """Run benchmarks/manual_failover.sh STEP; return (seconds, {host: ssh calls}, bytes, error or None)."""
    started = time.monotonic()
    done = subprocess.run(
        ["sh", str(MANUAL), step, str(INVENTORY / "ssh_config"), *extra, *names],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - started
    counts = dict(re.findall(r"^ssh_calls (\S+) ([0-9]+)$", done.stdout, re.M))
    total = re.findall(r"^bytes ([0-9]+)$", done.stdout, re.M)
    error = None if done.returncode == 0 else (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    return seconds, {k: int(v) for k, v in counts.items()}, int(total[0]) if total else None, error


def row(label, result, addresses=(f"{LAB_NET}.1", f"{LAB_NET}.2"), names=("f0", "f1")):
    seconds, calls, sent, error = result
    trips = " / ".join(str(calls.get(a, calls.get(n, 0))) for a, n in zip(addresses, names))
    status = f"FAILED: {error}" if error else ""
    sent_text = "-" if sent is None else f"{sent:,}"
    return f"| {label} | {seconds:.1f} | {trips} | {sent_text} | {status} |"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--size", type=int, default=200, help="MB of data in the failback dataset")
    parser.add_argument("--keep", action="store_true", help="leave the benchmark lab running")
    options = parser.parse_args()
    labctl("destroy")
    labctl("up", "--nodes", "2")
    labctl("inventory", "--dir", str(INVENTORY))
    table = [
        "| run | wall s | ssh round trips f0 / f1 | bytes sent | note |",
        "| --- | --- | --- | --- | --- |",
    ]
    try:
        for count in options.counts:
            names = seed(f"zdata/rb{count}", count, 1)
            twins = seed(f"zdata/mn{count}", count, 1)
            inventory = inventory_for(names)
            table.append(row(f"failover.yml, {count} dataset(s)", runbook("failover.yml", inventory)))
            table.append(row(f"manual failover, {count} dataset(s)", manual("failover", twins)))
        names = seed("zdata/fbrb", 1, options.size)
        twins = seed("zdata/fbmn", 1, options.size)
        size = node("f0", f"zfs get -H -o value referenced {names[0]}").strip()
        inventory = inventory_for(names)
        failover = runbook("failover.yml", inventory)
        table.append(row(f"failover.yml before failback ({options.size} MB dataset)", failover))
        manual("failover", twins)
        for ds in (names[0], twins[0]):
            replica = f"{SINK}/{ds}"
            node(
                "f1",
                f"zfs mount {replica} 2>/dev/null; dd if=/dev/urandom bs=1M count=1 status=none "
                f'of="$(zfs get -H -o value mountpoint {replica})/one-mb"',
            )
        table.append(row(f"failback.yml after 1 MB on f1 ({size} referenced)", runbook("failback.yml", inventory)))
        table.append(row(f"manual failback after 1 MB on f1 ({size} referenced)", manual("failback", twins)))
    finally:
        print("\n".join(table))
        if not options.keep:
            labctl("destroy")


if __name__ == "__main__":
    sys.exit(main())
