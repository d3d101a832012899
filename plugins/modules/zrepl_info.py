#!/usr/bin/python
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: zrepl_info
short_description: Read the state of zrepl jobs from the running zrepl daemon
version_added: 0.1.0
description:
  - Runs C(zrepl status --mode raw) once and returns every configured job (or the ones named in O(jobs))
    with its latest replication attempt, pruning and snapshotting state, plus a summary of warnings and
    errors over all jobs.
  - Reads every layout of the raw status since zrepl v0.2 (a bare job map up to v0.2, the C(Jobs)/C(Global)
    wrapper since v0.3, the periodic/cron/manual snapshotter report since v0.6).
  - Changes nothing; it neither reads nor writes C(zrepl.yml) and never signals a job (see M(freebsd_ha.storage.zrepl_job)).
author: freebsd_ha.storage contributors (@freebsd-ha)
extends_documentation_fragment:
  - freebsd_ha.storage._attributes
  - freebsd_ha.storage._attributes.INFO_MODULE
options:
  config:
    description:
      - Path of the C(zrepl.yml) to pass as C(zrepl --config). The client reads it only for the control
        socket path (C(global.control.sockpath)).
      - By default zrepl searches C(/etc/zrepl/zrepl.yml) and C(/usr/local/etc/zrepl/zrepl.yml).
    type: path
  jobs:
    description:
      - Return only these jobs. Naming a job the daemon does not run fails, listing the jobs it runs.
      - By default every job except zrepl's internal ones (C(_control), C(_prometheus)).
    type: list
    elements: str
notes:
  - >-
    The daemon answers the status request within a 1 second write timeout; on a busy daemon with very many
    filesystems the client then prints C(Post "http://unix/status": EOF) (zrepl issues 379 and 883). The
    module fails with that text and advice; re-running usually succeeds.
  - The replication run's own C(FinishAt) is never set by zrepl's replication driver, so the times returned
    are those of the latest attempt.
seealso:
  - module: freebsd_ha.storage.zrepl_job
"""

EXAMPLES = r"""
- name: Read the replication job on the primary
  freebsd_ha.storage.zrepl_info:
    jobs: [f0_to_f1_nfsdata]
  register: zrepl

- name: Refuse to fail over while the last replication failed
  ansible.builtin.assert:
    that: zrepl.jobs.f0_to_f1_nfsdata.last_error is none
    fail_msg: "zrepl replication is failing: {{ zrepl.jobs.f0_to_f1_nfsdata.last_error }}"

- name: Read every job through a non-default configuration
  freebsd_ha.storage.zrepl_info:
    config: /usr/local/etc/zrepl/zrepl.yml
  register: all_jobs
"""

RETURN = r"""
jobs:
  description:
    - One entry per job, keyed by job name. C(type) is V(push), V(pull), V(sink), V(source) or V(snap).
    - C(replication) (push and pull; null before the first run since the daemon started) describes the latest
      attempt - C(state) (V(planning), V(planning-error), V(fan-out-filesystems), V(filesystem-error), V(done)),
      C(attempt_number), C(started_at), C(finished_at) (null while running), C(run_started_at), C(plan_error),
      C(wait_reconnect) (C(since), C(until), C(error); null unless zrepl waits or waited for a reconnect),
      byte totals, and C(filesystems) with C(name), C(state), C(blocked_on) (null before zrepl v0.4),
      C(current_step), C(step_count), C(bytes_expected), C(bytes_replicated), C(plan_error), C(step_error)
      and C(steps) (C(from) is null for a full send; C(encrypted) only from zrepl versions that reported it).
    - C(pruning) is C({sender, receiver}) for push and pull, C({local}) for snap, null for sink and source;
      each side is null until it ran, else C(state) (V(Plan), V(PlanErr), V(Exec), V(ExecErr), V(Done); older
      V(PlanWait), V(ExecWait), V(ErrPerm)), C(error), C(pending), C(completed), C(skipped),
      C(snapshots_destroyed), C(failed_filesystems).
    - C(snapshotting) is null without a snapshotter (sink, pull, and manual snapshotting before v0.6), else
      C(type) (V(periodic), V(cron), V(manual)), C(state) (periodic - V(SyncUp), V(SyncUpErrWait),
      V(Planning), V(Snapshotting), V(Waiting), V(ErrorWait), V(Stopped), decoded from C(state_code); cron -
      V(running), V(waiting)), C(sleep_until), C(error) and per-filesystem C(filesystems).
    - Times are zrepl's own RFC 3339 text; null stands for Go's zero time (unset).
    - >-
      C(last_error) is the most relevant error text of the latest attempt (planning error, C(<fs>: <error>) per
      failed filesystem, failed reconnect); C(warnings), C(errors) and C(healthy) summarise the job.
  returned: always
  type: dict
  sample:
    f0_to_f1_nfsdata:
      name: f0_to_f1_nfsdata
      type: push
      replication:
        state: done
        attempt_number: 1
        run_started_at: "2026-11-21T13:40:01.200000000Z"
        started_at: "2026-11-21T13:40:01.200100000Z"
        finished_at: "2026-11-21T13:40:04.000000000Z"
        plan_error: null
        wait_reconnect: null
        bytes_expected: 624
        bytes_replicated: 624
        filesystems:
          - name: zdata/enc/nfsdata
            state: done
            blocked_on: nothing
            current_step: 1
            step_count: 1
            bytes_expected: 624
            bytes_replicated: 624
            plan_error: null
            step_error: null
            steps:
              - {from: "@zrepl_20261121_133900_000", to: "@zrepl_20261121_134000_000", resumed: false,
                 encrypted: null, bytes_expected: 624, bytes_replicated: 624}
      pruning:
        sender: {state: Done, error: null, pending: 0, completed: 1, skipped: 0, snapshots_destroyed: 1,
                 failed_filesystems: []}
        receiver: {state: Done, error: null, pending: 0, completed: 1, skipped: 0, snapshots_destroyed: 1,
                   failed_filesystems: []}
      snapshotting:
        type: periodic
        state: Waiting
        state_code: 16
        sleep_until: "2026-11-21T13:41:00.000000000Z"
        error: null
        filesystems: []
      last_error: null
      warnings: []
      errors: []
      healthy: true
