# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_zrepl parser, error texts and wait planner against the real 2019 raw capture and documents built from zrepl's schema.

No real raw capture of zrepl v0.3 or later exists in the corpora. The documents for those layouts
are CONSTRUCTED here from the Go struct field names documented in shared/reference/zrepl.md §2
(replication/report, daemon/pruner, daemon/snapper, daemon/job): they are not captures. The
module tests build their status outputs with the same functions (status_document).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _zrepl
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import FrozenClock, read_fixture, research_corpus_file

HN1 = "samples/zrepl/zrepl-status-raw-push-freebsd-2019-hn1.json"


def hn1_text():
    """Return the real 2019 raw status capture, read in place (the test is skipped without the corpus)."""
    return research_corpus_file(HN1).read_text()


# ---------------------------------------------------------------- constructed documents (NOT captures)

BASE = FrozenClock.now()
GO_ZERO = "0001-01-01T00:00:00Z"


def go_time(offset):
    """Return Go's RFC 3339 text for BASE + offset seconds, with nanoseconds; None gives Go's zero time."""
    if offset is None:
        return GO_ZERO
    moment = BASE + timedelta(seconds=offset)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond * 1000 + 7:09d}Z"


def timed_error(text, offset=0):
    return {"Err": text, "Time": go_time(offset)} if text else None


def filesystem(
    name, *, state="done", steps=(), current_step=None, plan_error=None, step_error=None, blocked_on="nothing"
):
    """Return a FilesystemReport; steps are [from, to, bytes_expected, bytes_replicated] lists."""
    return {
        "Info": {"Name": name},
        "State": state,
        "BlockedOn": blocked_on,
        "PlanError": timed_error(plan_error),
        "StepError": timed_error(step_error),
        "CurrentStep": len(steps) if current_step is None else current_step,
        "Steps": [
            {"Info": {"From": f, "To": t, "Resumed": False, "BytesExpected": e, "BytesReplicated": r}}
            for f, t, e, r in steps
        ],
    }


def attempt(state, start, finish=None, filesystems=(), plan_error=None):
    return {
        "State": state,
        "StartAt": go_time(start),
        "FinishAt": go_time(finish),
        "PlanError": timed_error(plan_error, finish if finish is not None else start),
        # Go marshals the nil slice of an attempt that failed planning as null.
        "Filesystems": [filesystem(**fs) for fs in filesystems] if filesystems else None,
    }


def replication(start, attempts=(), wait_since=None, wait_until=None, wait_error=None):
    # The driver never sets the run's FinishAt (replication/driver): it stays Go's zero time.
    return {
        "StartAt": go_time(start),
        "FinishAt": GO_ZERO,
        "WaitReconnectSince": go_time(wait_since),
        "WaitReconnectUntil": go_time(wait_until),
        "WaitReconnectError": timed_error(wait_error, wait_until),
        "Attempts": [attempt(**one) for one in attempts],
    }


def pruner(state="Done", error="", completed=(), pending=()):
    """Return a pruner Report; completed entries are {filesystem, destroy (count), error, skip}."""

    def fs_report(entry):
        destroy = [
            {"Name": f"zrepl_{i}", "Replicated": True, "Date": go_time(-3600)} for i in range(entry.get("destroy", 0))
        ]
        return {
            "Filesystem": entry["filesystem"],
            "SnapshotList": destroy,
            "DestroyList": destroy,
            "SkipReason": entry.get("skip", ""),
            "LastError": entry.get("error", ""),
        }

    return {
        "State": state,
        "Error": error,
        "Pending": [fs_report(entry) for entry in pending] or None,
        "Completed": [fs_report(entry) for entry in completed] or None,
    }


def periodic(state=16, sleep_until=60, error="", progress=()):
    return {
        "State": state,
        "SleepUntil": go_time(sleep_until),
        "Error": error,
        "Progress": [
            {
                "Path": path,
                "State": code,
                "SnapName": "zrepl_20261121_134000_000",
                "StartAt": go_time(0),
                "Hooks": hooks,
                "HooksHadError": hooks_error,
                "DoneAt": go_time(0.3),
            }
            for path, code, hooks, hooks_error in progress
        ]
        or None,
    }


