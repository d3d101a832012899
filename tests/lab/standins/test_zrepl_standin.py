"""Contract tests for the zrepl lab stand-in, without a lab (FBSD_LAB_ROOT makes a directory a node).

configcheck is checked against zrepl's official config samples (read in place from the research
corpus) and against malformed configs with zrepl's error texts; the daemon runs against a fake
`zfs` so that `status --mode raw` can be compared with the Go field names of zrepl's reports and
with the real 2019 capture.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ZREPL = HERE / "zrepl"
# Read in place, never copied; FBSD_HA_RESEARCH_CORPUS points elsewhere, as for the unit tests.
CORPUS = (
    Path(os.environ.get("FBSD_HA_RESEARCH_CORPUS", HERE.parents[3] / "shared" / "research-corpus"))
    / "samples"
    / "zrepl"
)
REFERENCE = HERE.parents[3] / "shared" / "reference" / "samples" / "zrepl"
SAMPLES = sorted(CORPUS.glob("config-sample-*.yml")) + sorted(REFERENCE.glob("zrepl-yml-*.yml"))
GO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
ZERO = "0001-01-01T00:00:00Z"
PUSH = """
  - name: push
    type: push
    connect: {type: tcp, address: "192.0.2.1:8888"}
    filesystems: {"zdata/app<": true}
    snapshotting: {type: periodic, prefix: zrepl_, interval: %s}
    pruning:
      keep_sender: [{type: not_replicated}, {type: last_n, count: 3}]
      keep_receiver: [{type: grid, grid: "%s", regex: "^zrepl_"}]
"""
# zrepl's wording, from internal/config, internal/cli and internal/daemon/job of zrepl v0.7.
REJECTED = {
    "duplicate": ("jobs:" + PUSH % ("10m", "1x1h") * 2, 'could not parse config: duplicate job name "push"'),
    "internal": (
        "jobs:" + (PUSH % ("10m", "1x1h")).replace("name: push", "name: _push"),
        'could not parse config: job name "_push" is reserved for internal use (starts with _)',
    ),
    "unknown_type": (
        "jobs:\n  - {name: x, type: replicate}\n",
        'could not parse config: yaml: unmarshal errors:\n  invalid type name "replicate"',
    ),
    "missing_field": (
        "jobs:" + (PUSH % ("10m", "1x1h")).replace('    connect: {type: tcp, address: "192.0.2.1:8888"}\n', ""),
        "could not parse config: yaml: unmarshal errors:\n  line 2: field connect is required but has zero value",
    ),
    "bad_interval": (
        "jobs:" + PUSH % ("10x", "1x1h"),
        "could not parse config: yaml: unmarshal errors:\n  cannot parse "
        r'value "10x": must match ^\s*([\+-]?\d+)\s*(|s|m|h|d|w)\s*$',
    ),
    "negative_interval": (
        "jobs:" + PUSH % ("-5m", "1x1h"),
        "could not parse config: duration must be positive, got -5m0s",
    ),
    "bad_grid": (
        "jobs:" + PUSH % ("10m", "1x1h | 24xh"),
        "could not parse config: cannot parse interval 2 of 2: "
        r"must match ^\s*([\+-]?\d+)\s*(|s|m|h|d|w)\s*$: 24xh",
    ),
    "grid_format": (
        "jobs:" + PUSH % ("10m", "1h"),
        "could not parse config: cannot parse interval 1 of 1: retention string does not match expected format: 1h",
    ),
    "unknown_field": (
        "jobs:" + PUSH % ("10m", "1x1h") + "    recv: {}\n",
        "could not parse config: yaml: unmarshal errors:\n  line 10: field recv not found in type config.PushJob",
    ),
    "grid_order": (
        "jobs:" + PUSH % ("10m", "24x1d | 1x1h"),
        'cannot build jobs from config: cannot build job "push": '
        "cannot build receiver pruning rules: cannot build rule #0: retention grid interval length must be "
        "monotonically increasing\nconfig parsing failed",
    ),
}


def run(root: Path, *args: str, env_extra=None, timeout=30) -> subprocess.CompletedProcess:
    env = dict(os.environ, FBSD_LAB_ROOT=str(root), TZ="UTC", **(env_extra or {}))
    return subprocess.run([str(ZREPL), *args], capture_output=True, text=True, env=env, timeout=timeout, check=False)


def test_identifies_itself(tmp_path):
    out = run(tmp_path, "--lab-version")
    assert out.returncode == 0 and out.stdout.startswith("zrepl: freebsd_ha.storage lab stand-in; emulates zrepl(1)")


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda p: p.name)
def test_configcheck_accepts_the_official_and_real_samples(tmp_path, sample):
    (tmp_path / "zrepl.yml").write_text(sample.read_text())
    out = run(tmp_path, "--config", "/zrepl.yml", "configcheck", "--skip-cert-check")
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")


def test_samples_are_there():
    if not CORPUS.is_dir():
        pytest.skip(f"research corpus not present at {CORPUS}")
    assert len(list(CORPUS.glob("config-sample-*.yml"))) >= 15


def test_tls_certificates_are_checked_unless_skipped(tmp_path):
    sample = CORPUS / "config-sample-sink.yml"
    if not sample.exists():
        pytest.skip("research corpus not present")
    (tmp_path / "zrepl.yml").write_text(sample.read_text())
    out = run(tmp_path, "--config", "/zrepl.yml", "configcheck")
    assert out.returncode == 1
    assert out.stderr == (
        'cannot build jobs from config: cannot build job "laptop_sink": cannot build listener factory: '
        "cannot parse ca file: open ca.pem: no such file or directory\nconfig parsing failed\n"
    )


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_configcheck_rejects_malformed_configs_with_zrepl_texts(tmp_path, case):
    text, message = REJECTED[case]
    (tmp_path / "zrepl.yml").write_text(text)
    out = run(tmp_path, "--config", "/zrepl.yml", "configcheck")
    assert (out.returncode, out.stdout, out.stderr) == (1, "", message + "\n")


def test_missing_config_and_cli_usage_errors(tmp_path):
    out = run(tmp_path, "status", "--mode", "raw")
    assert (out.returncode, out.stderr) == (1, "could not parse config: open : no such file or directory\n")
    (tmp_path / "usr/local/etc/zrepl").mkdir(parents=True)
    (tmp_path / "usr/local/etc/zrepl/zrepl.yml").write_text("jobs: []\n")
    out = run(tmp_path, "status", "--mode", "raw")
    assert (out.returncode, out.stdout) == (1, "")
    assert out.stderr == (
        'Post "http://unix/status": dial unix /var/run/zrepl/control: connect: no such file or directory\n'
    )
    out = run(tmp_path, "status")
    assert out.stderr == "error: stdout is not a tty, please use --mode dump or --mode raw\n"
    out = run(tmp_path, "signal", "wakeup")
    assert (out.returncode, out.stderr) == (1, "Expected 2 arguments: [wakeup|reset] JOB\n")


FAKE_ZFS = """#!/bin/sh
case "$1" in
  get) printf 'zdata\\t-\\t-\\nzdata/app\\t-\\t-\\nzdata/sink\\t-\\t-\\n' ;;
  list) ;;
  *) echo "cannot $1: fake zfs of the contract test" >&2; exit 1 ;;
