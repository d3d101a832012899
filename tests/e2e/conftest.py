# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""End-to-end fixtures: a two-node lab and a helper that runs the collection's playbooks against it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LABCTL = ROOT / "tests" / "lab" / "labctl"
PLAYBOOKS = Path(__file__).parent / "playbooks"
# A lab of its own, so a developer's running lab is left alone.
LAB_DIR = os.environ.get("FBSD_HA_E2E_LAB_DIR", "/srv/fbsd-ha-lab-e2e")


def labctl(*args, check=True):
    env = dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR)
    return subprocess.run([str(LABCTL), *args], check=check, env=env, capture_output=True, text=True)


@pytest.fixture(scope="session")
def lab():
    labctl("up", "--nodes", "2")
    inventory_dir = Path(LAB_DIR) / "ansible"
    labctl("inventory", "--dir", str(inventory_dir))
    yield Lab(inventory_dir)
    labctl("down")
    labctl("destroy")


class Lab:
    def __init__(self, inventory_dir):
        self.inventory_dir = inventory_dir

    def node(self, name, *command, check=True):
        """Run a shell command inside a node; return its stdout."""
        return labctl("exec", name, "--", "sh", "-c", " ".join(command), check=check).stdout

    def playbook(self, name, check=False, **extra_vars):
        """Run tests/e2e/playbooks/<name> (its own asserts are the checks); return its output."""
        env = dict(os.environ, ANSIBLE_CONFIG=str(self.inventory_dir / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        argv = ["ansible-playbook", "-i", str(self.inventory_dir / "inventory.yml"), str(PLAYBOOKS / name),
                "-e", json.dumps(extra_vars)]
        if check:
            argv.append("--check")
        completed = subprocess.run(argv, check=False, env=env, capture_output=True, text=True)
        assert completed.returncode == 0, f"{name} failed:\n{completed.stdout[-8000:]}\n{completed.stderr[-3000:]}"
        return completed.stdout
