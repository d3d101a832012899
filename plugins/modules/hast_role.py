#!/usr/bin/python
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: hast_role
short_description: Set the role of HAST resources and initialise their metadata, refusing split brains
description:
  - Sets the hastd role (C(hastctl role init|primary|secondary)) of one or more resources of this node, and with
    O(create) writes HAST metadata (C(hastctl create)) onto local providers that have none.
  - Reads first (C(hastctl list), C(hastctl dump) per resource, the hastd log) and refuses, before any change,
    to make a resource primary while the peer is primary or the counters or log show a split brain, to give a
    role to a resource without metadata, and to overwrite metadata that is present, unreadable or another
    resource's unless O(discard_local_data) says this node's copy is to be thrown away.
  - Never starts, stops or reloads hastd, and never touches the pool or file system on C(/dev/hast/<name>).
version_added: 0.1.0
author: freebsd_ha.storage contributors (@freebsd-ha)
extends_documentation_fragment:
  - freebsd_ha.storage._attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  name:
    description: The resource name, or a list of them (the same role for each).
    type: list
    elements: str
    required: true
  role:
    description:
      - The role to set. Without it, O(create) only initialises metadata, which works while hastd is stopped.
    type: str
    choices: [init, primary, secondary]
  create:
    description:
      - Run C(hastctl create) for each resource whose provider has no HAST metadata (C(hastctl dump) fails
        with an empty metadata area). Present metadata is never re-created by this option.
      - A resource that has a role goes through C(init) for the create and back to its role (or O(role)).
    type: bool
    default: false
  discard_local_data:
    description:
      - Allow C(hastctl create) over metadata that is unreadable or belongs to another resource, and re-create
        the metadata of the split-brain loser - this node's writes since the last sync are lost and the resource
        resynchronises in full from the peer, which must be known to be primary (O(peer_role) or
        O(peer_resources)).
      - Only a copy the metadata and roles show as diverged (counters of both nodes, another resource ID, both
        nodes primary) is re-created; log lines, which outlive a resolved split brain, do not count here. A
        re-created copy no longer looks diverged, so the option is safe to repeat.
    type: bool
    default: false
  allow_split_brain:
    description:
      - Make the resource primary although the peer is primary or the copies diverged (counters of both nodes,
        or - when the peer's counters are not given - recent split-brain lines in the hastd log). The two copies
        then diverge further; one of them must later be discarded.
    type: bool
    default: false
  peer_role:
    description:
      - The role the peer node has for every resource in O(name), as the runbook knows it (for example from
        M(freebsd_ha.storage.hast_info) run on the peer). Without O(peer_role) or O(peer_resources) a primary
        peer cannot be detected and the module warns on promotion.
    type: str
    choices: [init, primary, secondary]
  peer_resources:
    description:
      - The C(resources) return value of M(freebsd_ha.storage.hast_info) run on the peer. Its C(role) and
        C(metadata) counters per resource are used to detect a primary peer and a split brain.
    type: dict
  config:
    description: The hast.conf(5) file hastctl reads (passed as C(-c) when it is not the default).
    type: path
    default: /etc/hast.conf
  log_files:
    description: Syslog files scanned (their last 4 MiB) for recent split-brain lines of hastd.
    type: list
    elements: path
    default: [/var/log/messages]
  log_window:
    description: Only log lines at most this many seconds old count as split-brain evidence.
    type: int
    default: 3600
notes:
  - C(hastctl role) only asks hastd; a primary whose worker fails (for example on missing metadata) falls back
    to init a moment later. The module reads the roles again after changing them and fails when one did not
    take.
  - Export the pool on C(/dev/hast/<name>) before demoting a primary - hastd removes the provider at once.
seealso:
  - module: freebsd_ha.storage.hast_info
"""

EXAMPLES = r"""
- name: Initialise the metadata where it is missing (hastd may still be stopped)
  freebsd_ha.storage.hast_role:
    name: [storage, nfs]
    create: true

- name: Read the peer
  freebsd_ha.storage.hast_info:
  delegate_to: f1
  register: peer

- name: Promote f0, refusing if f1 is primary or the copies diverged
  freebsd_ha.storage.hast_role:
    name: storage
    role: primary
    peer_resources: "{{ peer.resources }}"

- name: Throw away f1's diverged copy and resynchronise it from the primary f0
  freebsd_ha.storage.hast_role:
    name: storage
    role: secondary
    discard_local_data: true
    peer_role: primary
"""

RETURN = r"""
resources:
  description: Role, status and metadata state of each named resource after the run (predicted in check mode).
  returned: always
  type: dict
  sample: {storage: {role: primary, status: complete, metadata: present}}
commands:
  description: Every command run (reads) or planned (writes in check mode), as argv lists.
  returned: always
  type: list
  elements: list
  sample: [["hastctl", "list", "storage"], ["hastctl", "dump", "storage"], ["sysctl", "-n", "kern.osrelease"],
           ["hastctl", "role", "primary", "storage"], ["hastctl", "list", "storage"]]
diff:
  description: Role and metadata of each changed resource before and after.
  returned: when changed
  type: dict
  sample: {before: {storage: {role: secondary}}, after: {storage: {role: primary}}, before_header: storage,
           after_header: storage}
rc:
  description: Exit status of the failed command.
  returned: when a command failed
  type: int
  sample: 1
stderr:
  description: Standard error of the failed command.
  returned: when a command failed
  type: str
  sample: "[WARNING] [nfs] Received error 1 from hastd."
"""

from datetime import datetime, timezone
from functools import partial

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _hast
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError, Runner, StateError

ARGUMENT_SPEC = dict(
    name=dict(type="list", elements="str", required=True),
    role=dict(type="str", choices=list(_hast.ROLES)),
    create=dict(type="bool", default=False),
    discard_local_data=dict(type="bool", default=False),
    allow_split_brain=dict(type="bool", default=False),
    peer_role=dict(type="str", choices=list(_hast.ROLES)),
    peer_resources=dict(type="dict"),
    **_hast.read_argument_spec(),
)


def read_log(path):
    """Return the last LOG_TAIL_BYTES of a log file as text, or '' when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - _hast.LOG_TAIL_BYTES))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def read_views(module, runner, names, params):
    """Return {name: view} of this node (role, status, metadata, evidence) after every read."""
    sysctl = Runner(module, "sysctl", required=False)
    release = sysctl.read(["-n", "kern.osrelease"], check_rc=False) if sysctl.binary else None
    runner.commands += sysctl.commands
    _running, views = _hast.read_node_state(
        partial(runner.read, check_rc=False),
        runner.failure,
        config=params["config"],
        now=datetime.now(timezone.utc).astimezone(),
        window=params["log_window"],
        names=names,
        log_texts=[read_log(path) for path in params["log_files"]],
        os_release=release.stdout.strip() if release is not None and release.rc == 0 else None,
    )
    return views


