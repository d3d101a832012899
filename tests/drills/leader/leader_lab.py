# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The leader drills' lab: three nodes f0 f1 f2 holding the zfs-backend resources of inventory/, and helpers.

The lab is its own (lab `leader` of tests/labs.py) so other labs are left alone.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import yaml
from labs import lab

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
LABCTL = ROOT / "tests" / "lab" / "labctl"
LAB = lab("leader")
LAB_DIR = str(LAB.dir)
LAB_NET = LAB.net
ENV = dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET)
NODES = ("f0", "f1", "f2")
RESOURCES = yaml.safe_load((HERE / "inventory" / "group_vars" / "all.yml").read_text())["ha_resources"]
SEED = (HERE / "seed_ring.sh").read_text()


def labctl(*args, check=True):
    done = subprocess.run([str(LABCTL), *args], env=ENV, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"labctl {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


class Ring:
    """The three nodes of the leader lab."""

    def __init__(self):
        self.inventory = Path(LAB_DIR) / "ansible"

    def sh(self, node, script, check=True):
        return labctl("exec", node, "--", "sh", "-c", script, check=check).stdout

    def answers(self, node):
        return labctl("exec", node, "--", "true", check=False).returncode == 0

    def seed(self, resource, leader="f0", kb=256):
        specs = " ".join(f"{item['name']}:{item['mountpoint']}" for item in RESOURCES[resource]["datasets"])
        followers = " ".join(node for node in NODES if node != leader)
        self.sh(leader, f"FOLLOWERS='{followers}' SEED_KB={kb} sh -s -- {specs} <<'SEED'\n{SEED}\nSEED")

    def datasets(self, resource):
        return [item["name"] for item in RESOURCES[resource]["datasets"]]

    def checksums(self, node, resource):
        """md5 of every file of every dataset of the resource on node, read where it is mounted."""
        paths = " ".join(item["mountpoint"] for item in RESOURCES[resource]["datasets"])
        return self.sh(node, f"cd / && find {paths} -type f | sort | xargs md5sum")

    def writable(self, resource):
        """Return (node, dataset) for every writable copy of the resource's datasets on the answering nodes."""
        found = []
        names = " ".join(self.datasets(resource))
        for node in NODES:
            if not self.answers(node):
                continue
            # A dataset the node does not hold (yet) is not a writable copy: zfs names it on stderr.
            for line in self.sh(node, f"zfs get -H -o name,value readonly {names}", check=False).splitlines():
                name, value = line.split("\t")
                if value == "off":
                    found.append((node, name))
        return found

    def writers(self, resource):
        """The nodes holding a writable copy; the drills assert there is never more than one."""
        return sorted({node for node, _name in self.writable(resource)})

    def guids(self, node, dataset):
        out = self.sh(node, f"zfs get -H -p -d 1 -o name,value guid {dataset}")
        return [line.split("\t")[1] for line in out.splitlines() if "@" in line.split("\t")[0]]

    def runbook(self, name, *extra, check=True):
        argv = [
            "ansible-playbook",
            "-i",
            str(self.inventory / "inventory.yml"),
            "-i",
            str(HERE / "inventory"),
            str(ROOT / "playbooks" / f"{name}.yml"),
            *extra,
        ]
        env = dict(os.environ, ANSIBLE_CONFIG=str(self.inventory / "ansible.cfg"))
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{name} failed ({done.returncode}):\n{done.stdout[-8000:]}\n{done.stderr[-3000:]}")
        return done


def reported(stdout, key):
    """The value of key in the runbook's report (the last debug message that has it), as text."""
    values = re.findall(rf'"{key}": "?([^",\n]*)"?', stdout)
    assert values, f"no {key} in the runbook output:\n{stdout[-4000:]}"
    return values[-1]
