#!/usr/bin/python
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: zrepl_job
short_description: Wake up or reset a zrepl job, and wait for the replication it starts
version_added: 0.1.0
description:
  - Signals one job of the running zrepl daemon (C(zrepl signal wakeup|reset JOB)) and, with O(wait=true),
    polls C(zrepl status --mode raw) until a replication run that started after the module was called has
    finished. It fails with zrepl's own error text (planning or step error) when that run failed, and with the
    current state when O(timeout) passes first.
  - Without O(signal) it only reads the job; with O(wait=true) it then waits for the replication in progress
    (if any) to finish.
  - Never takes snapshots, never edits C(zrepl.yml) and never starts or stops the daemon. A wakeup replicates
    the snapshots that exist; zrepl's C(signal wakeup) does not take a snapshot, so take one first (for
    example with M(freebsd_ha.storage.zfs_snapshot) and the job's prefix) when the newest writes must be on
    the peer.
author: freebsd_ha.storage contributors (@freebsd-ha)
extends_documentation_fragment:
  - freebsd_ha.storage._attributes
attributes:
  check_mode:
    support: full
    details: Reads the job and plans the signal; sends nothing and does not wait.
  diff_mode:
    support: full
    details: The diff shows the signal and the job's replication state before and after.
  idempotent:
    support: partial
    details: A signal is an action, so every run with O(signal) sends it again and reports a change; without
      O(signal) the module only reads.
options:
  name:
    description: The job's C(name) in C(zrepl.yml).
    type: str
    required: true
  signal:
    description:
      - V(wakeup) starts an invocation now (push/pull - replication then pruning; snap - pruning). zrepl takes it
        only while the job waits; while an invocation runs it answers C(already woken up). With O(wait=true) the
        module then re-sends the wakeup every O(poll_interval) until zrepl takes it, and without it fails.
      - V(reset) cancels the running invocation of a push or pull job. When none runs zrepl answers
        C(already reset) and the module reports no change.
      - Unset, nothing is sent.
    type: str
    choices: [wakeup, reset]
  wait:
    description:
      - Poll until a replication run that started after the module was called has finished (push and pull jobs).
        Without O(signal), wait for the latest run to finish instead.
      - Not with O(signal=reset).
    type: bool
    default: false
  timeout:
    description: Seconds to wait before failing with the job's current state (0 or more; 0 reads the status once).
    type: int
    default: 600
  poll_interval:
    description: Seconds between two status reads while waiting (above 0).
    type: float
    default: 2.0
  config:
    description:
      - Path of the C(zrepl.yml) to pass as C(zrepl --config); the client reads only the control socket path from it.
      - By default zrepl searches C(/etc/zrepl/zrepl.yml) and C(/usr/local/etc/zrepl/zrepl.yml).
    type: path
