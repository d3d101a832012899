"""Lab test of the zrepl stand-in: two nodes, f0 pushes to a sink on f1 (ssh+stdinserver and tcp).

Needs root (labctl). Its own lab: `zrepl-test` of tests/labs.py; FBSD_HA_ZREPL_LAB_KEEP=1 leaves it running. The tests
run in file order on one pair of nodes: initial replication, wakeup, divergence, pruning, crash.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from labs import lab

ROOT = Path(__file__).resolve().parents[2]
LABCTL = ROOT / "tests" / "lab" / "labctl"
LAB = lab("zrepl-test")
LAB_DIR = str(LAB.dir)
LAB_NET = LAB.net
KEEP = os.environ.get("FBSD_HA_ZREPL_LAB_KEEP") == "1"
SRC, REPLICA = "zdata/app/data", "zdata/sink/f0/zdata/app/data"
VIEW = "/zdata/replica-view"  # inside the node's pool, never on the host
SINK_CONFIG = f"""
jobs:
  - name: sink
    type: sink
    serve: {{type: stdinserver, client_identities: [f0]}}
    root_fs: zdata/sink
    recv:
      placeholder: {{encryption: inherit}}
      properties: {{override: {{readonly: "on"}}}}
  - name: tcpsink
    type: sink
    serve: {{type: tcp, listen: "{LAB_NET}.2:8888", clients: {{"{LAB_NET}.1": f0}}}}
    root_fs: zdata/tcpsink
    recv: {{placeholder: {{encryption: inherit}}}}
  - name: src
    type: source
    serve: {{type: tcp, listen: "{LAB_NET}.2:8889", clients: {{"{LAB_NET}.1": f0}}}}
    filesystems: {{"zdata/pulled<": true}}
    snapshotting: {{type: manual}}
"""
PUSH_CONFIG = f"""
jobs:
  - name: f0_to_f1
    type: push
    connect: {{type: ssh+stdinserver, host: f1, user: root, port: 22, identity_file: /root/.ssh/id_ed25519}}
    filesystems: {{"{SRC}": true}}
    snapshotting: {{type: periodic, prefix: zrepl_, interval: 10m}}
    send: {{encrypted: false}}
    pruning:
      keep_sender: [{{type: not_replicated}}, {{type: last_n, count: 3}}]
      keep_receiver: [{{type: last_n, count: 3}}]
  - name: f0_tcp
    type: push
    connect: {{type: tcp, address: "{LAB_NET}.2:8888"}}
    filesystems: {{"zdata/app/other": true}}
    snapshotting: {{type: manual}}
    pruning: {{keep_sender: [{{type: regex, regex: ".*"}}], keep_receiver: [{{type: regex, regex: ".*"}}]}}
  - name: f0_enc
    type: push
    connect: {{type: tcp, address: "{LAB_NET}.2:8888"}}
    filesystems: {{"zdata/enc<": true, "zdata/app/plain": true}}
    send: {{encrypted: true}}
    snapshotting: {{type: manual}}
    pruning: {{keep_sender: [{{type: regex, regex: ".*"}}], keep_receiver: [{{type: regex, regex: ".*"}}]}}
  - name: puller
    type: pull
    connect: {{type: tcp, address: "{LAB_NET}.2:8889"}}
    root_fs: zdata/pulledcopy
    interval: manual
    recv: {{placeholder: {{encryption: inherit}}}}
    pruning: {{keep_sender: [{{type: regex, regex: ".*"}}], keep_receiver: [{{type: last_n, count: 1}}]}}
"""
KEY = "/root/enc.key"


def labctl(*args, check=True):
    env = dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET)
    done = subprocess.run([str(LABCTL), *args], env=env, capture_output=True, text=True, check=False, timeout=300)
    assert not check or done.returncode == 0, f"labctl {args}: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done


def sh(node: str, script: str, check=True) -> str:
    done = labctl("exec", node, "--", "sh", "-c", script, check=False)
    assert not check or done.returncode == 0, f"{node}: {script}\n{done.stdout}{done.stderr}"
    return done.stdout if check else done


def now(node: str) -> datetime:
    return datetime.fromisoformat(sh(node, "date -u +%Y-%m-%dT%H:%M:%S+00:00").strip())


# Runs inside f0 (one labctl exec instead of one per poll): the push job's status once the first
# invocation that started after argv[1] has finished pruning (or failed planning).
WAIT = """
import json, subprocess, sys, time
from datetime import datetime
after, job, deadline = datetime.fromisoformat(sys.argv[1]), sys.argv[2], time.time() + 90
while True:
    out = subprocess.run(["zrepl", "status", "--mode", "raw"], capture_output=True, text=True, check=True).stdout
    rep = json.loads(out)["Jobs"][job]
    rep = rep[rep["type"]]
    repl = rep["Replication"]
    pruned = (rep["PruningReceiver"] or {}).get("State") in ("Done", "ExecErr", "PlanErr")
    if repl and datetime.fromisoformat(repl["StartAt"]) > after and (
            pruned or repl["Attempts"][-1]["State"] == "planning-error") or time.time() > deadline:
        print(json.dumps(rep))
        break
    time.sleep(0.2)
