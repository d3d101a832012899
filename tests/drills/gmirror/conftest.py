# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gmirror drills: a two-node lab whose slices ada1p1 are mirrored over GEOM Gate, a zfs-fuse pool on the mirror.

Its own lab (lab `gmirror-drills` of tests/labs.py), module-scoped and torn down at the end
(FBSD_HA_E2E_KEEP=1 keeps it). The runbooks run through the real playbooks with ansible-playbook.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from labs import lab

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
LABCTL = ROOT / "tests" / "lab" / "labctl"
LAB = lab("gmirror-drills")
LAB_DIR = str(LAB.dir)
LAB_NET = LAB.net
ENV = dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET)
SLICE = 72 << 20  # zfs-fuse wants at least 64 MB per vdev
# FreeBSD has a wheel group (gid 0) and the ggated role writes /etc/rc.conf.d/ggated; the lab's Linux /etc has neither.
PREPARE = f"""grep -q '^wheel:' /etc/group || echo 'wheel:x:0:root' >> /etc/group
mkdir -p /etc/rc.conf.d
[ -e /var/db/geom-disk/ada1p1 ] || fbsd-lab-disk create ada1p1 {SLICE}"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


def labctl(*args, check=True):
    done = subprocess.run([str(LABCTL), *args], env=ENV, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"labctl {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


class Pair:
    """The f0/f1 pair of the gmirror drills lab."""

    def __init__(self):
        self.inventory = Path(LAB_DIR) / "ansible"

    def answers(self, node):
        return labctl("exec", node, "--", "true", check=False).returncode == 0

    def sh(self, node, script, check=True):
        return labctl("exec", node, "--", "sh", "-c", script, check=check).stdout

    def data(self, node):
        """Checksums of the files in the pool on the mirror, as node sees them."""
        return self.sh(node, "cd /gmpool && sha256sum * | sort")

    def slice_sum(self, node):
        return self.sh(node, f"head -c {SLICE - 512} /dev/ada1p1 | sha256sum").split()[0]

    def writers(self):
        """The answering nodes on which the pool on the mirror is imported and usable (the only way to write the data).

        A restarted node's zfs-fuse imports the pools in its cache at boot, before any mirror exists: such a pool
        is FAULTED and writes nothing (it is exported when the node is fenced).
        """
        found = []
        for node in ("f0", "f1"):
            pools = self.sh(node, "zpool list -H -o name,health").split("\n") if self.answers(node) else []
            if any(line.split()[:1] == ["gmpool"] and line.split()[1] in ("ONLINE", "DEGRADED") for line in pools):
                found.append(node)
        return found

    def record(self, node):
        return self.sh(node, "cat /var/db/freebsd_ha/data.json").strip()

    def mirror(self, node):
        return self.sh(node, "gmirror status -s", check=False)

    def restart(self, node):
        # Under load a crashed node's first start has been seen to fail; `up` is documented to repair.
        if labctl("up", "--nodes", "2", check=False).returncode != 0:
            labctl("up", "--nodes", "2")
        self.sh(node, PREPARE)

    def _runbook(self, playbook, extra):
        argv = [
            "ansible-playbook",
            "-i",
            str(self.inventory / "inventory.yml"),
            "-i",
            str(HERE / "inventory"),
            str(playbook),
            *extra,
        ]
        return argv, dict(os.environ, ANSIBLE_CONFIG=str(self.inventory / "ansible.cfg"))

    def runbook(self, name, *extra, check=True):
        playbook = HERE / "provision.yml" if name == "provision" else ROOT / "playbooks" / f"{name}.yml"
        argv, env = self._runbook(playbook, extra)
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{name} failed ({done.returncode}):\n{done.stdout[-8000:]}\n{done.stderr[-3000:]}")
        return done

    def popen_runbook(self, name, *extra):
        argv, env = self._runbook(ROOT / "playbooks" / f"{name}.yml", extra)
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_mirror(self, node, text, timeout=60):
        deadline = time.monotonic() + timeout
        while text not in self.mirror(node) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert text in self.mirror(node)


@pytest.fixture(scope="module")
def pair():
    """f0 writes gm0 (epoch 1) with f1's slice attached over GEOM Gate and in sync; gmpool on the mirror."""
    labctl("destroy", check=False)
    labctl("up", "--nodes", "2")
    labctl("inventory")
    lab = Pair()
    for node in ("f0", "f1"):
        lab.sh(node, PREPARE)
    lab.runbook("provision", "-e", "ha_gmirror_create_filesystem=true")
    yield lab
    if os.environ.get("FBSD_HA_E2E_KEEP") != "1":
        labctl("down", check=False)
        labctl("destroy", check=False)
