# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The zfs drills' lab pair: f0/f1 seeded like a zrepl pair, and helpers to run the runbooks against it.

The lab is its own (lab `drills` of tests/labs.py) so a developer's lab is left alone.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from labs import lab

ROOT = Path(__file__).resolve().parents[2]
LABCTL = ROOT / "tests" / "lab" / "labctl"
LAB = lab("drills")
LAB_DIR = str(LAB.dir)
LAB_NET = LAB.net
ENV = dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET)
ORIGIN = "zdata/enc/nfsdata"
REPLICA = f"zdata/sink/f0/{ORIGIN}"
NAMES = {"f0": ORIGIN, "f1": REPLICA}


def labctl(*args, check=True):
    done = subprocess.run([str(LABCTL), *args], env=ENV, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"labctl {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


class Pair:
    """The f0/f1 pair of the drills lab."""

    def __init__(self):
        self.inventory = Path(LAB_DIR) / "ansible"

    def sh(self, node, script, check=True):
        return labctl("exec", node, "--", "sh", "-c", script, check=check).stdout

    def checksums(self, node):
        return self.sh(node, "cd /data/nfs && md5sum * | sort")

    def writable(self):
        """Return the nodes on which the resource's dataset is writable (answering nodes only)."""
        found = []
        for node, name in NAMES.items():
            if labctl("exec", node, "--", "true", check=False).returncode != 0:
                continue
            if self.sh(node, f"zfs get -H -o value readonly {name}").strip() == "off":
                found.append(node)
        return found

    def _runbook(self, name, extra):
        """(argv, env) of ansible-playbook running playbooks/<name>.yml against the pair."""
        argv = [
            "ansible-playbook",
            "-i",
            str(self.inventory / "inventory.yml"),
            "-i",
            str(ROOT / "examples" / "inventory" / "lab_pair"),
            str(ROOT / "playbooks" / f"{name}.yml"),
            *extra,
        ]
        return argv, dict(os.environ, ANSIBLE_CONFIG=str(self.inventory / "ansible.cfg"))

    def runbook(self, name, *extra, check=True):
        argv, env = self._runbook(name, extra)
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{name} failed ({done.returncode}):\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}")
        return done

    def killed_runbook(self, name, changes, *extra, log):
        """Run playbooks/<name>.yml and SIGKILL it right after its Nth changed task result.

        Return the task it was killed after, or None when the run ended (it changes fewer things).
        """
        argv, env = self._runbook(name, extra)
        log.unlink(missing_ok=True)
        env.update(
            ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).parent / "callback_plugins"),
            ANSIBLE_CALLBACKS_ENABLED="kill_after_change",
            FBSD_HA_DRILL_KILL_AFTER=str(changes),
            FBSD_HA_DRILL_KILL_LOG=str(log),
        )
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if log.exists():
            return json.loads(log.read_text())["killed_after"]
        if done.returncode != 0:
            raise AssertionError(f"{name} failed before the kill:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}")
        return None


SEED = (ROOT / "examples" / "lab_pair_seed.sh").read_text()
