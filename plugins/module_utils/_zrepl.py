# PRIVATE: internal to freebsd_ha.storage, not a public API; it may change without notice.
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zrepl argv builders, the `zrepl status --mode raw` parser, CLI error texts and the wait planner (pure)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError, StateError

SIGNALS = ("wakeup", "reset")
JOB_TYPES = ("push", "pull", "sink", "source", "snap", "internal")
# push/pull run replication (and accept wakeup and reset); snap jobs accept only wakeup (it prunes);
# sink/source never read either signal, so zrepl answers every signal to them with an error.
ACTIVE_JOB_TYPES = ("push", "pull")
WAKEUP_JOB_TYPES = ("push", "pull", "snap")

# replication/report/replication_report.go
ATTEMPT_STATES = ("planning", "planning-error", "fan-out-filesystems", "filesystem-error", "done")
ATTEMPT_ERROR_STATES = ("planning-error", "filesystem-error")
ATTEMPT_TERMINAL_STATES = (*ATTEMPT_ERROR_STATES, "done")
FILESYSTEM_STATES = ("planning", "planning-error", "stepping", "step-error", "done")
FILESYSTEM_ERROR_STATES = ("planning-error", "step-error")
BLOCKED_ON = ("nothing", "plan-queue", "parent-initial-repl", "repl-queue")
# daemon/pruner: Plan/PlanWait/Exec/ExecWait/ErrPerm/Done before v0.2, Plan/PlanErr/Exec/ExecErr/Done since.
PRUNER_STATES = ("Plan", "PlanWait", "PlanErr", "Exec", "ExecWait", "ExecErr", "ErrPerm", "Done")
PRUNER_ERROR_STATES = ("PlanErr", "ExecErr", "ErrPerm")
PRUNER_RETRY_STATES = ("PlanWait", "ExecWait")
# daemon/snapper: the periodic snapper and its per-filesystem progress report bit values, not names.
PERIODIC_STATES = {
    1: "SyncUp",
    2: "SyncUpErrWait",
    4: "Planning",
    8: "Snapshotting",
    16: "Waiting",
    32: "ErrorWait",
    64: "Stopped",
}
PERIODIC_ERROR_STATES = ("SyncUpErrWait", "ErrorWait")
SNAPSHOT_FS_STATES = {1: "SnapPending", 2: "SnapStarted", 4: "SnapDone", 8: "SnapError"}
SNAPPER_TYPES = ("periodic", "cron", "manual")
CRON_STATES = ("running", "waiting")

# Go marshals time.Time as RFC 3339 with up to nine fraction digits; its zero value means "not set".
_GO_TIME_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")
GO_ZERO_YEAR = 1

# CLI failure texts (client/status, client/signal, daemon/daemon.go, daemon/job/{wakeup,reset}).
_JOB_MISSING_RE = re.compile(r"Job (?P<job>.+?) does not exist")
_SOCKET_RE = re.compile(r'connect to daemon socket at "(?P<socket>[^"]*)"')
_DIAL_RE = re.compile(r"dial unix (?P<socket>[^:\s]+): connect: (?P<reason>[^\n]+)")
_EOF_RE = re.compile(r'Post "http://unix/(?P<endpoint>[a-z]+)": EOF')
ALREADY_WOKEN_UP = "already woken up"
# "already reset" since v0.4; "Cannot reset" is the same error in older releases.
ALREADY_RESET = ("already reset", "Cannot reset")
CONFIG_ERROR = "could not parse config"


class ParseError(ValueError):
    """Output of a zrepl command did not have the documented shape."""


# ---------------------------------------------------------------- argv builders


def _global_flags(config):
    return ["--config", config] if config else []


def validate_job_name(name):
    """Return name if it can name a configured zrepl job; raise StateError saying why not."""
    if not isinstance(name, str) or not name.strip():
        raise StateError("job name must be a non-empty string (the `name` of a job in zrepl.yml)")
    if name.startswith("_"):
        raise StateError(f"job name '{name}' is reserved: zrepl uses names starting with _ for internal jobs")
    if name.startswith("-"):
        raise StateError(f"job name '{name}' starts with '-', which zrepl would read as a flag")
    return name


def build_status_argv(config=None):
    """Return `[--config PATH] status --mode raw` (the JSON status; `--raw` before v0.4)."""
    return [*_global_flags(config), "status", "--mode", "raw"]