def snapper(kind="periodic", layout="v0.6", **fields):
    """Return a snapshotter report: v0.6+ {Type, Periodic, Cron, Manual}, or the bare periodic report before."""
    if layout != "v0.6":
        return periodic(**fields)
    report = {"Type": kind, "Periodic": None, "Cron": None, "Manual": None}
    if kind == "periodic":
        report["Periodic"] = periodic(**fields)
    elif kind == "cron":
        report["Cron"] = {
            "State": fields.get("state", "waiting"),
            "WakeupTime": go_time(fields.get("wakeup", 300)),
            "Errors": fields.get("errors") or None,
            "Progress": None,
        }
    else:
        report["Manual"] = {}
    return report


def job_status(job_type="push", **spec):
    """Return {"type": T, T: <job object>} from a spec with replication/pruning_*/snapshotting keys."""
    layout = spec.pop("layout", "v0.6")
    snap = spec.get("snapshotting")
    snap_report = snapper(layout=layout, **snap) if snap is not None else None
    if job_type in ("push", "pull"):
        body = {
            "Replication": replication(**spec["replication"]) if spec.get("replication") else None,
            "PruningSender": pruner(**spec["pruning_sender"]) if spec.get("pruning_sender") else None,
            "PruningReceiver": pruner(**spec["pruning_receiver"]) if spec.get("pruning_receiver") else None,
            "Snapshotting": snap_report,
        }
    elif job_type == "snap":
        body = {"Pruning": pruner(**spec["pruning"]) if spec.get("pruning") else None, "Snapshotting": snap_report}
    else:
        body = {"Snapper": snap_report}
    return {"type": job_type, job_type: body}


def status_document(jobs, layout="v0.6"):
    """Return the raw status JSON text for {name: spec}; layout v0.2 has no Jobs/Global wrapper.

    A spec with zfs_active: true adds one running zfs command to Global.ZFSCmds (v0.3+).
    """
    specs = {name: dict(spec) for name, spec in jobs.items()}
    zfs_active = [spec.pop("zfs_active", False) for spec in specs.values()]
    job_map = {name: job_status(**dict(spec, layout=layout)) for name, spec in specs.items()}
    job_map["_control"] = {"type": "internal", "internal": None}
    if layout == "v0.2":
        return json.dumps(job_map)
    active = [{"Path": "zfs", "Args": ["zfs", "send", "-n", "tank/a@b"], "StartedAt": go_time(1)}]
    zfs_cmds = {"Active": active if any(zfs_active) else None}
    return json.dumps({"Jobs": job_map, "Global": {"ZFSCmds": zfs_cmds, "Envconst": {"Entries": []}, "OsEnviron": []}})


DONE_RUN = {
    "start": 1,
    "attempts": [
        {
            "state": "done",
            "start": 1.2,
            "finish": 4,
            "filesystems": [
                {"name": "zdata/enc/nfsdata", "steps": [["@zrepl_a", "@zrepl_b", 624, 624]]},
            ],
        }
    ],
}


def run(attempts, start=1, **extra):
    return dict({"start": start, "attempts": attempts}, **extra)


def parse_one(spec, name="f0_to_f1_nfsdata", layout="v0.6"):
    return _zrepl.parse_status_raw(status_document({name: spec}, layout))["jobs"][name]


def tui_step_error():
    """Return the step error text of the real TUI excerpt, with the TUI's box borders and wrapping removed."""
    lines = []
    for line in read_fixture("zrepl/zrepl-status-tui-step-error-modified-issue722.txt").splitlines():
        inner = line.split("│", 1)[1].rstrip("│").strip()
        lines.append(inner)
    head = lines[0].split(") ", 1)[1]
    return "\n".join([head, *lines[1:]])


# ---------------------------------------------------------------- the real v0.2 capture


def test_parse_real_2019_capture_reads_bare_job_map_layout():
    status = _zrepl.parse_status_raw(hn1_text())
    assert status["layout"] == "v0.2"
    assert list(status["jobs"]) == ["csnas"]
    assert status["internal_jobs"] == ["_control", "_prometheus"]
    assert status["active_zfs_commands"] is None


