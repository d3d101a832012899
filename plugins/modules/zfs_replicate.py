#!/usr/bin/python
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: zfs_replicate
short_description: Replicate a ZFS dataset's snapshots to a peer with zfs send | ssh zfs recv
description:
  - Runs on the source host. Sends the newest (or a named) snapshot of one dataset to a dataset on a peer over ssh,
    as a full stream when the target does not exist, else as an incremental stream (C(zfs send -I)) from the last
    snapshot both sides share, matched by guid, never by name alone.
  - Never destroys or overwrites target data unless O(discard_target_changes=true); even then the diverged target is
    renamed to a rescue dataset that keeps every diverged snapshot and write.
  - Replicates one dataset, not its children (no C(zfs send -R)).
  - Reads on the peer run over ssh, one call per kind of read; nothing on the peer changes in check mode.
extends_documentation_fragment:
  - freebsd_ha.storage._attributes
  - freebsd_ha.storage._send
attributes:
  check_mode:
    support: full
    details: Runs every read, including the C(zfs send -nvP) estimate where zfs has it, and returns the plan.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  name:
    description: Source dataset on this host.
    type: str
    required: true
  snapshot:
    description:
      - Snapshot to replicate up to, short (V(daily-2026-11-21)) or full (V(tank/nfs@daily-2026-11-21)).
      - Default is the source's newest snapshot (highest createtxg).
    type: str
  peer:
    description: ssh destination of the receiving host (V(root@f1) or a C(~/.ssh/config) host alias).
    type: str
    required: true
  target:
    description: Dataset on the peer. Default is O(name).
    type: str
  resume:
    description:
      - Receive resumably (C(zfs recv -s)) where the peer supports it, and continue a partial receive from the
        target's C(receive_resume_token). Without it a pending token is a refusal.
    type: bool
    default: false
  discard_target_changes:
    description:
      - Allow replication onto a target that was written to or snapshotted since the last common snapshot.
      - The diverged target is first snapshotted (C(@rescue-<UTC>)) and renamed to C(<target>_rescue_<UTC>); a clone
        of the common snapshot is promoted to take the target's name and receives the stream. The rescue dataset
        keeps all diverged data and pins the common snapshot until you destroy it.
    type: bool
    default: false
notes:
  - zfs-fuse (pool v23) has no C(zfs send -n), no C(written), no C(recv -s), no raw sends; there RV(bytes_estimated)
    is null and, with O(discard_target_changes=true), every incremental takes a rescue because target writes cannot be measured.
  - A rescue dataset inherits nothing new; it keeps the properties that were set locally on the old target
    (for example C(mountpoint)), and the new target starts with inherited ones plus C(readonly=on).
seealso:
  - module: freebsd_ha.storage.zfs_snapshot
author: freebsd_ha.storage contributors (@freebsd-ha)
"""

EXAMPLES = r"""
- name: Replicate tank/nfs to the standby
  freebsd_ha.storage.zfs_replicate:
    name: tank/nfs
    peer: root@f1
    target: backup/nfs

- name: Replicate onto a target an operator wrote to, keeping the writes in a rescue dataset
  freebsd_ha.storage.zfs_replicate:
    name: tank/nfs
    peer: root@f1
    discard_target_changes: true
"""

RETURN = r"""
commands:
  description: argv lists run (or planned in check mode); a pipeline is one list with C(|) between stages.
  returned: always
  type: list
  elements: list
  sample: [["/sbin/zfs", "send", "-I", "tank/nfs@a", "tank/nfs@b", "|", "ssh", "-o", "BatchMode=yes", "f1", "zfs", "recv", "-u", "tank/nfs"]]
plan:
  description: What was (or would be) sent; mode is none, full, incremental or resume; from/common are null for a full send.
  returned: always
  type: dict
  sample: {"mode": "incremental", "from": "tank/nfs@daily-2026-11-21", "to": "tank/nfs@daily-2026-11-22",
           "common": "daily-2026-11-21", "force": false, "would_destroy": {"snapshots": [], "written": 0, "written_known": true}}
bytes_estimated:
  description: Total from C(zfs send -nvP); null where zfs has no dry-run send (zfs-fuse).
  returned: always
  type: int
  sample: 10511856
