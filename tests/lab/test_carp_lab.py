# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The carp role and module on a two-node lab: one MASTER and one BACKUP, a hand-over, a partition.

Needs root (the lab). The lab runs in its own dir and net (lab `carp` of tests/labs.py), so other labs are untouched;
FBSD_HA_CARP_LAB_KEEP=1 leaves it up afterwards. The tests run in file order and build on each other
(apply, re-apply, hand-over, partition), like a runbook.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from labs import lab

ROOT = Path(__file__).resolve().parents[2]
LABCTL = ROOT / "tests" / "lab" / "labctl"
LAB = lab("carp")
LAB_DIR = str(LAB.dir)
LAB_NET = LAB.net
KEEP = os.environ.get("FBSD_HA_CARP_LAB_KEEP") == "1"
BIN = Path(sys.executable).parent
COLLECTIONS = Path(os.environ.get("ANSIBLE_COLLECTIONS_PATH", str(ROOT / ".build" / "collections")).split(":")[0])
# Distinctive, so that a leak into any output is found by a plain substring search.
PASSWORD = "Lab-s3cret.24"
VIP = f"{LAB_NET}.100"
CARP_RE = re.compile(r"^\s*carp:\s+(\w+)\s+vhid\s+1\s+advbase\s+\d+\s+advskew\s+(\d+)", re.MULTILINE)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")

ROLE_PLAY = [
    {
        "name": "Apply the carp role",
        "hosts": "lab",
        "gather_facts": False,
        "vars": {
            "carp_password": PASSWORD,
            "ha_resources": {
                "nfs": {
                    "backend": "zrepl",
                    "nodes": ["f0", "f1"],
                    "primary": "f0",
                    "carp": {
                        "interface": "em0",
                        "vhid": 1,
                        "address": f"{VIP}/32",
                        "advskew_primary": 0,
                        "advskew_backup": 100,
                    },
                }
            },
        },
        "roles": ["freebsd_ha.storage.carp"],
    }
]


