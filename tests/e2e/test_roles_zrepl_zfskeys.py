# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The zfskeys and zrepl roles on a two-node lab, with the standard-pair host variables of their doc pages.

Its own lab (lab `zrepl-roles` of tests/labs.py), so the e2e lab and a developer's lab are left alone. FBSD_HA_E2E_KEEP=1 keeps it running.
The zrepl half needs the lab's zrepl stand-in (tests/lab/standins/zrepl, shipped as pkg payload).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from labs import lab

from ansible_collections.freebsd_ha.storage.tests.unit.roles.role_helpers import doc_example

ROOT = Path(__file__).resolve().parents[2]
LABCTL = ROOT / "tests" / "lab" / "labctl"
PLAYBOOKS = Path(__file__).parent / "playbooks"
LAB = lab("zrepl-roles")
LAB_DIR = str(LAB.dir)
LAB_NET = LAB.net
KEEP = os.environ.get("FBSD_HA_E2E_KEEP") == "1"
# /keys is not a node overlay in the lab (it would be the host's); a node-private directory stands in.
KEY_DIR = "/var/db/lab-zfskeys"
HAS_ZREPL = (ROOT / "tests" / "lab" / "standins" / "zrepl").exists()
RECAP = re.compile(r"^(f[01])\s+: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", re.M)


def labctl(*args):
    env = dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET)
    done = subprocess.run([str(LABCTL), *args], check=False, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"labctl {' '.join(args)}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    labctl("up", "--nodes", "2")
    labctl("inventory", "--dir", f"{LAB_DIR}/ansible")
    inventory = tmp_path_factory.mktemp("roles-inventory")
    shutil.copy(f"{LAB_DIR}/ansible/inventory.yml", inventory / "inventory.yml")
    (inventory / "group_vars").mkdir()
    (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump({"zfskeys_dir": KEY_DIR}))
    (inventory / "host_vars").mkdir()
    for host in ("f0", "f1"):
        host_vars = {
            **doc_example("zfskeys", f"standard-pair-{host}"),
            **(doc_example("zrepl", f"standard-pair-{host}") if HAS_ZREPL else {}),
        }
        (inventory / "host_vars" / f"{host}.yml").write_text(yaml.safe_dump(host_vars))
    yield inventory
    if not KEEP:
        labctl("down")
        labctl("destroy")


def node(name, script):
    return labctl("exec", name, "--", "sh", "-c", script)


def wait_for(name, script, expected, seconds=90):
    """Poll a node until the words script prints are expected; return the last words."""
    deadline = time.monotonic() + seconds
    while (out := node(name, script).split()) != expected and time.monotonic() < deadline:
        time.sleep(2)
    return out


def playbook(inventory, name, *args):
    """Run tests/e2e/playbooks/<name>; return ({host: changed count} from the recap, output). Every host must succeed."""
    env = dict(os.environ, ANSIBLE_CONFIG=f"{LAB_DIR}/ansible/ansible.cfg", ANSIBLE_NOCOLOR="1")
    argv = ["ansible-playbook", "-i", str(inventory / "inventory.yml"), str(PLAYBOOKS / name), *args]
    started = time.monotonic()
    done = subprocess.run(argv, check=False, env=env, capture_output=True, text=True)
    print(f"{name} {' '.join(args)}: {time.monotonic() - started:.1f}s")
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-12000:]}\n{done.stderr[-3000:]}"
    return {host: int(changed) for host, changed in RECAP.findall(done.stdout)}, done.stdout


# Without the zrepl stand-in only the zfskeys half runs.
SKIP_ZREPL = [] if HAS_ZREPL else ["--skip-tags", "zrepl_validate,zrepl_install,zrepl_ssh,zrepl_config,zrepl_service"]


@pytest.fixture(scope="module")
def converged(pair):
    """The first run, verbose: (inventory dir, changed per host, output)."""
    changed, output = playbook(pair, "roles_zrepl_zfskeys.yml", "-v", *SKIP_ZREPL)
    return pair, changed, output


def test_first_run_changes_both_nodes_then_normal_and_check_runs_change_nothing(converged):
    inventory, first, _ = converged
    assert first["f0"] > 0 and first["f1"] > 0
    assert playbook(inventory, "roles_zrepl_zfskeys.yml", *SKIP_ZREPL)[0] == {"f0": 0, "f1": 0}
    assert playbook(inventory, "roles_zrepl_zfskeys.yml", "--check", *SKIP_ZREPL)[0] == {"f0": 0, "f1": 0}


