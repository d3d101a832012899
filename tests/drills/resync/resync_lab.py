# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The resync drills' lab: the zfs drills' pair (examples/lab_pair_seed.sh) with zrepl replicating f0 -> f1.

Its own lab (lab `resync` of tests/labs.py) so no other lab is touched.
Helpers live here, not in conftest.py, so they import by a name no other drill directory uses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from labs import lab

ROOT = Path(__file__).resolve().parents[3]
LABCTL = ROOT / "tests" / "lab" / "labctl"
HERE = Path(__file__).resolve().parent
LAB = lab("resync")
LAB_DIR = str(LAB.dir)
LAB_NET = LAB.net
ENV = dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET)
ORIGIN = "zdata/enc/nfsdata"
REPLICA = f"zdata/sink/f0/{ORIGIN}"
NAMES = {"f0": ORIGIN, "f1": REPLICA}
SEED = (ROOT / "examples" / "lab_pair_seed.sh").read_text()
# The resource's default job names (ha_resource: <name>_push, <name>_sink). Manual snapshotting: the drills take
# zrepl_ snapshots themselves, so nothing happens behind their back. Pruning keeps every non-zrepl snapshot.
SINK_CONFIG = """
jobs:
  - name: nfs_sink
    type: sink
    serve: {type: stdinserver, client_identities: [f0]}
    root_fs: zdata/sink
    recv:
      placeholder: {encryption: inherit}
      properties: {override: {readonly: "on"}}
"""
PUSH_CONFIG = f"""
jobs:
  - name: nfs_push
    type: push
    connect: {{type: ssh+stdinserver, host: f1, user: root, port: 22, identity_file: /root/.ssh/id_ed25519}}
    filesystems: {{"{ORIGIN}": true}}
    snapshotting: {{type: manual}}
    send: {{encrypted: false}}
    pruning:
      keep_sender: [{{type: not_replicated}}, {{type: regex, negate: true, regex: "^zrepl_"}},
                    {{type: last_n, count: 10, regex: "^zrepl_"}}]
      keep_receiver: [{{type: regex, negate: true, regex: "^zrepl_"}}, {{type: last_n, count: 10, regex: "^zrepl_"}}]
"""


def labctl(*args, check=True):
    done = subprocess.run([str(LABCTL), *args], env=ENV, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"labctl {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


class Pair:
    """The f0/f1 pair of the resync lab."""

    def __init__(self):
        self.inventory = Path(LAB_DIR) / "ansible"
        self.stamp = 120000

    def sh(self, node, script, check=True):
        return labctl("exec", node, "--", "sh", "-c", script, check=check).stdout

    def checksums(self, node):
        return self.sh(node, "cd /data/nfs && md5sum * | sort")

    def writable(self):
        """Return the nodes on which the resource's dataset exists and is writable (answering nodes only)."""
        found = []
        for node, name in NAMES.items():
            if labctl("exec", node, "--", "true", check=False).returncode != 0:
                continue
            if self.sh(node, f"zfs get -H -o value readonly {name}", check=False).strip() == "off":
                found.append(node)
        return found

    def datasets(self, node):
        """Every dataset and snapshot of the node's pool with its guid, and the holds: the node's whole ZFS state."""
        listing = self.sh(node, "zfs list -H -t all -o name,readonly,mountpoint | sort")
        guids = self.sh(node, "zfs list -H -t snapshot -o name | xargs -r zfs get -H -p -o name,value guid | sort")
        holds = self.sh(node, "zfs list -H -t snapshot -o name | xargs -r zfs holds -H | sort", check=False)
        return listing + guids + holds

    def snapshot(self, write_kib=0):
        """Write write_kib KiB of new data on f0 and take the next zrepl_ snapshot there; return its short name."""
        self.stamp += 100
        name = f"zrepl_20261121_{self.stamp:06d}_000"
        if write_kib:
            self.sh("f0", f"dd if=/dev/urandom of=/data/nfs/w{self.stamp} bs=1k count={write_kib} status=none")
        self.sh("f0", f"zfs snapshot {ORIGIN}@{name}")
        return name

    def _playbook(self, path, extra):
        argv = [
            "ansible-playbook",
            "-i",
            str(self.inventory / "inventory.yml"),
            "-i",
            str(ROOT / "examples" / "inventory" / "lab_pair"),
            str(path),
            *extra,
        ]
        return argv, dict(os.environ, ANSIBLE_CONFIG=str(self.inventory / "ansible.cfg"))

    def runbook(self, name, *extra, check=True):
        argv, env = self._playbook(ROOT / "playbooks" / f"{name}.yml", extra)
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{name} failed ({done.returncode}):\n{done.stdout[-8000:]}\n{done.stderr[-3000:]}")
        return done

    def popen_runbook(self, name, *extra):
        argv, env = self._playbook(ROOT / "playbooks" / f"{name}.yml", extra)
        return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def playbook_here(self, name):
        """Run a helper playbook of this directory against the pair; fail with its output when it fails."""
        argv, env = self._playbook(HERE / name, [])
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise AssertionError(f"{name} failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}")
        return done

    def zrepl_wakeup(self):
        """Wake f0's push job through the zrepl_job module and wait for the replication it starts."""
        return self.playbook_here("zrepl_wakeup.yml")

    def start_zrepl(self):
        for node, config in (("f1", SINK_CONFIG), ("f0", PUSH_CONFIG)):
            self.sh(
                node,
                "pkg install -y zrepl >/dev/null && mkdir -p /usr/local/etc/zrepl && cat > "
                f"/usr/local/etc/zrepl/zrepl.yml <<'EOF'{config}EOF\n"
                "zrepl configcheck && sysrc zrepl_enable=YES >/dev/null && service zrepl restart >/dev/null",
            )


def report(stdout, key="runbook"):
    """Return the runbook's report (the debug msg dict holding key) from ansible-playbook's default output."""
    for match in re.finditer(r'"msg": (\{.*?\n    \})', stdout, re.S):
        found = json.loads(match.group(1))
        if key in found:
            return found
    raise AssertionError(f"no report with {key!r} in the output:\n{stdout[-4000:]}")