def test_parse_real_2019_capture_reports_latest_attempt_mid_replication():
    replication = _zrepl.parse_status_raw(hn1_text())["jobs"]["csnas"]["replication"]
    assert replication["state"] == "fan-out-filesystems"
    assert replication["attempt_number"] == 1
    assert replication["started_at"] == "2019-12-05T11:02:46.152463486+01:00"
    assert replication["run_started_at"] == "2019-12-05T11:02:46.152250945+01:00"
    assert replication["finished_at"] is None  # Go zero time
    assert replication["wait_reconnect"] is None
    states = [fs["state"] for fs in replication["filesystems"]]
    assert (len(states), states.count("planning"), states.count("stepping"), states.count("done")) == (39, 28, 8, 3)
    assert (replication["bytes_expected"], replication["bytes_replicated"]) == (1126872, 450216)


def test_parse_real_2019_capture_keeps_old_step_fields_and_no_blocked_on():
    replication = _zrepl.parse_status_raw(hn1_text())["jobs"]["csnas"]["replication"]
    quassel = next(fs for fs in replication["filesystems"] if fs["name"] == "zroot/ezjail/quassel")
    assert quassel == {
        "name": "zroot/ezjail/quassel",
        "state": "done",
        "blocked_on": None,
        "current_step": 1,
        "step_count": 1,
        "bytes_expected": 424088,
        "bytes_replicated": 431528,
        "plan_error": None,
        "step_error": None,
        "steps": [
            {
                "from": "@zrepl_20191205_094733_000",
                "to": "@zrepl_20191205_100245_000",
                "resumed": False,
                "encrypted": "no",
                "bytes_expected": 424088,
                "bytes_replicated": 431528,
            }
        ],
    }
    planning = next(fs for fs in replication["filesystems"] if fs["name"] == "zroot/ROOT/default")
    assert (planning["step_count"], planning["current_step"], planning["steps"]) == (0, 0, [])


def test_parse_real_2019_capture_decodes_pre_v06_periodic_snapshotter():
    job = _zrepl.parse_status_raw(hn1_text())["jobs"]["csnas"]
    snapshotting = job["snapshotting"]
    assert {key: snapshotting[key] for key in ("type", "state", "state_code", "sleep_until", "error")} == {
        "type": "periodic",
        "state": "Waiting",
        "state_code": 16,
        "sleep_until": "2019-12-05T11:17:31.529214347+01:00",
        "error": None,
    }
    assert len(snapshotting["filesystems"]) == 39
    assert {fs["state"] for fs in snapshotting["filesystems"]} == {"SnapDone"}
    mysql = next(fs for fs in snapshotting["filesystems"] if fs["path"] == "zroot/ezjail/mysql")
    assert mysql["hooks"].splitlines()[0] == "1 Ok 1ms   FLUSH TABLES WITH READ LOCK"
    assert job["pruning"] == {"sender": None, "receiver": None}
    assert (job["last_error"], job["errors"], job["warnings"], job["healthy"]) == (None, [], [], True)


def test_real_2019_capture_run_counts_only_for_calls_before_it_started():
    job = _zrepl.parse_status_raw(hn1_text())["jobs"]["csnas"]
    started = _zrepl.parse_go_time("2019-12-05T11:02:46.152250945+01:00")
    before = _zrepl.replication_finished_since(job, started - timedelta(seconds=5))
    after = _zrepl.replication_finished_since(job, started + timedelta(seconds=5))
    assert (before["started"], before["finished"]) == (True, False)
    assert after["started"] is False
    assert "28 planning, 8 stepping, 3 done" in before["state"]
    assert _zrepl.plan_wait(job, started - timedelta(seconds=5))[0] == "poll"


# ---------------------------------------------------------------- constructed v0.3+ layouts