def build_signal_argv(signal, job, config=None):
    """Return `[--config PATH] signal <wakeup|reset> <job>`."""
    if signal not in SIGNALS:
        raise StateError(f"unknown signal '{signal}': zrepl understands {', '.join(SIGNALS)}")
    return [*_global_flags(config), "signal", signal, validate_job_name(job)]


# ---------------------------------------------------------------- time stamps


def parse_go_time(value):
    """Return an aware datetime for a Go RFC 3339 time stamp, or None for the zero time (unset)."""
    if value is None:
        return None
    match = _GO_TIME_RE.match(value) if isinstance(value, str) else None
    if not match:
        raise ParseError(f"not an RFC 3339 time stamp: {value!r}")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    if year == GO_ZERO_YEAR:
        return None
    micro = int((match.group(7) or "0").ljust(9, "0")[:6])
    zone = match.group(8)
    offset = timezone.utc
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=offset)


def _time(obj, key, where):
    value = _field(obj, key, str, where)
    return value if parse_go_time(value) is not None else None


# ---------------------------------------------------------------- field access


def _field(obj, key, kind, where, nullable=False):
    if key not in obj:
        raise ParseError(f"{where}: field '{key}' is missing")
    value = obj[key]
    if value is None and nullable:
        return None
    if kind is int and isinstance(value, bool):
        raise ParseError(f"{where}.{key}: expected a number, got {value!r}")
    if not isinstance(value, kind):
        raise ParseError(f"{where}.{key}: expected {_kind_name(kind)}, got {json.dumps(value)[:80]}")
    return value


def _kind_name(kind):
    return {dict: "an object", list: "an array", str: "a string", int: "a number", bool: "true/false"}.get(
        kind, str(kind)
    )


def _list(obj, key, where):
    """Return an array field; Go marshals a nil slice as null, which means empty."""
    return _field(obj, key, list, where, nullable=True) or []


def _report(raw, where):
    """Return raw, a report object or None (Go's nil pointer); raise for anything else."""
    if raw is not None and not isinstance(raw, dict):
        raise ParseError(f"{where}: expected an object or null, got {json.dumps(raw)[:80]}")
    return raw


def _objects(obj, key, where):
    """Yield (path, item) for each object of an array field (null is empty); raise on anything but objects."""
    for index, item in enumerate(_list(obj, key, where)):
        spot = f"{where}.{key}[{index}]"
        if not isinstance(item, dict):
            raise ParseError(f"{spot}: expected an object")
        yield spot, item


def _choice(obj, key, choices, where):
    value = _field(obj, key, str, where)
    if value not in choices:
        raise ParseError(f"{where}.{key}: unknown value {value!r} (known: {', '.join(choices)})")
    return value


def _timed_error(obj, key, where):
    """Return the text of a TimedError field ({"Err", "Time"}), or None when null."""
    value = _field(obj, key, dict, where, nullable=True)
    if value is None:
        return None
    return _field(value, "Err", str, f"{where}.{key}")


# ---------------------------------------------------------------- status parser


def parse_status_raw(text):
    """Return {"layout", "jobs", "internal_jobs", "active_zfs_commands"} from `zrepl status --mode raw` output.

    Layouts: up to v0.2 the document is the job map itself; from v0.3 it is
    {"Jobs": <job map>, "Global": {...}}. Every job is {"type": T, T: <job object>}. Internal jobs
    (_control, _prometheus) are listed by name in internal_jobs, not in jobs.
    """
    stripped = (text or "").strip()
    if not stripped:
        raise ParseError("empty output: `zrepl status --mode raw` prints one JSON document")
    try:
        document = json.loads(stripped)
    except ValueError as error:
        first = stripped.splitlines()[0][:80]
        raise ParseError(
            f"not JSON ({error}); output starts with {first!r}. Only `zrepl status --mode raw` "
            "(`--raw` before v0.4) prints JSON; the dump and interactive modes print text"
        ) from None
    if not isinstance(document, dict):
        raise ParseError(f"expected a JSON object at the top level, got {type(document).__name__}")
    global_status = None
    if _is_wrapped(document):
        layout = "v0.3+"
        unknown = sorted(set(document) - {"Jobs", "Global"})
        if unknown:
            raise ParseError(f"unknown top-level keys next to Jobs/Global: {', '.join(unknown)}")
        job_map = document["Jobs"]
        global_status = _field(document, "Global", dict, "status", nullable=True) if "Global" in document else None
    else:
        layout = "v0.2"
        job_map = document
    if not job_map:
        raise ParseError("the status lists no jobs at all (zrepl always lists its internal _control job)")
    jobs, internal = {}, []
    for name in sorted(job_map):
        raw = job_map[name]
        if not isinstance(raw, dict) or "type" not in raw:
            raise ParseError(
                f"unknown layout: top-level key {name!r} is neither Jobs/Global (v0.3+) nor a job status "
                "with a 'type' (v0.2)"
            )
        job = parse_job(name, raw)
        if job is None:
            internal.append(name)
        else:
            jobs[name] = job
    return {
        "layout": layout,
        "jobs": jobs,
        "internal_jobs": internal,
        "active_zfs_commands": _zfs_commands(global_status) if global_status is not None else None,
    }