bytes_sent:
  description: The estimate for what was actually sent (bytes_estimated after a successful transfer), not a count of stream bytes; 0 when nothing was sent.
  returned: always
  type: int
  sample: 10511856
snapshots_sent:
  description: Short names of the snapshots the stream carries.
  returned: always
  type: list
  elements: str
  sample: ["daily-2026-11-22"]
duration:
  description: Seconds the send/receive pipeline ran; 0 when nothing was sent.
  returned: always
  type: float
  sample: 2.41
rescue:
  description: Rescue snapshot holding the diverged target state, or null.
  returned: always
  type: str
  sample: backup/nfs_rescue_20261121T134000Z@rescue-20261121T134000Z
notes:
  description: Platform limits met on this run.
  returned: always
  type: list
  elements: str
  sample: ["zfs send -n is not supported here: no size estimate"]
diff:
  description: Target snapshots before and after.
  returned: when changed
  type: dict
  sample: {"before": {"snapshots": ["daily-2026-11-21"]}, "after": {"snapshots": ["daily-2026-11-21", "daily-2026-11-22"]}}
"""

from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _replication as repl
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError, Runner, StateError
from ansible_collections.freebsd_ha.storage.plugins.module_utils._safety import plan_rescue
from ansible_collections.freebsd_ha.storage.plugins.module_utils._zfs import (
    is_missing_dataset_error,
    validate_dataset_name,
)

SSH_UNREACHABLE = 255


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            snapshot=dict(type="str"),
            peer=dict(type="str", required=True),
            target=dict(type="str"),
            **repl.send_options_spec(),
            resume=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )


class Peer:
    """zfs on the peer, through one ssh Runner."""

    def __init__(self, module, params, log):
        self.runner = Runner(module, params["ssh_command"])
        self.runner.commands = log  # one ordered log for both hosts
        self.options, self.host = params["ssh_options"], params["peer"]

    def argv(self, zfs_args):
        return repl.build_remote_argv(self.options, self.host, zfs_args)

    def read(self, zfs_args):
        """Return the Result; None when zfs says the dataset does not exist; raise when ssh cannot connect."""
        result = self.runner.read(self.argv(zfs_args), check_rc=False)
        if result.rc == SSH_UNREACHABLE:
            raise StateError(
                f"cannot reach peer '{self.host}' over ssh (rc 255): {result.stderr.strip()}. Check the "
                "host name, that root's key is authorised there, and ssh_options; nothing was changed"
            )
        if result.rc != 0 and is_missing_dataset_error(result.stderr):
            return None
        if result.rc != 0:
            raise self.runner.failure(result)
        return result

    def change(self, zfs_args):
        self.runner.change(self.argv(zfs_args))


def read_state(params, zfs, peer):
    source, target = params["name"], params["target"]
    result = zfs.read(repl.build_snapshot_guids_argv(source))
    source_snapshots, _children = repl.parse_snapshot_guids(result.stdout, source)
    listing = peer.read(repl.build_snapshot_guids_argv(target))
    state = {
        "source_snapshots": source_snapshots,
        "target_exists": listing is not None,
        "target_snapshots": [],
        "target_children": [],
        "parent_exists": True,
    }
    if listing is not None:
        state["target_snapshots"], state["target_children"] = repl.parse_snapshot_guids(listing.stdout, target)
    # Properties of the target, or of its parent when the target is new (existence and platform features).
    subject = target if listing is not None else target.rsplit("/", 1)[0]
    props = peer.read(repl.build_properties_argv(subject))
    state["parent_exists"] = props is not None
    state["props"] = repl.summarise_target_properties(props.stdout if props else "", subject)
    return state


def plan(params, state):
    if not state["target_exists"] and not state["parent_exists"] and not params["create_target_parent"]:
        parent = params["target"].rsplit("/", 1)[0]
        raise StateError(
            f"the parent '{parent}' of target '{params['target']}' does not exist on peer "
            f"'{params['peer']}'; create it there (zfs create -p {parent}) or set create_target_parent: true"
        )
    props = state["props"]
    return repl.plan_replication(
        params["name"],
        state["source_snapshots"],
        params["target"],
        state["target_snapshots"],
        state["target_exists"],
        target_written=props["written"],
        allow_rollback=params["discard_target_changes"],
        snapshot=params["snapshot"],
        resume_token=props["resume_token"] if state["target_exists"] else None,
        resume=params["resume"],
        target_children=state["target_children"],
    )


def estimate(zfs, params, replication, token):
    """Return (total bytes or None, note or None) from `zfs send -nvP`, a read that also runs in check mode."""
    argv = repl.build_send_argv(
        replication["to"],
        from_snapshot=replication["from"],
        raw=params["raw"],
        properties=params["properties"],
        dry_run=True,
        resume_token=token,
    )
    result = zfs.read(argv, check_rc=False)
    if result.rc != 0 and "invalid option" in result.stderr:
        return None, "zfs send -n is not supported here: no size estimate"
    if result.rc != 0:
        raise zfs.failure(result)
    return repl.parse_send_estimate(result.stdout)["total"], None


def apply(params, state, replication, zfs, peer):
    """Run the planned writes; return (rescue snapshot or None, pipeline duration)."""
    target, props, rescue = params["target"], state["props"], None
    if not state["target_exists"] and not state["parent_exists"]:
        peer.change(["create", "-p", target.rsplit("/", 1)[0]])
    if replication["rescue_needed"]:
        steps, rescue = plan_rescue(
            target,
            replication["common"],
            datetime.now(timezone.utc),
            mounted=props["mounted"] == "yes",
            local_properties=props["local"],
        )
        for step in steps:
            peer.change(step)
    resumable = params["resume"] and props["resumable"]
    token = props["resume_token"] if replication["mode"] == "resume" else None
    send = repl.build_send_argv(
        replication["to"],
        from_snapshot=replication["from"],
        raw=params["raw"],
        properties=params["properties"],
        resume_token=token,
    )
    recv = repl.build_recv_argv(
        target, unmount=params["unmount_target"], force=replication["force"], resumable=resumable
    )
    try:
        result = zfs.change_pipeline([send, [peer.runner.binary, *peer.argv(recv)]])
    except CommandError as error:
        reason = repl.parse_recv_error(error.stderr)
        hint = {
            "modified": "the target was written to since the common snapshot; see discard_target_changes",
            "incomplete_with_token": "set resume: true to continue the partial receive",
            "missing_parent": "the target's parent is missing; see create_target_parent",
        }.get(reason["kind"], "")
        error.msg = f"{error.msg}{f' ({hint})' if hint else ''}"
        raise
    if params["target_readonly"] and (props["readonly"] != "on" or replication["mode"] == "full" or rescue):
        peer.change(["set", "readonly=on", target])
    return rescue, result.duration if result else 0.0


def main():
    module = build_module()
    params = dict(module.params)
    params["target"] = params["target"] or params["name"]
    zfs = Runner(module, "zfs")
    try:
        validate_dataset_name(params["name"])
        validate_dataset_name(params["target"])
        if "/" not in params["target"]:
            raise StateError(f"target '{params['target']}' is a pool; receive into a dataset below it")
        peer = Peer(module, params, zfs.commands)
        state = read_state(params, zfs, peer)
        replication = plan(params, state)
        notes = list(replication.pop("notes"))
        if params["resume"] and not state["props"]["resumable"]:
            notes.append("the peer's zfs has no resumable receive (recv -s); receiving without it")
        changed = replication["mode"] != "none"
        total, note = (None, None)
        if changed:
            total, note = estimate(zfs, params, replication, state["props"]["resume_token"])
        notes += [note] if note else []
        rescue, duration = apply(params, state, replication, zfs, peer) if changed else (None, 0.0)
    except (CommandError, StateError) as error:
        extra = error.to_result() if isinstance(error, CommandError) else {}
        module.fail_json(msg=getattr(error, "msg", str(error)), commands=zfs.commands, **extra)
    result = dict(
        changed=changed,
        commands=zfs.commands,
        plan=replication,
        bytes_estimated=total,
        bytes_sent=total if changed and not module.check_mode else 0,
        snapshots_sent=replication["snapshots_sent"],
        duration=duration,
        rescue=rescue,
        notes=notes,
    )
    if changed:
        before = [snap["snapshot"] for snap in state["target_snapshots"]]
        after = (
            before
            if rescue is None
            else [name for name in before if name not in replication["would_destroy"]["snapshots"]]
        )
        result["diff"] = dict(
            before={"snapshots": before},
            after={"snapshots": after + replication["snapshots_sent"]},
            before_header=params["target"],
            after_header=params["target"],
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