notes:
  - zrepl's status has no field for the daemon's clock; the module runs on the zrepl host and compares zrepl's
    time stamps with the local clock, one second earlier than the call to allow for coarse time stamps, and
    never counts the run the status showed before the signal.
  - A failed attempt counts as final once pruning has started, reconnecting failed, or the next status read
    shows no wait for a reconnect (zrepl retries connectivity errors; it does not set the run's own end time).
  - Before zrepl v0.4.0 the signal was the same (C(wakeup)); v0.4.0-rc1 briefly called it C(replication).
seealso:
  - module: freebsd_ha.storage.zrepl_info
"""

EXAMPLES = r"""
- name: Replicate now and wait until the standby has the latest snapshot
  freebsd_ha.storage.zrepl_job:
    name: f0_to_f1_nfsdata
    signal: wakeup
    wait: true
    timeout: 900

- name: Cancel a replication stuck in planning
  freebsd_ha.storage.zrepl_job:
    name: f0_to_f1_nfsdata
    signal: reset

- name: Wait for the replication already running to end
  freebsd_ha.storage.zrepl_job:
    name: f0_to_f1_nfsdata
    wait: true
  register: sync
"""

RETURN = r"""
job:
  description: The job's status after the run, in the shape of an entry of RV(freebsd_ha.storage.zrepl_info#module:jobs).
  returned: always (on failure, when the job was read)
  type: dict
  sample:
    name: f0_to_f1_nfsdata
    type: push
    replication: {state: done, attempt_number: 1, run_started_at: "2026-11-21T13:40:01.200000000Z",
                  started_at: "2026-11-21T13:40:01.200100000Z", finished_at: "2026-11-21T13:40:04.000000000Z",
                  plan_error: null, wait_reconnect: null, bytes_expected: 624, bytes_replicated: 624, filesystems: []}
    pruning: {sender: null, receiver: null}
    snapshotting: {type: periodic, state: Waiting, state_code: 16, sleep_until: "2026-11-21T13:41:00Z",
                   error: null, filesystems: []}
    last_error: null
    warnings: []
    errors: []
    healthy: true
signal_outcome:
  description:
    - V(accepted) when zrepl took the signal, V(planned) in check mode, V(busy) when every wakeup was answered
      C(already woken up), V(not_running) when a reset found no invocation to cancel; null without O(signal).
  returned: always
  type: str
  sample: accepted
wait_result:
  description:
    - With O(wait=true), the verdict on the replication run waited for - C(started), C(finished), C(failed),
      C(settled), C(error), C(state) (one line), C(run_started_at), C(attempt_started_at). Null otherwise.
  returned: always
  type: dict
  sample: {started: true, finished: true, failed: false, settled: true, error: null,
           state: "done (attempt 1, started 2026-11-21T13:40:01.2001Z, finished 2026-11-21T13:40:04Z; filesystems: 1 done; 624 B of 624 B)",
           run_started_at: "2026-11-21T13:40:01.2Z", attempt_started_at: "2026-11-21T13:40:01.2001Z"}
duration:
  description: Seconds the module spent, waiting included.
  returned: always
  type: float
  sample: 4.02
commands:
  description: Every command run, or planned in check mode, as argv lists (each status read and each signal).
  returned: always
  type: list
  elements: list
  sample: [["/usr/local/bin/zrepl", "status", "--mode", "raw"], ["/usr/local/bin/zrepl", "signal", "wakeup", "f0_to_f1_nfsdata"],
           ["/usr/local/bin/zrepl", "status", "--mode", "raw"]]
diff:
  description: The signal and the job's replication state before and after.
  returned: when changed
  type: dict
  sample: {before: {signal: null, replication: "done (attempt 1, started 2026-11-21T13:30:01Z, ...)"},
           after: {signal: wakeup, replication: "done (attempt 1, started 2026-11-21T13:40:01.2001Z, ...)"},
           before_header: f0_to_f1_nfsdata, after_header: f0_to_f1_nfsdata}
rc:
  description: Exit status of the failed zrepl command.
  returned: when a command failed
  type: int
  sample: 1
stderr:
  description: Standard error of the failed zrepl command.
  returned: when a command failed
  type: str
  sample: 'Post "http://unix/signal": dial unix /var/run/zrepl/control: connect: no such file or directory'
"""

import time
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _zrepl
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError, Runner, StateError

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    signal=dict(type="str", choices=list(_zrepl.SIGNALS)),
    wait=dict(type="bool", default=False),
    timeout=dict(type="int", default=600),
    poll_interval=dict(type="float", default=2.0),
    config=dict(type="path"),
)


class Clock:
    """Wall time to compare with zrepl's time stamps, a monotonic deadline, and sleep; unit tests replace CLOCK."""

    @staticmethod
    def now():
        return datetime.now(timezone.utc)

    @staticmethod
    def monotonic():
        return time.monotonic()

    @staticmethod
    def sleep(seconds):
        time.sleep(seconds)


CLOCK = Clock()


def read_job(runner, params):
    """Return the status of the job named in params."""
    status = _zrepl.read_status(runner, params["config"])
    return _zrepl.select_jobs(status, [params["name"]])[params["name"]]


def send(runner, argv):
    """Send one signal; return accepted/planned/busy/not_running, or raise what an operator must fix."""
    result = runner.change(argv, check_rc=False)
    if result is None:
        return "planned"
    if result.rc == 0:
        return "accepted"
    error = _zrepl.parse_cli_error(result.stderr, result.stdout)
    if error["kind"] == "already_woken_up":
        return "busy"
    if error["kind"] == "already_reset":
        return "not_running"
    if error["kind"] == "job_missing":
        raise StateError(error["message"])
    raise _zrepl.command_error(runner.commands[-1], result)


def apply(runner, params, steps):
    """Send the planned signal; refuse a busy job unless the wait will retry it."""
    outcome = None
    for argv in steps:
        outcome = send(runner, argv)
        if outcome == "busy" and not params["wait"]:
            raise StateError(
                f"job {params['name']} is running an invocation, so zrepl did not take the wakeup (it answered: "
                f"{_zrepl.ALREADY_WOKEN_UP}); signal again when it is done, or set wait: true to re-send it until "
                "zrepl takes it"
            )
    return outcome


def wait_for_replication(runner, params, target, seen):
    """Poll until the replication run target describes has finished; return (job, verdict, signal outcome).

    target: since and exclude (which run counts), outcome and steps of the signal (re-sent while busy).
    """
    deadline = CLOCK.monotonic() + params["timeout"]
    outcome, previous = target["outcome"], None
    while True:
        try:
            job = seen["job"] = read_job(runner, params)
            action, verdict = _zrepl.plan_wait(job, target["since"], target["exclude"], previous)
        except CommandError as error:
            # The control handler drops a status request it cannot answer within 1s: try again.
            if _zrepl.parse_cli_error(error.stderr, error.stdout)["kind"] != "daemon_eof":
                raise
            if CLOCK.monotonic() >= deadline:
                raise
            action, verdict = "poll", previous
        if action == "done":
            return job, verdict, outcome
        if action == "failed":
            raise StateError(
                f"replication of job {params['name']} finished with errors: {verdict['error']} [{verdict['state']}]"
            )
        if CLOCK.monotonic() >= deadline:
            raise StateError(timeout_message(params, target["since"], verdict, outcome))
        CLOCK.sleep(params["poll_interval"])
        if outcome == "busy" and not (verdict and verdict["started"]):
            outcome = apply(runner, params, target["steps"])
        previous = verdict


def timeout_message(params, since, verdict, outcome):
    """Return the failure text when the wait timed out, naming the job's current state."""
    target = (
        f"a replication run of job {params['name']} that started after {since.isoformat()}"
        if since is not None
        else f"the latest replication run of job {params['name']}"
    )
    state = verdict["state"] if verdict else "unknown (the daemon did not answer the status request)"
    text = f"timed out after {params['timeout']}s waiting for {target} to finish; current state: {state}"
    if outcome == "busy":
        text += f"; zrepl never took the wakeup (every attempt was answered: {_zrepl.ALREADY_WOKEN_UP})"
    return text


def plan(runner, params, seen):
    """Return (job, steps, target): the job as read, the signal to send, and which replication run to wait for."""
    _zrepl.validate_job_name(params["name"])
    if params["poll_interval"] <= 0 or params["timeout"] < 0:
        raise StateError("poll_interval must be above 0 and timeout 0 or more (seconds)")
    # Taken before the read: every run the daemon starts after this moment comes after the call.
    since = _zrepl.wait_since(CLOCK.now()) if params["signal"] == "wakeup" else None
    job = seen["job"] = read_job(runner, params)
    steps = _zrepl.plan_signal(job, params["signal"], params["wait"], params["config"])
    exclude = job["replication"]["run_started_at"] if since and job["replication"] else None
    return job, steps, {"since": since, "exclude": exclude, "steps": steps}


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    runner = Runner(module, "zrepl")
    started = CLOCK.monotonic()
    seen = {"job": None}
    try:
        before, steps, target = plan(runner, params, seen)
        outcome = apply(runner, params, steps)
        job, verdict = before, None
        if params["wait"] and not module.check_mode:
            job, verdict, outcome = wait_for_replication(runner, params, dict(target, outcome=outcome), seen)
    except CommandError as error:
        module.fail_json(msg=error.msg, commands=runner.commands, job=seen["job"], **error.to_result())
    except (StateError, _zrepl.ParseError) as error:
        module.fail_json(msg=str(error), commands=runner.commands, job=seen["job"])
    run = dict(job=job, signal_outcome=outcome, wait_result=verdict, duration=round(CLOCK.monotonic() - started, 3))
    module.exit_json(**build_result(params, runner.commands, before, run))


def build_result(params, commands, before, run):
    """Return the module result from run (job, signal_outcome, wait_result, duration); changed when zrepl took the signal."""
    changed = run["signal_outcome"] in ("accepted", "planned")
    result = dict(changed=changed, commands=commands, **run)
    if changed:
        result["diff"] = dict(
            before=dict(signal=None, replication=_zrepl.describe_replication(before["replication"])),
            after=dict(signal=params["signal"], replication=_zrepl.describe_replication(run["job"]["replication"])),
            before_header=params["name"],
            after_header=params["name"],
        )
    return result


if __name__ == "__main__":
    main()