def _is_wrapped(document):
    # A v0.2 job named "Jobs" would have a "type" key directly in it; the v0.3+ job map never does.
    jobs = document.get("Jobs")
    return isinstance(jobs, dict) and "type" not in jobs


def _zfs_commands(global_status):
    where = "Global.ZFSCmds"
    cmds = _field(global_status, "ZFSCmds", dict, "Global", nullable=True) if "ZFSCmds" in global_status else None
    if cmds is None:
        return []
    return [
        {"args": _list(cmd, "Args", spot), "started_at": _time(cmd, "StartedAt", spot)}
        for spot, cmd in _objects(cmds, "Active", where)
    ]


def parse_job(name, raw):
    """Return one job's status as a plain dict, or None for an internal job."""
    where = f"jobs.{name}"
    job_type = _choice(raw, "type", JOB_TYPES, where)
    if job_type not in raw:
        raise ParseError(f'{where}: no \'{job_type}\' object next to "type": "{job_type}"')
    if job_type == "internal":
        return None
    body = _field(raw, job_type, dict, where, nullable=True) or {}
    where = f"{where}.{job_type}"
    job = {"name": name, "type": job_type, "replication": None, "pruning": None, "snapshotting": None}
    if job_type in ACTIVE_JOB_TYPES:
        job["replication"] = parse_replication(body.get("Replication"), f"{where}.Replication")
        job["pruning"] = {
            "sender": parse_pruner(body.get("PruningSender"), f"{where}.PruningSender"),
            "receiver": parse_pruner(body.get("PruningReceiver"), f"{where}.PruningReceiver"),
        }
        job["snapshotting"] = parse_snapper(body.get("Snapshotting"), f"{where}.Snapshotting")
    elif job_type == "snap":
        job["pruning"] = {"local": parse_pruner(body.get("Pruning"), f"{where}.Pruning")}
        job["snapshotting"] = parse_snapper(body.get("Snapshotting"), f"{where}.Snapshotting")
    else:
        job["snapshotting"] = parse_snapper(body.get("Snapper"), f"{where}.Snapper")
    job["last_error"] = replication_error(job["replication"])
    job["warnings"], job["errors"] = job_problems(job)
    job["healthy"] = not job["errors"]
    return job


def parse_replication(raw, where):
    """Return the replication report of an active job (None before its first run)."""
    if _report(raw, where) is None:
        return None
    if "Attempts" not in raw:
        raise ParseError(f"{where}: no Attempts field; replication reports older than zrepl v0.2 are not supported")
    attempts = [_parse_attempt(attempt, spot) for spot, attempt in _objects(raw, "Attempts", where)]
    wait_since = _time(raw, "WaitReconnectSince", where)
    wait_error = _timed_error(raw, "WaitReconnectError", where)
    report = {
        "run_started_at": _time(raw, "StartAt", where),
        "state": None,
        "attempt_number": len(attempts),
        "started_at": None,
        "finished_at": None,
        "plan_error": None,
        "wait_reconnect": None,
        "filesystems": [],
        "bytes_expected": 0,
        "bytes_replicated": 0,
    }
    if wait_since is not None or wait_error is not None:
        report["wait_reconnect"] = {
            "since": wait_since,
            "until": _time(raw, "WaitReconnectUntil", where),
            "error": wait_error,
        }
    # Every attempt but the last ended with errors; the last one is the current or most recent.
    if attempts:
        report.update(attempts[-1])
    report["bytes_expected"] = sum(fs["bytes_expected"] for fs in report["filesystems"])
    report["bytes_replicated"] = sum(fs["bytes_replicated"] for fs in report["filesystems"])
    return report