def test_parse_v06_document_reads_wrapper_and_typed_snapshotter():
    spec = {
        "replication": DONE_RUN,
        "pruning_sender": {"completed": [{"filesystem": "zdata/enc/nfsdata", "destroy": 2}]},
        "pruning_receiver": {"completed": [{"filesystem": "zdata/sink/f0/zdata/enc/nfsdata", "destroy": 1}]},
        "snapshotting": {"kind": "periodic", "state": 16, "sleep_until": 60},
        "zfs_active": True,
    }
    status = _zrepl.parse_status_raw(status_document({"f0_to_f1_nfsdata": spec}))
    assert (status["layout"], status["internal_jobs"]) == ("v0.3+", ["_control"])
    assert status["active_zfs_commands"] == [{"args": ["zfs", "send", "-n", "tank/a@b"], "started_at": go_time(1)}]
    job = status["jobs"]["f0_to_f1_nfsdata"]
    assert job["replication"]["state"] == "done"
    assert job["replication"]["finished_at"] == go_time(4)
    assert job["replication"]["filesystems"][0]["blocked_on"] == "nothing"
    assert job["replication"]["filesystems"][0]["steps"][0]["encrypted"] is None
    assert job["pruning"]["sender"] == {
        "state": "Done",
        "error": None,
        "pending": 0,
        "completed": 1,
        "skipped": 0,
        "snapshots_destroyed": 2,
        "failed_filesystems": [],
    }
    assert job["snapshotting"] == {
        "type": "periodic",
        "state": "Waiting",
        "state_code": 16,
        "sleep_until": go_time(60),
        "error": None,
        "filesystems": [],
    }
    assert job["healthy"] is True


def test_parse_v03_to_v05_document_has_wrapper_and_bare_periodic_report():
    job = parse_one({"replication": DONE_RUN, "snapshotting": {"state": 8, "sleep_until": None}}, layout="v0.3")
    assert (job["snapshotting"]["type"], job["snapshotting"]["state"]) == ("periodic", "Snapshotting")
    assert job["snapshotting"]["sleep_until"] is None


def test_parse_v02_layout_built_from_schema_matches_the_wrapped_one():
    spec = {"replication": DONE_RUN, "snapshotting": {"state": 16}}
    bare = _zrepl.parse_status_raw(status_document({"a": spec}, layout="v0.2"))
    wrapped = _zrepl.parse_status_raw(status_document({"a": spec}, layout="v0.3"))
    assert bare["layout"] == "v0.2"
    assert bare["jobs"] == wrapped["jobs"]


def test_parse_cron_and_manual_snapshotters_of_v06():
    cron = parse_one(
        {
            "job_type": "snap",
            "snapshotting": {
                "kind": "cron",
                "state": "running",
                "errors": ["", "cron frequency is too high; snapshots were not taken 2 times"],
            },
        },
        name="local_snaps",
    )
    assert cron["snapshotting"]["type"] == "cron"
    assert cron["snapshotting"]["state"] == "running"
    assert cron["snapshotting"]["sleep_until"] == go_time(300)
    assert cron["snapshotting"]["error"] == "cron frequency is too high; snapshots were not taken 2 times"
    assert cron["errors"] == ["snapshotting running: cron frequency is too high; snapshots were not taken 2 times"]
    assert cron["pruning"] == {"local": None}
    manual = parse_one({"replication": DONE_RUN, "snapshotting": {"kind": "manual"}})
    assert (manual["snapshotting"]["type"], manual["snapshotting"]["state"]) == ("manual", None)


def test_parse_passive_jobs_have_no_replication_and_optional_snapper():
    sink = parse_one({"job_type": "sink"}, name="sink")
    source = parse_one({"job_type": "source", "snapshotting": {"kind": "periodic", "state": 16}}, name="source")
    assert (sink["type"], sink["replication"], sink["pruning"], sink["snapshotting"]) == ("sink", None, None, None)
    assert source["snapshotting"]["state"] == "Waiting"


def test_parse_job_that_never_ran_has_null_reports():
    job = parse_one({"snapshotting": {"kind": "manual"}})
    assert job["replication"] is None
    assert job["pruning"] == {"sender": None, "receiver": None}
    assert _zrepl.describe_replication(job["replication"]) == "no replication has run since the daemon started"


# ---------------------------------------------------------------- errors and summaries


def planning_failure(text):
    """Return an attempt spec that failed planning with text (1s to 2s after BASE)."""
    return {"state": "planning-error", "start": 1, "finish": 2, "plan_error": text}


def test_last_error_is_the_attempt_planning_error():
    job = parse_one({"replication": run([planning_failure("server error: connection refused")])})
    assert job["replication"]["filesystems"] == []
    assert job["last_error"] == "server error: connection refused"
    assert job["errors"] == ["replication attempt 1: server error: connection refused"]
    assert job["healthy"] is False


