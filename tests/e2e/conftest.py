# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""End-to-end fixtures: a two-node lab and a helper that runs the collection's playbooks against it.

FBSD_HA_E2E_KEEP=1 leaves the lab running after the session (a later session reuses it; `labctl up`
is idempotent), for quick iteration on one test.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from labs import lab

ROOT = Path(__file__).resolve().parents[2]
LABCTL = ROOT / "tests" / "lab" / "labctl"
PLAYBOOKS = Path(__file__).parent / "playbooks"
# A lab of its own, so a developer's running lab is left alone.
LAB = lab("e2e")
LAB_DIR = str(LAB.dir)
LAB_NET = LAB.net
KEEP = os.environ.get("FBSD_HA_E2E_KEEP") == "1"


def labctl(*args, check=True):
    env = dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET)
    completed = subprocess.run([str(LABCTL), *args], check=False, env=env, capture_output=True, text=True)
    if check and completed.returncode != 0:
        raise AssertionError(
            f"labctl {' '.join(args)} exited {completed.returncode}:\n"
            f"{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}"
        )
    return completed


@pytest.fixture(scope="session")
def lab():
    started = time.monotonic()
    labctl("up", "--nodes", "2")
    inventory_dir = Path(LAB_DIR) / "ansible"
    labctl("inventory", "--dir", str(inventory_dir))
    print(f"\ne2e lab up in {time.monotonic() - started:.1f}s")
    yield Lab(inventory_dir)
    if not KEEP:
        labctl("down", check=False)
        labctl("destroy", check=False)


class Lab:
    def __init__(self, inventory_dir):
        self.inventory_dir = inventory_dir

    def node(self, name, *command, check=True):
        """Run a shell command inside a node; return its stdout."""
        return labctl("exec", name, "--", "sh", "-c", " ".join(command), check=check).stdout

    def fresh_dataset(self, node, name):
        """Make `name` exist on `node` with no children and no snapshots (zfs-fuse may say busy for a moment)."""
        script = f"""
            zfs list -H -o name {name} >/dev/null 2>&1 || zfs create -p {name}
            for i in 1 2 3 4 5 6 7 8 9 10; do
                left=$(zfs list -H -o name -t all -r {name} | grep -vx {name})
                [ -z "$left" ] && exit 0
                for d in $(zfs list -H -o name -t filesystem,volume -d 1 {name} | grep -vx {name}); do
                    zfs destroy -r "$d" 2>/dev/null
                done
                for s in $(zfs list -H -o name -t snapshot -d 1 {name}); do zfs destroy "$s" 2>/dev/null; done
                sleep 0.3
            done
            echo "could not clean: $left" >&2
            exit 1
        """
        self.node(node, script)

    def playbook(self, name, check=False, **extra_vars):
        """Run tests/e2e/playbooks/<name> (its own asserts are the checks); return its output."""
        env = dict(os.environ, ANSIBLE_CONFIG=str(self.inventory_dir / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        argv = [
            "ansible-playbook",
            "-i",
            str(self.inventory_dir / "inventory.yml"),
            str(PLAYBOOKS / name),
            "-e",
            json.dumps(extra_vars),
        ]
        if check:
            argv.append("--check")
        started = time.monotonic()
        completed = subprocess.run(argv, check=False, env=env, capture_output=True, text=True)
        print(f"{name}: {time.monotonic() - started:.1f}s")
        assert completed.returncode == 0, f"{name} failed:\n{completed.stdout[-12000:]}\n{completed.stderr[-3000:]}"
        return completed.stdout