def _parse_attempt(raw, where):
    filesystems = [_parse_filesystem(fs, spot) for spot, fs in _objects(raw, "Filesystems", where)]
    return {
        "state": _choice(raw, "State", ATTEMPT_STATES, where),
        "started_at": _time(raw, "StartAt", where),
        "finished_at": _time(raw, "FinishAt", where),
        "plan_error": _timed_error(raw, "PlanError", where),
        "filesystems": filesystems,
    }


def _parse_filesystem(raw, where):
    info = _field(raw, "Info", dict, where)
    steps = []
    for step_spot, step in _objects(raw, "Steps", where):
        step_info = _field(step, "Info", dict, step_spot)
        spot = f"{step_spot}.Info"
        steps.append(
            {
                # An empty From is a full (non-incremental) send.
                "from": _field(step_info, "From", str, spot) or None,
                "to": _field(step_info, "To", str, spot),
                "resumed": _field(step_info, "Resumed", bool, spot),
                "encrypted": _field(step_info, "Encrypted", str, spot) if "Encrypted" in step_info else None,
                # 0 means "no size estimate", not an empty stream.
                "bytes_expected": _field(step_info, "BytesExpected", int, spot),
                "bytes_replicated": _field(step_info, "BytesReplicated", int, spot),
            }
        )
    current = _field(raw, "CurrentStep", int, where)
    return {
        "name": _field(info, "Name", str, f"{where}.Info"),
        "state": _choice(raw, "State", FILESYSTEM_STATES, where),
        # BlockedOn appeared with parallel replication (v0.4); older reports have none.
        "blocked_on": _choice(raw, "BlockedOn", BLOCKED_ON, where) if "BlockedOn" in raw else None,
        "current_step": current,
        "step_count": len(steps),
        "bytes_expected": sum(step["bytes_expected"] for step in steps),
        "bytes_replicated": sum(step["bytes_replicated"] for step in steps),
        "plan_error": _timed_error(raw, "PlanError", where),
        "step_error": _timed_error(raw, "StepError", where),
        "steps": steps,
    }


def parse_pruner(raw, where):
    """Return a pruner report (state, error, pending/completed counts, failed filesystems), or None."""
    if _report(raw, where) is None:
        return None
    completed = list(_objects(raw, "Completed", where))
    failed, skipped, destroyed = [], 0, 0
    for spot, fs in completed:
        name = _field(fs, "Filesystem", str, spot)
        if fs.get("SkipReason"):
            skipped += 1
        elif fs.get("LastError"):
            failed.append({"filesystem": name, "error": fs["LastError"]})
        else:
            destroyed += len(_list(fs, "DestroyList", spot))
    return {
        "state": _choice(raw, "State", PRUNER_STATES, where),
        "error": _field(raw, "Error", str, where) or None,
        "pending": len(_list(raw, "Pending", where)),
        "completed": len(completed),
        "skipped": skipped,
        "snapshots_destroyed": destroyed,
        "failed_filesystems": failed,
    }


def parse_snapper(raw, where):
    """Return a snapshotter report in one shape for every layout, or None (no snapshotter, or manual before v0.6)."""
    if _report(raw, where) is None:
        return None
    if "Type" in raw:
        # v0.6+: {"Type", "Periodic", "Cron", "Manual"}, only the object named by Type is set.
        snapper_type = _choice(raw, "Type", SNAPPER_TYPES, where)
        key = snapper_type.capitalize()
        body = _field(raw, key, dict, where, nullable=True)
        if body is None:
            raise ParseError(f"{where}: Type is {snapper_type} but {key} is null")
        if snapper_type == "periodic":
            return _parse_periodic(body, f"{where}.{key}")
        if snapper_type == "cron":
            return _parse_cron(body, f"{where}.{key}")
        return {
            "type": "manual",
            "state": None,
            "state_code": None,
            "sleep_until": None,
            "error": None,
            "filesystems": [],
        }
    if "State" in raw:
        # Before v0.6 the periodic report itself.
        return _parse_periodic(raw, where)
    raise ParseError(f"{where}: unknown snapshotting layout: neither Type (v0.6+) nor State (before v0.6)")


def _parse_periodic(raw, where):
    code = _field(raw, "State", int, where)
    if code not in PERIODIC_STATES:
        raise ParseError(f"{where}.State: unknown periodic snapshotter state {code}")
    return {
        "type": "periodic",
        "state": PERIODIC_STATES[code],
        "state_code": code,
        "sleep_until": _time(raw, "SleepUntil", where),
        "error": _field(raw, "Error", str, where) or None,
        "filesystems": _snapshot_progress(raw, where),
    }