"""


def wait_invocation(after: datetime, job="f0_to_f1") -> dict:
    """The push report of the first invocation that started after `after`, once pruning is over."""
    rep = json.loads(sh("f0", f"python3 - '{after.isoformat()}' {job} <<'EOF'{WAIT}EOF"))
    started = rep["Replication"] and datetime.fromisoformat(rep["Replication"]["StartAt"]) > after
    assert started, f"no invocation of {job} after {after}: {json.dumps(rep)[:3000]}"
    return rep


def wakeup(job="f0_to_f1") -> dict:
    after = now("f0")
    time.sleep(1.1)  # StartAt must be strictly later than the second we read
    sh("f0", f"zrepl signal wakeup {job}")
    return wait_invocation(after, job)


def snapshots(node: str, ds: str) -> list:
    return sh(node, f"zfs list -H -o name -t snapshot -r {ds} | sed 's/.*@//'").split()


def holds(node: str, ds: str) -> dict:
    names = " ".join(f"{ds}@{s}" for s in snapshots(node, ds))
    out = sh(node, f"zfs holds -H {names}") if names else ""
    return {line.split("\t")[0].split("@")[1]: line.split("\t")[1] for line in out.splitlines()}


def checksum(node: str, path: str) -> str:
    return sh(node, f"sha256sum {path}").split()[0]


# A kept lab is reused: stop zrepl, release every hold and destroy what an earlier run left.
CLEAN = """service zrepl onestop >/dev/null 2>&1; rm -f /var/db/fbsd-lab/zrepl/cursors.json
for ds in zdata/app zdata/enc zdata/pulled zdata/pulledcopy zdata/sink zdata/tcpsink; do
  for s in $(zfs list -H -o name -t snapshot -r $ds 2>/dev/null); do
    zfs holds -H $s | while read -r name tag _; do zfs release "$tag" "$name"; done
  done
  for i in 1 2 3 4 5 6 7 8 9 10; do zfs destroy -r $ds 2>/dev/null || ! zfs list $ds >/dev/null 2>&1 && break; sleep 0.3; done