internal_jobs:
  description: Names of zrepl's internal jobs in the status, which are not in RV(jobs).
  returned: always
  type: list
  elements: str
  sample: [_control, _prometheus]
layout:
  description: The raw status layout found, V(v0.2) (bare job map) or V(v0.3+) (C(Jobs)/C(Global) wrapper).
  returned: always
  type: str
  sample: v0.3+
active_zfs_commands:
  description: The zfs commands the daemon runs at this moment (C(args), C(started_at)); null before zrepl v0.3.
  returned: always
  type: list
  elements: dict
  sample: [{args: [zfs, send, "-i", "zdata/enc/nfsdata@zrepl_20261121_133900_000", "zdata/enc/nfsdata@zrepl_20261121_134000_000"],
            started_at: "2026-11-21T13:40:01.300000000Z"}]
summary:
  description:
    - >-
      All jobs returned at a glance. C(warnings) are sentences C(<job>: <text>) about conditions that may heal
      by themselves (waiting to reconnect, hook errors); C(errors) are sentences for failed replication
      attempts, pruning and snapshotting; C(healthy) is true when C(errors) is empty.
    - Not named C(warnings), which Ansible reserves for its own warnings.
  returned: always
  type: dict
  sample:
    healthy: false
    warnings: []
    errors: ["f0_to_f1_nfsdata: replication attempt 1: zdata/enc/nfsdata: no common snapshot or suitable bookmark between sender and receiver"]
commands:
  description: The argv lists that ran.
  returned: always
  type: list
  elements: list
  sample: [["/usr/local/bin/zrepl", "status", "--mode", "raw"]]
rc:
  description: Exit status of the failed zrepl command.
  returned: when a command failed
  type: int
  sample: 1
stderr:
  description: Standard error of the failed zrepl command.
  returned: when a command failed
  type: str
  sample: 'status fetch: Post "http://unix/status": EOF'
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _zrepl
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError, Runner, StateError

ARGUMENT_SPEC = dict(
    config=dict(type="path"),
    jobs=dict(type="list", elements="str"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    runner = Runner(module, "zrepl")
    try:
        status = _zrepl.read_status(runner, params["config"])
        jobs = _zrepl.select_jobs(status, params["jobs"])
    except CommandError as error:
        module.fail_json(msg=error.msg, commands=runner.commands, **error.to_result())
    except (StateError, _zrepl.ParseError) as error:
        module.fail_json(msg=str(error), commands=runner.commands)
    warnings, errors = _zrepl.summarize(jobs)
    module.exit_json(
        changed=False,
        commands=runner.commands,
        jobs=jobs,
        internal_jobs=status["internal_jobs"],
        layout=status["layout"],
        active_zfs_commands=status["active_zfs_commands"],
        summary=dict(healthy=not errors, warnings=warnings, errors=errors),
    )


if __name__ == "__main__":
    main()