def _parse_cron(raw, where):
    errors = [error for error in _list(raw, "Errors", where) if error]
    return {
        "type": "cron",
        "state": _choice(raw, "State", CRON_STATES, where),
        "state_code": None,
        "sleep_until": _time(raw, "WakeupTime", where),
        "error": "; ".join(errors) or None,
        "filesystems": _snapshot_progress(raw, where),
    }


def _snapshot_progress(raw, where):
    progress = []
    for spot, fs in _objects(raw, "Progress", where):
        code = _field(fs, "State", int, spot)
        if code not in SNAPSHOT_FS_STATES:
            raise ParseError(f"{spot}.State: unknown snapshot state {code}")
        progress.append(
            {
                "path": _field(fs, "Path", str, spot),
                "state": SNAPSHOT_FS_STATES[code],
                "snap_name": _field(fs, "SnapName", str, spot) or None,
                "started_at": _time(fs, "StartAt", spot),
                "done_at": _time(fs, "DoneAt", spot),
                "hooks": _field(fs, "Hooks", str, spot) or None,
                "hooks_had_error": _field(fs, "HooksHadError", bool, spot),
            }
        )
    return progress


# ---------------------------------------------------------------- errors and summaries


def filesystem_error(fs):
    """Return the error text of a filesystem in an error state, or None."""
    if fs["state"] == "planning-error":
        return fs["plan_error"]
    if fs["state"] == "step-error":
        return fs["step_error"]
    return None


def replication_error(replication):
    """Return the most relevant error text of the latest replication attempt, or None.

    In order: the attempt's planning error, each failed filesystem (`<fs>: <error>`), and the
    error that ended the wait for a reconnect.
    """
    if replication is None:
        return None
    parts = []
    if replication["plan_error"]:
        parts.append(replication["plan_error"])
    for fs in replication["filesystems"]:
        error = filesystem_error(fs)
        if error:
            parts.append(f"{fs['name']}: {error}")
    wait = replication["wait_reconnect"]
    if wait and wait["error"]:
        parts.append(f"reconnect failed: {wait['error']}")
    return "; ".join(parts) or None


def job_problems(job):
    """Return (warnings, errors) for one job: replication, pruning and snapshotting problems as sentences."""
    warnings, errors = [], []
    replication = job["replication"]
    if replication is not None:
        wait = replication["wait_reconnect"]
        if job["last_error"]:
            errors.append(f"replication attempt {replication['attempt_number']}: {job['last_error']}")
        if wait and not wait["error"] and replication["state"] in ATTEMPT_ERROR_STATES:
            warnings.append(f"replication is waiting to reconnect (since {wait['since']}, until {wait['until']})")
    for side, pruner in sorted((job["pruning"] or {}).items()):
        if pruner is None:
            continue
        if pruner["state"] in PRUNER_ERROR_STATES or pruner["error"] or pruner["failed_filesystems"]:
            details = [pruner["error"]] if pruner["error"] else []
            details += [f"{fs['filesystem']}: {fs['error']}" for fs in pruner["failed_filesystems"]]
            errors.append(f"pruning ({side}) {pruner['state']}: {'; '.join(details) or 'no details'}")
        elif pruner["state"] in PRUNER_RETRY_STATES:
            warnings.append(f"pruning ({side}) is waiting to retry ({pruner['state']})")
    snapper = job["snapshotting"]
    if snapper is not None:
        if snapper["state"] in PERIODIC_ERROR_STATES or snapper["error"]:
            errors.append(f"snapshotting {snapper['state']}: {snapper['error'] or 'no details'}")
        failed = [fs["path"] for fs in snapper["filesystems"] if fs["state"] == "SnapError"]
        hooks = [fs["path"] for fs in snapper["filesystems"] if fs["hooks_had_error"]]
        if failed:
            errors.append(f"snapshots failed on {', '.join(failed)}")
        if hooks:
            warnings.append(f"snapshot hooks reported errors on {', '.join(hooks)}")
    return warnings, errors