def test_last_error_names_each_failed_filesystem_with_zrepls_text():
    no_common = read_fixture("zrepl/zrepl-error-no-common-snapshot-foozone.txt").strip()
    modified = tui_step_error()
    job = parse_one(
        {
            "replication": {
                "start": 1,
                "attempts": [
                    {
                        "state": "filesystem-error",
                        "start": 1,
                        "finish": 3,
                        "filesystems": [
                            {"name": "zdata/enc/nfsdata", "state": "planning-error", "plan_error": no_common},
                            {
                                "name": "zroot/ROOT/debian",
                                "state": "step-error",
                                "step_error": modified,
                                "steps": [["@a", "@b", 117440512, 402739]],
                                "current_step": 0,
                            },
                            {"name": "zroot/usr", "state": "done"},
                        ],
                    }
                ],
            }
        }
    )
    assert modified.startswith("server error: zfs exited with error: exit status\nstderr:\ncannot receive incremental")
    assert job["last_error"] == f"zdata/enc/nfsdata: {no_common}; zroot/ROOT/debian: {modified}"


def test_last_error_of_a_finished_retry_ignores_earlier_failed_attempts():
    retried = DONE_RUN["attempts"][0] | {"start": 20, "finish": 22}
    job = parse_one({"replication": run([planning_failure("dial tcp: i/o timeout"), retried])})
    assert (job["replication"]["attempt_number"], job["replication"]["state"], job["last_error"]) == (2, "done", None)


def test_failed_reconnect_is_part_of_last_error():
    failure = planning_failure("dial tcp 192.168.2.131:8888: i/o timeout")
    spec = run([failure], wait_since=2, wait_until=602, wait_error="context deadline exceeded")
    job = parse_one({"replication": spec})
    assert job["replication"]["wait_reconnect"] == {
        "since": go_time(2),
        "until": go_time(602),
        "error": "context deadline exceeded",
    }
    assert job["last_error"] == "dial tcp 192.168.2.131:8888: i/o timeout; reconnect failed: context deadline exceeded"


def test_pruning_and_snapshotting_problems_are_summarised_per_job():
    job = parse_one(
        {
            "replication": DONE_RUN,
            "pruning_sender": {
                "state": "ExecErr",
                "completed": [
                    {
                        "filesystem": "rpool/home",
                        "error": "replication cursor bookmark does not exist (one successful replication is required before pruning works)",
                    },
                    {"filesystem": "rpool", "skip": "filesystem is placeholder"},
                ],
            },
            "pruning_receiver": {"state": "Done"},
            "snapshotting": {
                "kind": "periodic",
                "state": 32,
                "error": "one or more snapshots could not be created, check logs for details",
                "progress": [["zdata/a", 8, "1 Err 2ms snapshot", True], ["zdata/b", 4, "1 Ok 3ms snapshot", False]],
            },
        }
    )
    assert job["pruning"]["sender"]["skipped"] == 1
    assert job["errors"] == [
        "pruning (sender) ExecErr: rpool/home: replication cursor bookmark does not exist (one successful replication is required before pruning works)",
        "snapshotting ErrorWait: one or more snapshots could not be created, check logs for details",
        "snapshots failed on zdata/a",
    ]
    assert job["warnings"] == ["snapshot hooks reported errors on zdata/a"]
    warnings, errors = _zrepl.summarize({"f0_to_f1_nfsdata": job})
    assert errors[0].startswith("f0_to_f1_nfsdata: pruning (sender) ExecErr: rpool/home")
    assert warnings == ["f0_to_f1_nfsdata: snapshot hooks reported errors on zdata/a"]


def test_select_jobs_refuses_names_the_daemon_does_not_run():
    status = _zrepl.parse_status_raw(status_document({"f0_to_f1_nfsdata": {"replication": DONE_RUN}}))
    assert list(_zrepl.select_jobs(status, ["f0_to_f1_nfsdata"])) == ["f0_to_f1_nfsdata"]
    with pytest.raises(StateError, match=r"runs no job named f0_to_f9; it runs: f0_to_f1_nfsdata"):
        _zrepl.select_jobs(status, ["f0_to_f9"])


# ---------------------------------------------------------------- malformed output