def peer_of(params, name):
    """Return what is known of the peer for one resource, or None."""
    if params["peer_resources"] is not None:
        return params["peer_resources"].get(name)
    return {"role": params["peer_role"]} if params["peer_role"] else None


def plan(module, runner, params):
    """Return (steps, diff before, diff after, roles to verify, views) for the named resources; refuse first."""
    names = params["name"]
    bad = [name for name in names if not _hast.is_plain_word(name)]
    if bad or not names:
        raise StateError(f"not HAST resource names: {', '.join(bad) or '(none)'}; nothing was changed")
    views = read_views(module, runner, names, params)
    steps, before, after, wanted = [], {}, {}, {}
    for name in names:
        planned = _hast.plan_role(
            name,
            views[name],
            peer_of(params, name),
            params["role"],
            create=params["create"],
            discard_local_data=params["discard_local_data"],
            allow_split_brain=params["allow_split_brain"],
            config=params["config"],
        )
        steps += planned["steps"]
        for warning in planned["warnings"]:
            module.warn(warning)
        if planned["before"]:
            before[name], after[name] = planned["before"], planned["after"]
        if planned["verify_role"]:
            wanted[name] = planned["verify_role"]
    return steps, before, after, wanted, views


def summary(views, after):
    """Return {name: {role, status, metadata}} with the planned changes applied."""
    result = {}
    for name, view in views.items():
        changed = after.get(name, {})
        meta = "present" if changed.get("metadata") == "created" else (view["metadata"] or {}).get("state")
        result[name] = dict(role=changed.get("role", view["role"]), status=view["status"], metadata=meta)
    return result


def verify(runner, params, wanted):
    """Re-read the roles after a change; raise StateError when hastd did not keep one."""
    read = partial(runner.read, check_rc=False)
    entries = {
        entry["name"]: entry for entry in _hast.read_listing(read, runner.failure, list(wanted), params["config"])
    }
    lost = [
        f"{name} is {entries.get(name, {}).get('role')}"
        for name, role in wanted.items()
        if entries.get(name, {}).get("role") != role
    ]
    if lost:
        raise StateError(
            f"hastctl accepted the role change but hastd now reports {', '.join(lost)}: its worker exited; "
            "see the hastd lines in /var/log/messages"
        )
    return entries


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        mutually_exclusive=[("peer_role", "peer_resources")],
        required_one_of=[("role", "create", "discard_local_data")],
        supports_check_mode=True,
    )
    params = module.params
    runner = Runner(module, "hastctl")
    try:
        steps, before, after, wanted, views = plan(module, runner, params)
        for argv in steps:
            runner.change(argv)
        resources = summary(views, after)
        if wanted and not module.check_mode:
            for name, entry in verify(runner, params, wanted).items():
                resources[name]["status"] = entry.get("status")
    except CommandError as error:
        module.fail_json(msg=error.msg, commands=runner.commands, **error.to_result())
    except (StateError, _hast.ParseError) as error:
        module.fail_json(msg=str(error), commands=runner.commands)
    result = dict(changed=bool(steps), commands=runner.commands, resources=resources)
    if steps:
        header = ", ".join(before)
        result["diff"] = dict(before=before, after=after, before_header=header, after_header=header)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