def select_jobs(status, names=None):
    """Return {name: job} for names (every job when None); refuse names the daemon does not run."""
    jobs = status["jobs"]
    if names is None:
        return dict(jobs)
    missing = [name for name in names if name not in jobs]
    if missing:
        raise StateError(
            f"the zrepl daemon runs no job named {', '.join(missing)}; it runs: {', '.join(sorted(jobs)) or 'none'}. "
            "Fix the job name, or restart zrepl if zrepl.yml changed since it started"
        )
    return {name: jobs[name] for name in names}


def summarize(jobs):
    """Return (warnings, errors) over jobs, each sentence prefixed with its job name."""
    warnings, errors = [], []
    for name in sorted(jobs):
        warnings += [f"{name}: {text}" for text in jobs[name]["warnings"]]
        errors += [f"{name}: {text}" for text in jobs[name]["errors"]]
    return warnings, errors


def format_bytes(count):
    """Return a byte count the way zrepl's status prints it (1024-based, one decimal)."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def describe_replication(replication):
    """Return one line saying where the latest replication attempt stands."""
    if replication is None:
        return "no replication has run since the daemon started"
    if replication["state"] is None:
        return f"replication run started at {replication['run_started_at']}, no attempt yet"
    counts = {}
    for fs in replication["filesystems"]:
        counts[fs["state"]] = counts.get(fs["state"], 0) + 1
    states = ", ".join(f"{counts[state]} {state}" for state in FILESYSTEM_STATES if state in counts)
    text = (
        f"{replication['state']} (attempt {replication['attempt_number']}, started {replication['started_at']}"
        + (f", finished {replication['finished_at']}" if replication["finished_at"] else "")
        + f"; filesystems: {states or 'none'}; "
        + f"{format_bytes(replication['bytes_replicated'])} of {format_bytes(replication['bytes_expected'])})"
    )
    wait = replication["wait_reconnect"]
    if wait and not wait["error"]:
        text += f"; waiting to reconnect until {wait['until']}"
    return text


# ---------------------------------------------------------------- CLI failures


def parse_cli_error(stderr, stdout=""):
    """Return {"kind", "message", "job", "socket"} for the error text of a failed `zrepl status` or `signal`.

    kind is one of daemon_unreachable, daemon_eof, job_missing, already_woken_up, already_reset,
    config_error, other; message is the text an operator reads.
    """
    text = (stderr or "").strip() or (stdout or "").strip()
    error = {"kind": "other", "message": text or "no error text", "job": None, "socket": None}
    job = _JOB_MISSING_RE.search(text)
    socket = _SOCKET_RE.search(text) or _DIAL_RE.search(text)
    eof = _EOF_RE.search(text)
    if job:
        error.update(
            kind="job_missing",
            job=job.group("job"),
            message=(
                f"the zrepl daemon has no job named {job.group('job')} ({text}); check the name in zrepl.yml "
                "and that the daemon was restarted after the last configuration change"
            ),
        )
    elif socket:
        error.update(
            kind="daemon_unreachable",
            socket=socket.group("socket"),
            message=(
                f"the zrepl daemon does not answer on its control socket {socket.group('socket')} ({text}); "
                "start it (service zrepl start), or set config to the zrepl.yml whose global.control.sockpath "
                "the running daemon uses"
            ),
        )
    elif eof:
        error.update(
            kind="daemon_eof",
            message=(
                f"the zrepl daemon closed the control connection without an answer ({text}); its control "
                "handler gives up after a 1s write timeout when busy (zrepl issues #379, #883). Retry; if it "
                "persists, look for 'control handler io error' in the daemon log"
            ),
        )
    elif ALREADY_WOKEN_UP in text:
        error.update(kind="already_woken_up")
    elif any(marker in text for marker in ALREADY_RESET):
        error.update(kind="already_reset")
    elif CONFIG_ERROR in text:
        error.update(kind="config_error", message=f"zrepl could not read its configuration: {text}")
    return error


def command_error(argv, result):
    """Return the CommandError for a failed zrepl command, its message explained by parse_cli_error."""
    explained = parse_cli_error(result.stderr, result.stdout)["message"]
    return CommandError(
        f"{' '.join(argv)} failed with rc {result.rc}: {explained}",
        argv=argv,
        rc=result.rc,
        stdout=result.stdout,
        stderr=result.stderr,
    )


def read_status(runner, config=None):
    """Return parse_status_raw of `zrepl status --mode raw` run through runner (the one read both modules share)."""
    result = runner.read(build_status_argv(config), check_rc=False)
    if result.rc != 0:
        raise command_error(runner.commands[-1], result)
    return parse_status_raw(result.stdout)


# ---------------------------------------------------------------- signal and wait planner


def plan_signal(job, signal=None, wait=False, config=None):
    """Return the argv tails to run for signal on job ([] without a signal); refuse what zrepl would ignore."""
    name, job_type = job["name"], job["type"]
    if wait and signal == "reset":
        raise StateError(
            "wait follows the replication a wakeup starts, and reset ends the current invocation instead; "
            "send reset without wait, then wakeup with wait"
        )
    if wait and job_type not in ACTIVE_JOB_TYPES:
        raise StateError(
            f"wait follows replication, and job {name} is a {job_type} job, which does not replicate; "
            "wait on the push or pull job instead"
        )
    if signal is None:
        return []
    if signal == "wakeup" and job_type not in WAKEUP_JOB_TYPES:
        raise StateError(
            f"job {name} is a {job_type} job, which only answers its peer and never takes a wakeup; "
            "signal the push or pull job on the other node instead"
        )
    if signal == "reset" and job_type not in ACTIVE_JOB_TYPES:
        raise StateError(f"job {name} is a {job_type} job; zrepl can reset only push and pull jobs")
    return [build_signal_argv(signal, name, config)]


# The module runs on the zrepl host and compares zrepl's time stamps with the same clock (the status
# carries no "now" of the daemon); the margin only covers time stamps printed with less precision.
SINCE_TOLERANCE = timedelta(seconds=1)


def wait_since(now):
    """Return the earliest start time a replication run may have to count as started after a call made at now."""
    return now - SINCE_TOLERANCE


def _pruning_started(job):
    # A push/pull invocation resets its reports and builds the sender pruner once replication has
    # ended, whatever its outcome (daemon/job/active.go), so a pruner report means the run is over.
    return any(pruner is not None for pruner in (job["pruning"] or {}).values())


def replication_finished_since(job, since=None, exclude_started_at=None):
    """Return the verdict on the newest replication run of job that started at or after since (any run if None).

    The run reported before the signal can be excluded by its start time. Verdict keys: started,
    finished, failed, settled (False while a failure could still turn into a reconnect and retry),
    error, state (one line), run_started_at, attempt_started_at.
    """
    replication = job["replication"]
    verdict = {
        "started": False,
        "finished": False,
        "failed": False,
        "settled": True,
        "error": None,
        "state": describe_replication(replication),
        "run_started_at": replication["run_started_at"] if replication else None,
        "attempt_started_at": replication["started_at"] if replication else None,
    }
    if replication is None:
        return verdict
    started = parse_go_time(replication["run_started_at"] or replication["started_at"])
    if since is not None and (started is None or started < since):
        return verdict
    if exclude_started_at is not None and replication["run_started_at"] == exclude_started_at:
        return verdict
    verdict["started"] = True
    state = replication["state"]
    if state not in ATTEMPT_TERMINAL_STATES:
        return verdict
    if state == "done":
        verdict["finished"] = True
        return verdict
    wait = replication["wait_reconnect"]
    # The driver's run does not set its own FinishAt; a failed attempt is final when pruning began,
    # when reconnecting failed, or when no reconnect wait follows it.
    if wait and not wait["error"] and not _pruning_started(job):
        return verdict
    verdict.update(finished=True, failed=True, error=job["last_error"] or f"attempt ended in state {state}")
    # Between the attempt's end and the reconnect decision the report briefly shows neither.
    verdict["settled"] = bool(_pruning_started(job) or (wait and wait["error"]))
    return verdict


def plan_wait(job, since=None, exclude_started_at=None, previous=None):
    """Return (action, verdict) for one status read while waiting: action is "done", "failed" or "poll".

    An unsettled failure counts once the next read shows the same failed attempt. Without since, a job
    that has not replicated since the daemon started has nothing to wait for.
    """
    verdict = replication_finished_since(job, since, exclude_started_at)
    if since is None and job["replication"] is None:
        # Waiting for "the latest run" of a job that has not run since the daemon started.
        return "done", verdict
    if not verdict["finished"]:
        return "poll", verdict
    if not verdict["failed"]:
        return "done", verdict
    if verdict["settled"]:
        return "failed", verdict
    repeated = (
        previous is not None
        and previous["failed"]
        and previous["attempt_started_at"] == verdict["attempt_started_at"]
        and previous["run_started_at"] == verdict["run_started_at"]
    )
    return ("failed" if repeated else "poll"), verdict