def test_dump_mode_text_is_not_mistaken_for_a_status():
    with pytest.raises(_zrepl.ParseError, match=r"not JSON .*'Job: rpool-server-rootfs'.*--mode raw"):
        _zrepl.parse_status_raw(read_fixture("zrepl/zrepl-status-dump-push-done-issue353.txt"))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("", r"empty output"),
        ("[]", r"expected a JSON object at the top level, got list"),
        ("{}", r"lists no jobs at all"),
        ('{"Jobs": {}, "Global": null, "Extra": 1}', r"unknown top-level keys next to Jobs/Global: Extra"),
        ('{"csnas": 1}', r"unknown layout: top-level key 'csnas' is neither"),
        ('{"a": {"type": "replicate", "replicate": {}}}', r"jobs\.a\.type: unknown value 'replicate'"),
        ('{"a": {"type": "push"}}', r"jobs\.a: no 'push' object"),
        (
            '{"a": {"type": "push", "push": {"Replication": {"StartAt": "x"}}}}',
            r"no Attempts field; .*older than zrepl v0\.2",
        ),
        (
            '{"a": {"type": "push", "push": {"Snapshotting": {"Foo": 1}}}}',
            r"jobs\.a\.push\.Snapshotting: unknown snapshotting layout",
        ),
        (
            '{"a": {"type": "push", "push": {"Snapshotting": {"State": 3}}}}',
            r"Snapshotting\.State: unknown periodic snapshotter state 3",
        ),
        (
            '{"a": {"type": "push", "push": {"PruningSender": {"State": "Sleeping", "Error": "", "Pending": null, "Completed": null}}}}',
            r"PruningSender\.State: unknown value 'Sleeping'",
        ),
    ],
)
def test_malformed_documents_raise_parse_error_naming_the_problem(document, message):
    with pytest.raises(_zrepl.ParseError, match=message):
        _zrepl.parse_status_raw(document)


def test_unknown_attempt_state_and_bad_time_stamp_name_their_path():
    raw = json.loads(status_document({"a": {"replication": DONE_RUN}}))
    raw["Jobs"]["a"]["push"]["Replication"]["Attempts"][0]["State"] = "stepping"
    with pytest.raises(
        _zrepl.ParseError, match=r"jobs\.a\.push\.Replication\.Attempts\[0\]\.State: unknown value 'stepping'"
    ):
        _zrepl.parse_status_raw(json.dumps(raw))
    raw = json.loads(status_document({"a": {"replication": DONE_RUN}}))
    raw["Jobs"]["a"]["push"]["Replication"]["Attempts"][0]["Filesystems"][0]["Steps"][0]["Info"]["BytesExpected"] = (
        "624"
    )
    with pytest.raises(
        _zrepl.ParseError, match=r"Filesystems\[0\]\.Steps\[0\]\.Info\.BytesExpected: expected a number"
    ):
        _zrepl.parse_status_raw(json.dumps(raw))
    raw = json.loads(status_document({"a": {"replication": DONE_RUN}}))
    raw["Jobs"]["a"]["push"]["Replication"]["StartAt"] = "yesterday"
    with pytest.raises(_zrepl.ParseError, match=r"not an RFC 3339 time stamp: 'yesterday'"):
        _zrepl.parse_status_raw(json.dumps(raw))


def test_parse_go_time_reads_offsets_nanoseconds_and_the_zero_time():
    assert _zrepl.parse_go_time("0001-01-01T00:00:00Z") is None
    assert _zrepl.parse_go_time(None) is None
    moment = _zrepl.parse_go_time("2019-12-05T11:02:46.152250945+01:00")
    assert moment == datetime(2019, 12, 5, 10, 2, 46, 152250, tzinfo=timezone.utc)
    assert _zrepl.parse_go_time("2025-07-01T22:31:48+03:00") == datetime(2025, 7, 1, 19, 31, 48, tzinfo=timezone.utc)


# ---------------------------------------------------------------- CLI texts and argv


def test_cli_error_eof_from_the_real_capture_is_a_daemon_eof():
    error = _zrepl.parse_cli_error(read_fixture("zrepl/zrepl-status-error-eof-issue883.txt"))
    assert error["kind"] == "daemon_eof"
    assert 'status fetch: Post "http://unix/status": EOF' in error["message"]
    assert "1s write timeout" in error["message"]


