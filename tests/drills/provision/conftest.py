# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Provisioning drills: fresh lab nodes made replicating pairs by provision_pair.yml, CARP in front, the boot guard.

Their own lab (lab `provision` of tests/labs.py), so other drills and a developer's lab are left alone. FBSD_HA_E2E_KEEP=1 keeps it running.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from labs import lab

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
LABCTL = ROOT / "tests" / "lab" / "labctl"
LAB = lab("provision")
LAB_DIR = str(LAB.dir)
LAB_NET = LAB.net
ENV = dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET)
RECAP = re.compile(r"^(f\d+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=(\d+)", re.M)
CARP = re.compile(r"carp: (MASTER|BACKUP|INIT) vhid (\d+)")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


def labctl(*args, check=True):
    done = subprocess.run([str(LABCTL), *args], env=ENV, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"labctl {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


class Lab:
    """Fresh nodes of the provisioning lab and the collection's playbooks run against them with one inventory."""

    def __init__(self, inventory: Path):
        self.inventory = inventory
        self.ansible = Path(LAB_DIR) / "ansible"

    def sh(self, node, script, check=True):
        return labctl("exec", node, "--", "sh", "-c", script, check=check).stdout

    def playbook(self, name, *extra, check=True):
        """Run playbooks/<name>.yml; return (returncode, {host: changed}, output)."""
        argv = [
            "ansible-playbook",
            "-i",
            str(self.ansible / "inventory.yml"),
            "-i",
            str(self.inventory),
            str(ROOT / "playbooks" / f"{name}.yml"),
            *extra,
        ]
        env = dict(os.environ, ANSIBLE_CONFIG=str(self.ansible / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{name} failed ({done.returncode}):\n{done.stdout[-8000:]}\n{done.stderr[-3000:]}")
        return done.returncode, {host: int(changed) for host, changed, _ in RECAP.findall(done.stdout)}, done.stdout

    def carp(self, node):
        """Return {vhid: state} of the node's em0."""
        return {int(v): s for s, v in CARP.findall(self.sh(node, "ifconfig em0"))}

    def writable(self, datasets):
        """Return the nodes (of {node: dataset}) on which the dataset exists and is writable."""
        found = []
        for node, name in datasets.items():
            if labctl("exec", node, "--", "true", check=False).returncode != 0:
                continue
            if self.sh(node, f"zfs get -H -o value readonly {name} 2>/dev/null", check=False).strip() == "off":
                found.append(node)
        return found

    def running(self, node, service):
        return "is running" in self.sh(node, f"service {service} onestatus", check=False)


def fresh_lab(nodes, inventory):
    labctl("destroy", check=False)
    labctl("up", "--nodes", str(nodes))
    labctl("inventory")
    return Lab(inventory)


def teardown():
    if os.environ.get("FBSD_HA_E2E_KEEP") != "1":
        labctl("down", check=False)
        labctl("destroy", check=False)


@pytest.fixture(scope="module")
def pair():
    """Two fresh nodes with the pair inventory (tests/drills/provision/inventory/pair)."""
    yield fresh_lab(2, HERE / "inventory" / "pair")
    teardown()


@pytest.fixture(scope="module")
def fleet():
    """Six fresh nodes with the fleet inventory (examples/inventory/lab_fleet: three pairs)."""
    yield fresh_lab(6, ROOT / "examples" / "inventory" / "lab_fleet")
    teardown()