def labctl(*args, check=True):
    env = dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET)
    env.pop("FBSD_HA_LAB_STANDINS", None)
    done = subprocess.run([str(LABCTL), *args], env=env, capture_output=True, text=True, timeout=300, check=False)
    if check and done.returncode != 0:
        pytest.fail(f"labctl {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


class Lab:
    def __init__(self, workdir):
        self.workdir = workdir
        self.inventory = Path(LAB_DIR) / "ansible"
        self.env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(self.inventory / "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_DEPRECATION_WARNINGS="0",
            PATH=f"{BIN}:{os.environ['PATH']}",
        )

    def sh(self, node, script):
        return labctl("exec", node, "--", "sh", "-c", script).stdout

    def states(self):
        """Return {node: (state, advskew)} of vhid 1 as each node's ifconfig shows it."""
        return {node: CARP_RE.search(self.sh(node, "ifconfig em0")).groups() for node in ("f0", "f1")}

    def playbook(self, extra=None, check=False, verbose=False, expect_rc=0):
        """Run the role play with extra vars; return ({host: recap counters}, output)."""
        play = self.workdir / "carp_role.yml"
        play.write_text(yaml.safe_dump(ROLE_PLAY, sort_keys=False))
        argv = ["ansible-playbook", str(play), "--diff", "-e", json.dumps(extra or {})]
        argv += ["--check"] if check else []
        argv += ["-v"] if verbose else []
        done = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=600, check=False)
        output = done.stdout + done.stderr
        assert done.returncode == expect_rc, output[-8000:]
        recap = {
            host: {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", counters)}
            for host, counters in re.findall(r"^(f\d)\s+:\s+(.*)$", done.stdout, re.MULTILINE)
        }
        return recap, output

    def module(self, hosts, expect_rc=0, **args):
        """Run freebsd_ha.storage.carp ad hoc; return ({host: result}, output); fail unless the exit status is expect_rc."""
        tree = self.workdir / "tree"
        for old in tree.glob("*"):
            old.unlink()
        env = dict(
            self.env,
            ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
            ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.tree",
            ANSIBLE_CALLBACK_TREE_DIR=str(tree),
        )
        argv = ["ansible", hosts, "--diff", "-m", "freebsd_ha.storage.carp", "-a", json.dumps(args)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == expect_rc, done.stdout + done.stderr
        return {path.name: json.loads(path.read_text()) for path in tree.glob("f*")}, done.stdout + done.stderr


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    link = COLLECTIONS / "ansible_collections" / "freebsd_ha" / "storage"
    if not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT)
    # From scratch: the first test checks what the role does to nodes it never saw.
    labctl("down", check=False)
    labctl("destroy", check=False)
    labctl("up", "--nodes", "2")
    labctl("inventory", "--dir", str(Path(LAB_DIR) / "ansible"))
    lab = Lab(tmp_path_factory.mktemp("carp-lab"))
    # A fresh node's sshd may still be starting when `up` returns.
    waited = subprocess.run(
        ["ansible", "lab", "-m", "ansible.builtin.wait_for_connection", "-a", "timeout=60"],
        env=lab.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert waited.returncode == 0, waited.stdout + waited.stderr
    yield lab
    if not KEEP:
        labctl("down", check=False)
        labctl("destroy", check=False)


def test_check_mode_on_fresh_nodes_plans_and_changes_nothing(lab):
    recap, output = lab.playbook(check=True)
    assert all(counters["changed"] > 0 and counters["failed"] == 0 for counters in recap.values()), output
    for node in ("f0", "f1"):
        assert lab.sh(node, "test -e /etc/rc.conf.d/netif || echo absent").strip() == "absent"
        assert lab.sh(node, "kldstat -q -m carp; echo $?").strip() == "1"
    assert PASSWORD not in output


def test_apply_gives_one_master_and_one_backup(lab):
    recap, output = lab.playbook(verbose=True)
    assert all(counters["changed"] > 0 and counters["failed"] == 0 for counters in recap.values()), output
    assert lab.states() == {"f0": ("MASTER", "0"), "f1": ("BACKUP", "100")}
    fragment = lab.sh("f1", "stat -c '%a %u %g' /etc/rc.conf.d/netif; cat /etc/rc.conf.d/netif")
    assert fragment.splitlines()[0] == "600 0 0"
    assert "# freebsd_ha.storage:carp" in fragment.splitlines()
    assert f'ifconfig_em0_alias0="inet vhid 1 advbase 1 advskew 100 pass {PASSWORD} alias {VIP}/32"' in fragment
    assert lab.sh("f0", "grep carp_load /boot/loader.conf; sysctl -n net.inet.carp.preempt").split() == [
        'carp_load="YES"',
        "1",
    ]
    assert "net.inet.carp.preempt=1" in lab.sh("f0", "cat /etc/sysctl.conf").splitlines()
    assert PASSWORD not in output


def test_second_apply_and_check_mode_change_nothing(lab):
    recap, output = lab.playbook(verbose=True)
    assert {host: counters["changed"] for host, counters in recap.items()} == {"f0": 0, "f1": 0}, output
    recap, output = lab.playbook(check=True)
    assert {host: counters["changed"] for host, counters in recap.items()} == {"f0": 0, "f1": 0}, output
    assert PASSWORD not in output


def test_module_reads_the_state_of_both_nodes(lab):
    results, output = lab.module("f0,f1", interface="em0", vhid=1)
    assert {host: (r["state"], r["advskew"], r["preempt"], r["changed"]) for host, r in results.items()} == {
        "f0": ("MASTER", 0, True, False),
        "f1": ("BACKUP", 100, True, False),
    }, output
    assert results["f0"]["addresses"] == [VIP]


def test_module_hands_the_address_over_and_both_nodes_agree(lab):
    results, output = lab.module("f0", interface="em0", vhid=1, state="backup", method="advskew")
    assert (results["f0"]["changed"], results["f0"]["state"], results["f0"]["advskew"]) == (True, "BACKUP", 240), output
    results, output = lab.module("f1", interface="em0", vhid=1, state="master", method="advskew")
    # f1 already took over by preemption once f0 advertised 240; only its advskew is still to lower.
    assert (results["f1"]["state"], results["f1"]["advskew"]) == ("MASTER", 0), output
    writes = [argv[1:] for argv in results["f1"]["commands"] if "vhid" in argv]
    assert writes == [["em0", "vhid", "1", "advskew", "0"]], output
    assert lab.states() == {"f0": ("BACKUP", "240"), "f1": ("MASTER", "0")}
    results, output = lab.module("f0", interface="em0", vhid=1, state="backup", method="advskew")
    assert results["f0"]["changed"] is False, output


def test_reapplying_the_role_does_not_move_the_address_back(lab):
    recap, output = lab.playbook()
    assert {host: counters["changed"] for host, counters in recap.items()} == {"f0": 0, "f1": 0}, output
    assert "runs with advbase, advskew or pass other than configured" in output
    assert lab.states() == {"f0": ("BACKUP", "240"), "f1": ("MASTER", "0")}


def test_partition_makes_both_nodes_master_and_the_module_reports_it(lab):
    labctl("partition", "f0", "f1")
    try:
        results, output = lab.module("f0,f1", interface="em0", vhid=1)
        assert {host: r["state"] for host, r in results.items()} == {"f0": "MASTER", "f1": "MASTER"}, output
    finally:
        labctl("heal")
    results, output = lab.module("f0,f1", interface="em0", vhid=1)
    assert {host: r["state"] for host, r in results.items()} == {"f0": "BACKUP", "f1": "MASTER"}, output


def test_module_refuses_a_vhid_the_interface_does_not_have(lab):
    results, output = lab.module("f0", expect_rc=2, interface="em0", vhid=9, state="master")
    assert "vhid 9 does not exist on em0 (CARP vhids there: 1)" in results["f0"]["msg"], output
    assert lab.states()["f0"] == ("BACKUP", "240")


def test_runtime_update_restores_the_configured_advskew_on_request(lab):
    recap, output = lab.playbook({"carp_runtime_update": True})
    assert {host: counters["changed"] for host, counters in recap.items()} == {"f0": 1, "f1": 1}, output
    # Back to rc.conf values: f0 advskew 0 with preempt takes the address back.
    assert lab.states() == {"f0": ("MASTER", "0"), "f1": ("BACKUP", "100")}
    assert PASSWORD not in output


def test_devd_hook_is_installed_and_removed(lab):
    script = "/usr/local/libexec/carp-event"
    for node in ("f0", "f1"):
        lab.sh(node, f"mkdir -p /usr/local/libexec && printf '#!/bin/sh\\n' > {script} && chmod 755 {script}")
    hook = {"carp_devd_hook": True, "carp_devd_script": script, "carp_devd_restart": False}
    recap, output = lab.playbook(hook)
    # The lab's /etc has no devd directory yet: it is created, then the rule written.
    assert {host: counters["changed"] for host, counters in recap.items()} == {"f0": 2, "f1": 2}, output
    rule = lab.sh("f0", "cat /etc/devd/carp.conf")
    assert "# freebsd_ha.storage:carp" in rule.splitlines()
    assert '\tmatch "subsystem"\t"(1@em0)";' in rule.splitlines()
    assert f'\taction "{script} $subsystem $type";' in rule.splitlines()
    recap, output = lab.playbook(hook)
    assert {host: counters["changed"] for host, counters in recap.items()} == {"f0": 0, "f1": 0}, output
    recap, output = lab.playbook({"carp_devd_restart": False})
    assert {host: counters["changed"] for host, counters in recap.items()} == {"f0": 1, "f1": 1}, output
    assert lab.sh("f0", "test -e /etc/devd/carp.conf || echo absent").strip() == "absent"


def test_role_refuses_a_foreign_rc_conf_fragment(lab):
    lab.sh(
        "f1",
        "mkdir -p /etc/rc.conf.d/other && echo 'ifconfig_em0_alias0=\"inet 10.9.9.9/32\"' > /etc/rc.conf.d/other/x",
    )
    recap, output = lab.playbook({"carp_rc_conf_file": "/etc/rc.conf.d/other/x"}, expect_rc=2)
    assert recap["f1"]["failed"] == 1
    assert "/etc/rc.conf.d/other/x exists and was not written by this role" in output