def test_cli_error_for_a_stopped_daemon_names_the_socket():
    error = _zrepl.parse_cli_error(read_fixture("zrepl/zrepl-signal-error-daemon-down-issue803.txt"))
    assert (error["kind"], error["socket"]) == ("daemon_unreachable", "/var/run/zrepl/control")
    assert "service zrepl start" in error["message"]
    # Releases whose client dialled before the request wrap the error in client/status.go's words.
    wrapped = _zrepl.parse_cli_error('connect to daemon socket at "/var/run/zrepl/control": dial unix: no such file')
    assert (wrapped["kind"], wrapped["socket"]) == ("daemon_unreachable", "/var/run/zrepl/control")


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        # daemon/daemon.go: errors.Errorf("Job %s does not exist", job), printed verbatim by the client
        ("Job f0_to_f9 does not exist\n", "job_missing"),
        ("already woken up\n", "already_woken_up"),
        ("Cannot reset\n", "already_reset"),
        ("could not parse config: open /etc/zrepl/zrepl.yml: no such file or directory\n", "config_error"),
        ('operation "x" is invalid\n', "other"),
    ],
)
def test_cli_error_kinds(stderr, kind):
    assert _zrepl.parse_cli_error(stderr)["kind"] == kind


def test_cli_error_already_reset_from_the_real_capture():
    error = _zrepl.parse_cli_error(read_fixture("zrepl/zrepl-signal-reset-already-reset-issue451.txt"))
    assert error["kind"] == "already_reset"
    assert _zrepl.parse_cli_error("Job f0_to_f9 does not exist")["job"] == "f0_to_f9"


def test_argv_builders_put_the_global_config_flag_first():
    assert _zrepl.build_status_argv() == ["status", "--mode", "raw"]
    assert _zrepl.build_status_argv("/usr/local/etc/zrepl/zrepl.yml") == [
        "--config",
        "/usr/local/etc/zrepl/zrepl.yml",
        "status",
        "--mode",
        "raw",
    ]
    assert _zrepl.build_signal_argv("wakeup", "f0_to_f1_nfsdata") == ["signal", "wakeup", "f0_to_f1_nfsdata"]


@pytest.mark.parametrize(
    ("signal", "job", "message"),
    [
        ("replication", "a", r"unknown signal 'replication'"),
        ("wakeup", "", r"non-empty string"),
        ("wakeup", "_control", r"reserved"),
        ("reset", "-x", r"read as a flag"),
    ],
)
def test_signal_argv_refuses_what_zrepl_would_misread(signal, job, message):
    with pytest.raises(StateError, match=message):
        _zrepl.build_signal_argv(signal, job)


# ---------------------------------------------------------------- signal planner


def test_plan_signal_builds_the_wakeup_and_plans_nothing_without_signal():
    job = parse_one({"replication": DONE_RUN})
    assert _zrepl.plan_signal(job, "wakeup", wait=True, config="/z.yml") == [
        ["--config", "/z.yml", "signal", "wakeup", "f0_to_f1_nfsdata"]
    ]
    assert _zrepl.plan_signal(job, None, wait=True) == []


@pytest.mark.parametrize(
    ("job_type", "signal", "wait", "message"),
    [
        ("sink", "wakeup", False, r"sink job, which only answers its peer"),
        ("source", "reset", False, r"zrepl can reset only push and pull jobs"),
        ("snap", "reset", False, r"zrepl can reset only push and pull jobs"),
        ("snap", "wakeup", True, r"wait follows replication, and job x is a snap job"),
        ("push", "reset", True, r"send reset without wait, then wakeup with wait"),
    ],
)
def test_plan_signal_refuses_signals_zrepl_would_ignore(job_type, signal, wait, message):
    job = parse_one({"job_type": job_type}, name="x")
    with pytest.raises(StateError, match=message):
        _zrepl.plan_signal(job, signal, wait)


def test_plan_signal_allows_wakeup_of_a_snap_job_without_wait():
    job = parse_one({"job_type": "snap"}, name="local_snaps")
    assert _zrepl.plan_signal(job, "wakeup") == [["signal", "wakeup", "local_snaps"]]


# ---------------------------------------------------------------- wait planner

SINCE = _zrepl.wait_since(BASE)