esac
"""
DAEMON_CONFIG = """
global:
  monitoring: [{type: prometheus, listen: ":9811"}]
jobs:
  - {name: sink, type: sink, root_fs: zdata/sink, serve: {type: local, listener_name: lsink}}
  - name: push
    type: push
    connect: {type: local, listener_name: lsink, client_identity: f0}
    filesystems: {"zdata/app<": true}
    snapshotting: {type: manual}
    pruning: {keep_sender: [{type: not_replicated}], keep_receiver: [{type: last_n, count: 2}]}
  - name: snapjob
    type: snap
    filesystems: {"zdata/app<": true}
    snapshotting: {type: periodic, interval: 10m, prefix: zrepl_}
    pruning: {keep: [{type: last_n, count: 1}]}
  - name: src
    type: source
    serve: {type: stdinserver, client_identities: [c1]}
    filesystems: {"zdata/app<": true}
    snapshotting: {type: cron, cron: "*/5 * * * *", prefix: zrepl_}
"""


@pytest.fixture
def daemon(tmp_path):
    (tmp_path / "zfs").write_text(FAKE_ZFS)
    (tmp_path / "zfs").chmod(0o755)
    (tmp_path / "zrepl.yml").write_text(DAEMON_CONFIG)
    env = dict(os.environ, FBSD_LAB_ROOT=str(tmp_path), FBSD_LAB_ZREPL_ZFS=str(tmp_path / "zfs"), TZ="UTC")
    proc = subprocess.Popen(
        [str(ZREPL), "--config", "/zrepl.yml", "daemon"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for _ in range(100):
        if (tmp_path / "var/run/zrepl/control").exists():
            break
        time.sleep(0.05)

    def zrepl(*args):
        return run(tmp_path, "--config", "/zrepl.yml", *args)

    zrepl.status = lambda: json.loads(zrepl("status", "--mode", "raw").stdout)
    yield zrepl
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0, proc.stdout.read()


def wait_for(predicate, what, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_status_raw_has_the_go_layout_of_zrepl_v07(daemon):
    raw = daemon("status", "--mode", "raw")
    assert raw.returncode == 0 and not raw.stdout.endswith("\n")  # json.RawMessage, printed as is
    status = json.loads(raw.stdout)
    assert list(status) == ["Jobs", "Global"]
    assert set(status["Global"]) == {"ZFSCmds", "Envconst", "OsEnviron"}
    jobs = status["Jobs"]
    assert list(jobs) == sorted(["_control", "_prometheus", "push", "sink", "snapjob", "src"])
    assert jobs["_control"] == {"internal": None, "type": "internal"}
    assert jobs["sink"] == {"sink": {"Snapper": None}, "type": "sink"}
    push = jobs["push"]["push"]
    assert push == {
        "Replication": None,
        "PruningSender": None,
        "PruningReceiver": None,
        "Snapshotting": {"Type": "manual", "Periodic": None, "Cron": None, "Manual": {}},
    }
    cron = jobs["src"]["source"]["Snapper"]
    assert cron["Type"] == "cron" and set(cron["Cron"]) == {"State", "WakeupTime", "Errors", "Progress"}
    assert cron["Cron"]["State"] == "waiting" and GO_TIME.match(cron["Cron"]["WakeupTime"])
    snap = wait_for(
        lambda: daemon.status()["Jobs"]["snapjob"]["snap"]["Snapshotting"]["Periodic"]["Progress"],
        "the first snapshot round",
    )
    periodic = daemon.status()["Jobs"]["snapjob"]["snap"]["Snapshotting"]["Periodic"]
    assert set(periodic) == {"State", "SleepUntil", "Error", "Progress"}
    assert periodic["State"] == 32 and periodic["Error"].startswith("one or more snapshots could not be created")
    assert snap[0]["State"] == 8 and snap[0]["HooksHadError"] and re.match(r"^1 Err \d+ms snapshot$", snap[0]["Hooks"])
    assert re.match(r"^zrepl_\d{8}_\d{6}_000$", snap[0]["SnapName"])


def test_wakeup_starts_a_new_attempt_and_reports_like_the_real_capture(daemon):
    before = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 1))
    assert daemon("signal", "wakeup", "push").returncode == 0
    rep = wait_for(
        lambda: (
            (daemon.status()["Jobs"]["push"]["push"]["PruningReceiver"] or {}).get("State") == "Done"
            and daemon.status()["Jobs"]["push"]["push"]
        ),
        "the invocation",
    )
    repl = rep["Replication"]
    assert repl["StartAt"] > before and repl["WaitReconnectSince"] == ZERO and repl["WaitReconnectError"] is None
    attempt = repl["Attempts"][-1]
    assert attempt["State"] == "filesystem-error" and GO_TIME.match(attempt["FinishAt"])
    fs = attempt["Filesystems"][0]
    assert fs["State"] == "planning-error" and fs["PlanError"]["Err"] == "sender does not have any versions"
    assert set(fs["PlanError"]) == {"Err", "Time"} and fs["BlockedOn"] == "nothing"
    sender = rep["PruningSender"]
    assert sender["State"] == "ExecErr" and sender["Completed"][0]["LastError"].startswith(
        "replication cursor bookmark does not exist"
    )
    capture = CORPUS / "zrepl-status-raw-push-freebsd-2019-hn1.json"
    if capture.exists():  # v0.2 capture: the same report structs, before BlockedOn was added
        real = json.loads(capture.read_text())["csnas"]["push"]
        real_attempt = real["Replication"]["Attempts"][0]
        assert set(repl) == set(real["Replication"]) and set(attempt) == set(real_attempt)
        assert set(fs) == set(real_attempt["Filesystems"][0]) | {"BlockedOn"}
        assert set(rep) == set(real)
        snap = daemon.status()["Jobs"]["snapjob"]["snap"]["Snapshotting"]["Periodic"]
        assert set(snap) == set(real["Snapshotting"]) and set(snap["Progress"][0]) == set(
            real["Snapshotting"]["Progress"][0]
        )


def test_signal_errors_use_the_daemon_texts(daemon):
    out = daemon("signal", "wakeup", "nope")
    assert (out.returncode, out.stderr) == (1, "Job nope does not exist\n")
    out = daemon("signal", "kick", "push")
    assert out.stderr == 'operation "kick" is invalid\n'
    assert daemon("signal", "wakeup", "sink").returncode == 0
    assert daemon("signal", "wakeup", "sink").stderr == "already woken up\n"
    assert daemon("signal", "reset", "push").returncode == 0
    assert daemon("signal", "reset", "push").stderr == "already reset\n"
    dump = daemon("status", "--mode", "dump")
    assert dump.returncode == 0 and "Job: push\n    Type: push\n" in dump.stdout