@pytest.mark.parametrize(("host", "root"), [("f0", "zdata/enc"), ("f1", "zdata/sink")])
def test_key_files_rc_conf_and_keylocation(converged, host, root):
    modes = node(host, f"stat -c '%a %u %g' {KEY_DIR}; stat -c '%a %u %g %s' {KEY_DIR}/{host}:zdata.key")
    assert modes.splitlines() == ["700 0 0", "400 0 0 32"]
    assert node(host, "sysrc -n zfskeys_enable zfskeys_datasets").splitlines() == ["YES", root]
    keylocation = node(host, f"zfs get -H -o value,source keylocation {root}").split()
    assert keylocation == [f"file://{KEY_DIR}/{host}:zdata.key", "local"]


def test_no_key_material_in_the_verbose_output(converged):
    _, _, output = converged
    key_b64 = node("f0", f"openssl base64 -A -in {KEY_DIR}/f0:zdata.key").strip()
    assert len(key_b64) == 44
    assert key_b64 not in output
    assert "censored" in output


GIVEN_KEY_B64 = "Zm9yIHRoZSBsYWIgb25seTogMzIgYnl0ZXMgb2Yga2U="  # b"for the lab only: 32 bytes of ke"


def run_playbook(inventory, name, *args):
    """Run a playbook that may fail; return (returncode, output)."""
    env = dict(os.environ, ANSIBLE_CONFIG=f"{LAB_DIR}/ansible/ansible.cfg", ANSIBLE_NOCOLOR="1")
    argv = ["ansible-playbook", "-i", str(inventory / "inventory.yml"), str(PLAYBOOKS / name), *args]
    done = subprocess.run(argv, check=False, env=env, capture_output=True, text=True)
    return done.returncode, done.stdout


def test_keys_copied_from_the_peer_or_given_are_written_once_and_never_replaced(converged):
    inventory = converged[0]
    given = ["-e", json.dumps({"given_key_b64": GIVEN_KEY_B64})]
    assert playbook(inventory, "roles_zfskeys_copy.yml", *given)[0] == {"f0": 0, "f1": 2}
    digest = f"sha256sum {KEY_DIR}/f0:zdata.key | cut -d' ' -f1"
    assert node("f1", digest) == node("f0", digest)
    assert node("f1", f"openssl base64 -A -in {KEY_DIR}/given.key").strip() == GIVEN_KEY_B64
    assert node("f1", f"stat -c %a {KEY_DIR}/f0:zdata.key {KEY_DIR}/given.key").split() == ["400", "400"]
    assert playbook(inventory, "roles_zfskeys_copy.yml", *given)[0] == {"f0": 0, "f1": 0}
    # A different key already in place is refused, and left as it was.
    node("f1", f"printf 'not the key of f0' > {KEY_DIR}/f0:zdata.key")
    returncode, output = run_playbook(inventory, "roles_zfskeys_copy.yml", *given)
    assert returncode != 0 and f"{KEY_DIR}/f0:zdata.key exists with a different key" in output
    assert node("f1", f"cat {KEY_DIR}/f0:zdata.key") == "not the key of f0"


@pytest.mark.skipif(not HAS_ZREPL, reason="the lab has no zrepl stand-in (tests/lab/standins/zrepl)")
def test_f0_pushes_over_ssh_stdinserver_into_a_readonly_replica_on_f1(converged):
    replica = "zdata/sink/f0/zdata/enc/nfsdata"
    node("f0", "zrepl signal wakeup f0_to_f1 || true")
    assert wait_for("f1", f"zfs list -H -o name,readonly {replica}", [replica, "on"]) == [replica, "on"]
    forced = node(
        "f1",
        "grep -c '^command=\"/usr/local/bin/zrepl stdinserver f0\",restrict ssh-ed25519 ' /root/.ssh/authorized_keys",
    )
    assert forced.strip() == "1"
    status = json.loads(node("f0", "zrepl status --mode raw"))
    attempt = status["Jobs"]["f0_to_f1"]["push"]["Replication"]["Attempts"][-1]
    assert [fs["Info"]["Name"] for fs in attempt["Filesystems"]] == ["zdata/enc/nfsdata"]


@pytest.mark.skipif(not HAS_ZREPL, reason="the lab has no zrepl stand-in (tests/lab/standins/zrepl)")
def test_config_change_restarts_and_a_rejected_config_is_not_installed(converged):
    pid = node("f0", "cat /var/run/zrepl.pid").strip()
    playbook(converged[0], "roles_zrepl_config_change.yml")
    assert node("f0", "cat /var/run/zrepl.pid").strip() != pid
    config = yaml.safe_load(node("f0", "cat /usr/local/etc/zrepl/zrepl.yml"))
    assert config["global"]["logging"][0]["level"] == "debug"
    assert [job["name"] for job in config["jobs"]] == ["f0_to_f1"]