def fan_out(start=1.2):
    return {
        "state": "fan-out-filesystems",
        "start": start,
        "filesystems": [
            {"name": "zdata/enc/nfsdata", "state": "stepping", "steps": [["@a", "@b", 2048, 1024]], "current_step": 0}
        ],
    }


def step_error(start=1.2, finish=3):
    return {
        "state": "filesystem-error",
        "start": start,
        "finish": finish,
        "filesystems": [
            {
                "name": "zdata/enc/nfsdata",
                "state": "step-error",
                "step_error": "dial tcp 192.168.2.131:8888: i/o timeout",
            }
        ],
    }


def test_wait_since_allows_one_second_for_coarse_time_stamps():
    assert BASE - SINCE == timedelta(seconds=1)


def test_a_run_that_started_before_the_call_is_not_waited_for():
    job = parse_one({"replication": run([DONE_RUN["attempts"][0]], start=-600)})
    action, verdict = _zrepl.plan_wait(job, SINCE)
    assert (action, verdict["started"]) == ("poll", False)


def test_the_run_seen_before_the_signal_is_excluded_even_inside_the_tolerance():
    job = parse_one({"replication": run([DONE_RUN["attempts"][0]], start=-0.5)})
    assert _zrepl.plan_wait(job, SINCE)[0] == "done"
    assert _zrepl.plan_wait(job, SINCE, exclude_started_at=go_time(-0.5))[0] == "poll"


def test_a_running_attempt_is_polled_and_a_done_one_ends_the_wait():
    running = parse_one({"replication": run([fan_out()])})
    done = parse_one({"replication": DONE_RUN})
    assert _zrepl.plan_wait(running, SINCE)[1]["started"] is True
    assert _zrepl.plan_wait(running, SINCE)[0] == "poll"
    action, verdict = _zrepl.plan_wait(done, SINCE)
    assert (action, verdict["finished"], verdict["failed"], verdict["error"]) == ("done", True, False, None)


def test_a_failed_attempt_with_pruning_started_is_final():
    job = parse_one({"replication": run([step_error()]), "pruning_sender": {"state": "Plan"}})
    action, verdict = _zrepl.plan_wait(job, SINCE)
    assert (action, verdict["settled"]) == ("failed", True)
    assert verdict["error"] == "zdata/enc/nfsdata: dial tcp 192.168.2.131:8888: i/o timeout"


def test_a_failed_attempt_waiting_for_a_reconnect_is_not_final():
    job = parse_one({"replication": run([step_error()], wait_since=3, wait_until=603)})
    action, verdict = _zrepl.plan_wait(job, SINCE)
    assert (action, verdict["finished"]) == ("poll", False)
    assert "waiting to reconnect until" in verdict["state"]
    assert job["warnings"] == [f"replication is waiting to reconnect (since {go_time(3)}, until {go_time(603)})"]


def test_a_failed_reconnect_is_final():
    job = parse_one(
        {"replication": run([step_error()], wait_since=3, wait_until=603, wait_error="context deadline exceeded")}
    )
    assert _zrepl.plan_wait(job, SINCE)[0] == "failed"


def test_an_unsettled_failure_counts_only_when_the_next_read_shows_it_again():
    job = parse_one({"replication": run([step_error()])})
    action, first = _zrepl.plan_wait(job, SINCE)
    assert (action, first["finished"], first["settled"]) == ("poll", True, False)
    assert _zrepl.plan_wait(job, SINCE, previous=first)[0] == "failed"
    retried = parse_one({"replication": run([step_error(), step_error(start=10, finish=12)])})
    assert _zrepl.plan_wait(retried, SINCE, previous=first)[0] == "poll"


def test_wait_without_since_follows_the_latest_run_whenever_it_started():
    job = parse_one({"replication": run([DONE_RUN["attempts"][0]], start=-600)})
    assert _zrepl.plan_wait(job)[0] == "done"
    never = parse_one({"snapshotting": {"kind": "manual"}})
    assert _zrepl.plan_wait(never)[0] == "done"
    assert _zrepl.plan_wait(never, SINCE)[0] == "poll"


def test_format_bytes_follows_zrepls_binary_units():
    assert [_zrepl.format_bytes(n) for n in (624, 2048, 35862528)] == ["624 B", "2.0 KiB", "34.2 MiB"]