done
true
"""


@pytest.fixture(scope="module")
def pair():
    labctl("up", "--nodes", "2")
    sh(
        "f0",
        CLEAN + f"zfs create -p {SRC} && zfs create zdata/app/other && zfs create zdata/pulledcopy && "
        "dd if=/dev/urandom of=/zdata/app/data/blob bs=64k count=16 2>/dev/null",
    )
    sh("f1", CLEAN + "zfs create zdata/sink && zfs create zdata/tcpsink")
    for node, config in (("f1", SINK_CONFIG), ("f0", PUSH_CONFIG)):
        sh(
            node,
            f"pkg delete -y zrepl >/dev/null 2>&1; pkg install -y zrepl >/dev/null && mkdir -p /usr/local/etc/zrepl && cat > "
            f"/usr/local/etc/zrepl/zrepl.yml <<'EOF'{config}EOF\n"
            "zrepl configcheck && sysrc zrepl_enable=YES >/dev/null && service zrepl restart",
        )
    yield
    if not KEEP:
        labctl("down", check=False)
        labctl("destroy", check=False)


def test_initial_replication_lands_under_the_sink_readonly_and_held(pair):
    rep = wait_invocation(datetime.fromisoformat("2000-01-01T00:00:00+00:00"))
    attempt = rep["Replication"]["Attempts"][-1]
    assert attempt["State"] == "done", attempt
    step = attempt["Filesystems"][0]["Steps"][0]["Info"]
    assert step["From"] == "" and re.match(r"^@zrepl_\d{8}_\d{6}_000$", step["To"]) and step["BytesReplicated"] > 0
    assert snapshots("f1", REPLICA) == [step["To"][1:]]
    props = sh("f1", f"zfs get -H -o name,property,value,source readonly,zrepl:placeholder zdata/sink/f0 {REPLICA}")
    assert "zdata/sink/f0\tzrepl:placeholder\ton\tlocal" in props
    assert f"{REPLICA}\treadonly\ton\tlocal" in props
    assert holds("f1", REPLICA) == {step["To"][1:]: "zrepl_last_received_J_sink"}
    assert holds("f0", SRC) == {}  # step holds are gone once the step completed
    cursor = json.loads(sh("f0", "cat /var/db/fbsd-lab/zrepl/cursors.json"))[SRC]["f0_to_f1"]
    assert cursor["name"] == step["To"]
    sh("f1", f"zfs set mountpoint={VIEW} {REPLICA}; zfs mount {REPLICA} 2>/dev/null; true")
    assert checksum("f1", f"{VIEW}/blob") == checksum("f0", "/zdata/app/data/blob")
    sink = json.loads(sh("f1", "zrepl status --mode raw"))["Jobs"]
    assert sink["sink"] == {"sink": {"Snapper": None}, "type": "sink"}


def test_wakeup_replicates_the_new_snapshot_incrementally(pair):
    sh(
        "f0",
        f"dd if=/dev/urandom of=/zdata/app/data/blob2 bs=64k count=4 2>/dev/null; zfs snapshot {SRC}@zrepl_manual1",
    )
    attempt = wakeup()["Replication"]["Attempts"][-1]
    assert attempt["State"] == "done", attempt
    steps = attempt["Filesystems"][0]["Steps"]
    assert [s["Info"]["To"] for s in steps] == ["@zrepl_manual1"] and steps[0]["Info"]["From"].startswith("@zrepl_")
    assert checksum("f1", f"{VIEW}/blob2") == checksum("f0", "/zdata/app/data/blob2")
    assert holds("f1", REPLICA) == {"zrepl_manual1": "zrepl_last_received_J_sink"}


def test_a_write_into_the_replica_is_a_step_error_with_zfs_text(pair):
    sh("f1", f"zfs set readonly=off {REPLICA} && echo intruder > {VIEW}/intruder")
    sh("f0", f"echo more > /zdata/app/data/more; zfs snapshot {SRC}@zrepl_manual2")
    attempt = wakeup()["Replication"]["Attempts"][-1]
    fs = attempt["Filesystems"][0]
    assert (attempt["State"], fs["State"]) == ("filesystem-error", "step-error")
    assert fs["StepError"]["Err"].startswith("server error: zfs exited with error: exit status 1\nstderr:\n")
    assert f"cannot receive incremental stream: destination {REPLICA} has been modified" in fs["StepError"]["Err"]
    # the step holds of the failed step stay until the next send (zrepl's endpoint.Send cleans them up)
    assert holds("f0", SRC) == {"zrepl_manual1": "zrepl_STEP_J_f0_to_f1", "zrepl_manual2": "zrepl_STEP_J_f0_to_f1"}
    sh("f1", f"zfs rollback {REPLICA}@zrepl_manual1 && zfs set readonly=on {REPLICA}")
    attempt = wakeup()["Replication"]["Attempts"][-1]
    assert attempt["State"] == "done", attempt
    assert holds("f0", SRC) == {}
    assert snapshots("f1", REPLICA)[-1] == "zrepl_manual2"


def test_pruning_keeps_last_n_on_both_sides_and_never_a_held_snapshot(pair):
    sh(
        "f0",
        f"zfs snapshot {SRC}@zrepl_manual3 && zfs snapshot {SRC}@zrepl_manual4 && zfs hold keep_me {SRC}@zrepl_manual1",
    )
    rep = wakeup()
    assert [s["Info"]["To"] for s in rep["Replication"]["Attempts"][-1]["Filesystems"][0]["Steps"]] == [
        "@zrepl_manual3",
        "@zrepl_manual4",
    ]
    assert snapshots("f1", REPLICA) == ["zrepl_manual2", "zrepl_manual3", "zrepl_manual4"]
    assert rep["PruningReceiver"]["State"] == "Done"
    assert snapshots("f0", SRC) == ["zrepl_manual1", "zrepl_manual2", "zrepl_manual3", "zrepl_manual4"]
    sender = rep["PruningSender"]
    assert sender["State"] == "ExecErr" and sender["Completed"][0]["LastError"] == (
        "destroys failed @zrepl_manual1: dataset is busy"
    )
    sh("f0", f"zfs release keep_me {SRC}@zrepl_manual1")
    rep = wakeup()
    assert rep["PruningSender"]["State"] == "Done"
    assert snapshots("f0", SRC) == ["zrepl_manual2", "zrepl_manual3", "zrepl_manual4"]


def test_tcp_transport_maps_the_source_address_to_the_client_identity(pair):
    sh("f0", "echo tcp > /zdata/app/other/file && zfs snapshot zdata/app/other@manual_tcp")
    attempt = wakeup("f0_tcp")["Replication"]["Attempts"][-1]
    assert attempt["State"] == "done", attempt
    assert snapshots("f1", "zdata/tcpsink/f0/zdata/app/other") == ["manual_tcp"]


def test_an_encrypted_push_arrives_as_encryption_roots_whose_key_loads_on_the_sink(pair):
    key = os.urandom(32).hex()
    for node in ("f0", "f1"):
        sh(node, f"printf %s {key} > {KEY}")
    sh(
        "f0",
        f"zfs create -o encryption=on -o keyformat=hex -o keylocation=file://{KEY} zdata/enc && "
        "zfs create zdata/enc/nfsdata && echo secret > /zdata/enc/nfsdata/file && "
        "zfs snapshot zdata/enc@manual_enc && zfs snapshot zdata/enc/nfsdata@manual_enc",
    )
    attempt = wakeup("f0_enc")["Replication"]["Attempts"][-1]
    assert attempt["State"] == "done", attempt
    replica = "zdata/tcpsink/f0/zdata/enc/nfsdata"
    props = sh("f1", f"zfs get -H -o value keystatus,encryptionroot,keylocation {replica}").split()
    assert props == ["unavailable", replica, "prompt"]
    sh(
        "f1",
        f"zfs load-key -L file://{KEY} {replica} && zfs set mountpoint=/zdata/enc-view {replica}; "
        f"zfs mount {replica} 2>/dev/null; true",
    )
    assert sh("f1", "cat /zdata/enc-view/file") == "secret\n"


def test_encrypted_send_refuses_an_unencrypted_filesystem_at_planning(pair):
    sh("f0", "zfs create zdata/app/plain && zfs snapshot zdata/app/plain@manual_plain")
    attempt = wakeup("f0_enc")["Replication"]["Attempts"][-1]
    states = {f["Info"]["Name"]: (f["State"], f["PlanError"]) for f in attempt["Filesystems"]}
    assert attempt["State"] == "filesystem-error" and states["zdata/enc/nfsdata"] == ("done", None)
    assert states["zdata/app/plain"][0] == "planning-error"
    assert states["zdata/app/plain"][1]["Err"] == (
        'validate send arguments: encrypted send mandated by policy, but filesystem "zdata/app/plain" is not encrypted'
    )


def test_pull_from_a_source(pair):
    sh(
        "f1",
        "zfs create -p zdata/pulled/x && echo pulled > /zdata/pulled/x/f && "
        "zfs snapshot zdata/pulled@p1 && zfs snapshot zdata/pulled/x@p1 && zfs snapshot zdata/pulled/x@p2",
    )
    rep = wakeup("puller")
    attempt = rep["Replication"]["Attempts"][-1]
    assert attempt["State"] == "done" and rep["Snapshotting"] is None, attempt
    assert snapshots("f0", "zdata/pulledcopy/zdata/pulled/x") == ["p2"]  # most_recent, then last_n 1
    cursor = json.loads(sh("f1", "cat /var/db/fbsd-lab/zrepl/cursors.json"))["zdata/pulled/x"]["src"]
    assert cursor["name"] == "@p2"


def test_a_node_crash_kills_the_daemon_and_boot_starts_it_again(pair):
    pid = int(sh("f0", "cat /var/run/zrepl.pid"))
    labctl("crash", "f0")
    assert not Path(f"/proc/{pid}").exists() or "zrepl" not in Path(f"/proc/{pid}/cmdline").read_text()
    labctl("up", "--nodes", "2")
    assert sh("f0", "service zrepl status").startswith("zrepl is running as pid ")
    sh("f0", f"zfs snapshot {SRC}@zrepl_manual5")
    assert wakeup()["Replication"]["Attempts"][-1]["State"] == "done"
    assert snapshots("f1", REPLICA)[-1] == "zrepl_manual5"
