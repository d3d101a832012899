# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HAST drills' lab helpers: a pair f0/f1 with a file provider each, driven by the real playbooks with the inventory in
this directory (resource `vol`: HAST resource `shared`, pool `hpool` at /data/vol).

Own lab (lab `hast-drills` of tests/labs.py), started once for the module and torn down at the end (FBSD_HA_E2E_KEEP=1 keeps it).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from labs import lab

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
LABCTL = ROOT / "tests" / "lab" / "labctl"
LAB = lab("hast-drills")
LAB_DIR = str(LAB.dir)
LAB_NET = LAB.net
ENV = dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET)
PROVIDER = "/var/db/hast-disk/shared.img"
NODES = ("f0", "f1")


def labctl(*args, check=True):
    done = subprocess.run([str(LABCTL), *args], env=ENV, capture_output=True, text=True, timeout=300, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"labctl {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


class HastPair:
    """The f0/f1 HAST pair of the drills lab."""

    inventory = Path(LAB_DIR) / "ansible"

    def sh(self, node, script, check=True):
        return labctl("exec", node, "--", "sh", "-c", script, check=check).stdout

    def answers(self, node):
        return labctl("exec", node, "--", "true", check=False).returncode == 0

    def role(self, node):
        """The node's HAST role of `shared` (None when the node does not answer)."""
        if not self.answers(node):
            return None
        fields = self.sh(node, "hastctl status shared", check=False).splitlines()[1:2]
        return fields[0].split()[2] if fields and len(fields[0].split()) > 2 else None

    def primaries(self):
        return [node for node in NODES if self.role(node) == "primary"]

    def writers(self):
        """Nodes that have the pool imported and writable."""
        return [
            node
            for node in NODES
            if self.answers(node)
            and self.sh(node, "zfs get -H -o value readonly hpool 2>/dev/null", check=False).strip() == "off"
        ]

    def assert_one_writer(self, node):
        assert self.primaries() == [node]
        assert self.writers() == [node]

    def checksums(self, node):
        return self.sh(node, "cd /data/vol && sha256sum * | sort")

    def write(self, node, name, kib=512):
        self.sh(node, f"dd if=/dev/urandom of=/data/vol/{name} bs=1k count={kib} 2>/dev/null && sync")

    def _runbook(self, playbook, extra):
        path = HERE / "playbooks" / f"{playbook}.yml"
        if not path.exists():
            path = ROOT / "playbooks" / f"{playbook}.yml"
        argv = [
            "ansible-playbook",
            "-i",
            str(self.inventory / "inventory.yml"),
            "-i",
            str(HERE / "inventory"),
            str(path),
            *extra,
        ]
        return argv, dict(os.environ, ANSIBLE_CONFIG=str(self.inventory / "ansible.cfg"))

    def runbook(self, playbook, *extra, check=True):
        argv, env = self._runbook(playbook, extra)
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise AssertionError(
                f"{playbook} failed ({done.returncode}):\n{done.stdout[-8000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def popen_runbook(self, playbook, *extra):
        argv, env = self._runbook(playbook, extra)
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_for(self, what, predicate, timeout=60.0):
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            time.sleep(1)
