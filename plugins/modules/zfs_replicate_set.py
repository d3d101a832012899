#!/usr/bin/python
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: zfs_replicate_set
short_description: Send a set of ZFS datasets to several peers at once, with one read per peer and counted bytes
description:
  - Runs on the sending host. For every peer and every dataset of O(datasets), sends the newest (or the named)
    snapshot as a full stream when the target is missing, else as an incremental stream (C(zfs send -I)) from the
    last snapshot both sides share, matched by guid; the same planner as M(freebsd_ha.storage.zfs_replicate).
  - One module call per sending host replaces a loop over datasets and peers. Each peer is read with one ssh call
    (snapshot guids of every target, properties of every target and its parent). Transfers to different peers run
    in parallel, the datasets of one peer one after the other.
  - The stream passes through the module, which counts the bytes really sent (RV(bytes_sent)); zfs-fuse has no
    C(zfs send -P).
  - Every refusal (a diverged target, a pending resume token, a missing parent, a target that shares no snapshot)
    is found for every peer and dataset before the first change, and then nothing is changed.
  - Never destroys or overwrites target data unless O(discard_target_changes=true) for that peer; even then the
    diverged target is renamed to a rescue dataset that keeps every diverged snapshot and write (as
    M(freebsd_ha.storage.zfs_replicate) does).
  - Replicates each dataset alone, not its children (no C(zfs send -R)); never resumes a partial receive.
extends_documentation_fragment:
  - freebsd_ha.storage._attributes
  - freebsd_ha.storage._send
attributes:
  check_mode:
    support: full
    details: Runs every read and returns the plan of every transfer; RV(bytes_sent) is 0.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  datasets:
    description: Source datasets on this host.
    type: list
    elements: str
    required: true
  snapshot:
    description:
      - Short name of the snapshot to send of every dataset (V(ha_failover_e3)); it must exist on each of them.
      - Default is each dataset's newest snapshot (highest createtxg).
    type: str
  create_snapshot:
    description:
      - Take O(snapshot) of every dataset that lacks it before sending (the final snapshot of a planned move, taken
        once the datasets are read-only). One C(zfs snapshot) names them all, atomic within a pool; where zfs takes
        one name per call (zfs-fuse says C(too many arguments)) they are taken one by one.
      - In check mode the snapshots are planned and the transfers planned as if they existed.
    type: bool
    default: false
  target_properties:
    description:
      - User properties (C(module:property)) set on every target of every peer, after its receive, wherever the
        local value differs, for example the writer and epoch a follower follows (C(freebsd-ha:writer),
        C(freebsd-ha:epoch)). One ssh call per peer sets them all.
    type: dict
    default: {}
  peers:
    description: The receiving hosts; each is read once and gets every dataset.
    type: list
    elements: dict
    required: true
    suboptions:
      host:
        description: ssh destination of the peer (V(root@f1), an address or a C(~/.ssh/config) alias).
        type: str
        required: true
      name:
        description: Label of the peer in the results, for example its inventory name. Default is O(peers[].host).
        type: str
      targets:
        description:
          - Mapping of source dataset to the dataset it is received into on this peer. A dataset not listed is
            received under its own name.
        type: dict
        default: {}
      discard_target_changes:
        description:
          - Allow replication onto targets of this peer that were written to or snapshotted since the last common
            snapshot; they are kept in a rescue dataset first. Default is O(discard_target_changes).
        type: bool
  discard_target_changes:
    description: Default of O(peers[].discard_target_changes).
    type: bool
    default: false
notes:
  - The snapshots taken with O(create_snapshot=true) are listed in RV(snapshots_created) and count as a change.
  - On zfs-fuse (no C(written) property) a peer with O(peers[].discard_target_changes=true) takes a rescue before
    every incremental, because writes to its targets cannot be measured; give the option only to the peers that need it.
  - When a transfer fails, the other peers' transfers still finish; the module then fails, naming every failure,
    and RV(transfers) lists what was sent. A re-run sends only what is missing.
seealso:
  - module: freebsd_ha.storage.zfs_replicate
  - module: freebsd_ha.storage.zfs_role
author: freebsd_ha.storage contributors (@freebsd-ha)
"""

EXAMPLES = r"""
- name: Send the final snapshot of a service's datasets to both followers
  freebsd_ha.storage.zfs_replicate_set:
    datasets: [tank/www, tank/www/db]
    snapshot: ha_move_e4
    peers:
      - {host: 10.0.0.2, name: f1}
      - {host: 10.0.0.3, name: f2}

- name: Bring a returning old leader back in line, keeping its own writes in a rescue dataset
  freebsd_ha.storage.zfs_replicate_set:
    datasets: [tank/www]
    peers:
      - {host: 10.0.0.1, name: f0, discard_target_changes: true}
"""

RETURN = r"""
commands:
  description: argv lists run (or planned in check mode); a pipeline is one list with C(|) between stages.
  returned: always
  type: list
  elements: list
  sample: [["/sbin/zfs", "send", "-I", "tank/www@a", "tank/www@b", "|", "ssh", "-o", "BatchMode=yes", "10.0.0.2", "zfs", "recv", "-u", "tank/www"]]
transfers:
  description:
    - One row per dataset and peer that was (or would be) sent; mode is full or incremental.
    - Mode rollback, with O(peers[].discard_target_changes), for a target that already held the snapshot but may
      have changed after it; it was kept in a rescue and set back to the snapshot, and nothing was sent.
  returned: always
  type: list
  elements: dict
  sample: [{"peer": "f1", "source": "tank/www", "target": "tank/www", "mode": "incremental", "from": "tank/www@a",
            "to": "tank/www@b", "snapshots_sent": ["b"], "bytes_sent": 6232, "duration": 0.41, "rescue": null}]
snapshots_created:
  description: Snapshots taken (or planned in check mode) with O(create_snapshot=true).
  returned: always
  type: list
  elements: str
  sample: ["tank/www@ha_move_e4", "tank/www/db@ha_move_e4"]
properties_set:
  description: The target properties set (or planned), as C(<peer>:<target> <property>=<value>).
  returned: always
  type: list
  elements: str
  sample: ["f1:tank/www freebsd-ha:epoch=4"]
in_sync:
  description: The datasets already holding the snapshot on a peer, as C(<peer>:<target>), nothing sent.
  returned: always
  type: list
  elements: str
  sample: ["f2:tank/www"]
bytes_sent:
  description: Stream bytes that went through the module to every peer, counted; 0 in check mode.
  returned: always
  type: int
  sample: 12464
peers:
  description: Per peer, the bytes sent, the datasets sent and the seconds its transfers took.
  returned: always
  type: dict
  sample: {"f1": {"bytes_sent": 6232, "datasets_sent": 1, "duration": 0.41}}
duration:
  description: Seconds from the first transfer to the last one's end (the peers run in parallel); 0 when nothing was sent.
  returned: always
  type: float
  sample: 0.52
rescues:
  description: Rescue snapshots holding diverged target states, one per rescued target.
  returned: always
  type: list
  elements: str
  sample: ["tank/www_rescue_20261121T134000Z@rescue-20261121T134000Z"]
notes:
  description: Notes of the planner (platform limits, targets already in sync).
  returned: always
  type: list
  elements: str
  sample: ["f1: this zfs has no 'written' property: target writes since the common snapshot are unknown; ..."]
diff:
  description: Snapshots of each changed target, as C(<peer>:<target>), before and after.
  returned: when changed
  type: dict
  sample: {"before": {"f1:tank/www": ["a"]}, "after": {"f1:tank/www": ["a", "b"]}}
"""

import time
from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _fanout as fanout
from ansible_collections.freebsd_ha.storage.plugins.module_utils import _replication as repl
from ansible_collections.freebsd_ha.storage.plugins.module_utils import _stream as stream
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError, Runner, StateError
from ansible_collections.freebsd_ha.storage.plugins.module_utils._safety import plan_rescue
from ansible_collections.freebsd_ha.storage.plugins.module_utils._zfs import (
    ParseError,
    build_snapshot_argv,
    validate_dataset_name,
)

SSH_UNREACHABLE = 255


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            datasets=dict(type="list", elements="str", required=True),
            snapshot=dict(type="str"),
            create_snapshot=dict(type="bool", default=False),
            target_properties=dict(type="dict", default={}),
            peers=dict(
                type="list",
                elements="dict",
                required=True,
                options=dict(
                    host=dict(type="str", required=True),
                    name=dict(type="str"),
                    targets=dict(type="dict", default={}),
                    discard_target_changes=dict(type="bool"),
                ),
            ),
            **repl.send_options_spec(),
        ),
        required_if=[("create_snapshot", True, ["snapshot"])],
        supports_check_mode=True,
    )


def resolve_peers(params):
    """Return the peers with name, targets for every dataset and discard_target_changes filled in; validate names."""
    for name in params["datasets"]:
        validate_dataset_name(name)
    for prop in params["target_properties"]:
        if ":" not in prop:
            raise StateError(f"target_properties: {prop!r} is not a user property (module:property)")
    peers, seen = [], set()
    for entry in params["peers"]:
        unknown = sorted(set(entry["targets"]) - set(params["datasets"]))
        if unknown:
            raise StateError(f"peer {entry['host']}: targets names datasets that are not sent: {', '.join(unknown)}")
        targets = {source: entry["targets"].get(source) or source for source in params["datasets"]}
        for target in targets.values():
            validate_dataset_name(target)
            if "/" not in target:
                raise StateError(f"target '{target}' is a pool; receive into a dataset below it")
        name = entry["name"] or entry["host"]
        if name in seen:
            raise StateError(f"peer {name} is listed twice")
        seen.add(name)
        discard = entry["discard_target_changes"]
        peers.append(
            {
                "name": name,
                "host": entry["host"],
                "targets": targets,
                "discard_target_changes": params["discard_target_changes"] if discard is None else discard,
            }
        )
    return peers


class Peer:
    """zfs on one peer, through its own ssh Runner sharing the module's command log."""

    def __init__(self, module, params, peer, log):
        self.runner = Runner(module, params["ssh_command"])
        self.runner.commands = log
        self.options, self.peer = params["ssh_options"], peer

    def read_state(self):
        targets = list(self.peer["targets"].values())
        result = self.runner.read(fanout.build_peer_read_argv(self.options, self.peer["host"], targets), check_rc=False)
        if result.rc == SSH_UNREACHABLE:
            raise StateError(
                f"cannot reach peer {self.peer['name']} ({self.peer['host']}) over ssh (rc 255): "
                f"{result.stderr.strip()}. Check the host name, root's key there and ssh_options; nothing was changed"
            )
        try:
            return fanout.parse_peer_read(result.stdout, result.stderr, targets)
        except ParseError as error:
            raise CommandError(
                f"reading peer {self.peer['name']} failed (rc {result.rc}): {error}",
                argv=self.runner.commands[-1],
                rc=result.rc,
                stdout=result.stdout,
                stderr=result.stderr,
            ) from error

    def change(self, zfs_args):
        self.runner.change(repl.build_remote_argv(self.options, self.peer["host"], zfs_args))

    def recv_argv(self, recv_args):
        return [self.runner.binary, *repl.build_remote_argv(self.options, self.peer["host"], recv_args)]


def read_sources(zfs, datasets):
    result = zfs.read(repl.build_snapshot_guids_argv(datasets[0])[:-1] + list(datasets), check_rc=False)
    if result.rc != 0:
        raise zfs.failure(result)
    parsed = repl.parse_get(result.stdout)
    return {name: repl.snapshot_guids_of(parsed, name)[0] for name in datasets}


def plan_snapshots(params, sources):
    """Return (snapshots to take, the sources with them added) for create_snapshot.

    A snapshot to take gets a placeholder guid (negative, so it matches nothing on a peer) and the next
    createtxg, so every transfer is planned, and every refusal found, before anything is written.
    """
    short = params["snapshot"]
    if not params["create_snapshot"]:
        return [], sources
    missing, planned = [], {}
    for index, (name, snaps) in enumerate(sources.items()):
        planned[name] = snaps
        if all(snap["snapshot"] != short for snap in snaps):
            missing.append(f"{name}@{short}")
            txg = max((snap["createtxg"] for snap in snaps), default=0) + 1
            planned[name] = [
                *snaps,
                {"name": f"{name}@{short}", "snapshot": short, "guid": -1 - index, "createtxg": txg},
            ]
    return missing, planned


def take_snapshots(zfs, missing):
    """Take the snapshots in one `zfs snapshot` (atomic), or one by one where zfs takes a single name (zfs-fuse)."""
    if not missing:
        return
    result = zfs.change(build_snapshot_argv(missing), check_rc=False)
    if result is not None and result.rc != 0 and len(missing) > 1 and "too many arguments" in result.stderr:
        for name in missing:
            zfs.change(build_snapshot_argv([name]))
    elif result is not None and result.rc != 0:
        raise zfs.failure(result)


def plan(params, peers, sources, states):
    """Return [(peer, transfers, property changes)], the notes and the targets in sync; raise StateError naming
    every refusal of every peer."""
    plans, notes, refusals, in_sync = [], [], [], []
    for peer, state in zip(peers, states):
        transfers, refused = fanout.plan_peer(
            peer, sources, state, params["snapshot"], create_parent=params["create_target_parent"]
        )
        refusals += refused
        for item in transfers:
            notes += [
                f"{peer['name']}: {note}" for note in item["plan"]["notes"] if f"{peer['name']}: {note}" not in notes
            ]
            if item["plan"]["mode"] == "none":
                in_sync.append(f"{peer['name']}:{item['target']}")
        sending = [item for item in transfers if item["plan"]["mode"] != "none"]
        changes = fanout.plan_properties(state, list(peer["targets"].values()), params["target_properties"])
        plans.append((peer, sending, changes))
    if refusals:
        raise StateError("refusing to send, nothing was changed: " + " | ".join(refusals))
    return plans, notes, in_sync


def send_to_peer(params, zfs, peer_zfs, work):
    """Send every planned dataset to one peer in order, then set its properties; return (rows, error or None).

    work: (peer, transfers, property changes) from plan(). Runs in its own thread.
    """
    peer, transfers, changes = work
    rows, created = [], set()
    for item in transfers:
        replication, props, result = item["plan"], item["state"]["props"], {}
        try:
            parent = fanout.parent_of(item["target"])
            if not item["state"]["exists"] and not item["state"]["parent_exists"] and parent not in created:
                peer_zfs.change(["create", "-p", parent])
                created.add(parent)
            if replication["rescue_needed"]:
                steps, result["rescue"] = plan_rescue(
                    item["target"],
                    replication["common"],
                    datetime.now(timezone.utc),
                    mounted=props["mounted"] == "yes",
                    local_properties=props["local"],
                )
                for step in steps:
                    peer_zfs.change(step)
            if replication["mode"] == "rollback":
                if fanout.needs_readonly(item, result.get("rescue"), params["target_readonly"]):
                    peer_zfs.change(["set", "readonly=on", item["target"]])
                rows.append(fanout.summarise_transfer(peer, item, result))
                continue
            send = repl.build_send_argv(
                replication["to"],
                from_snapshot=replication["from"],
                raw=params["raw"],
                properties=params["properties"],
            )
            recv = repl.build_recv_argv(item["target"], unmount=params["unmount_target"], force=replication["force"])
            done, result["bytes"] = stream.transfer(zfs, send, peer_zfs.recv_argv(recv))
            result["duration"] = done.duration if done else 0.0
            if fanout.needs_readonly(item, result.get("rescue"), params["target_readonly"]):
                peer_zfs.change(["set", "readonly=on", item["target"]])
        except CommandError as error:
            reason = repl.parse_recv_error(error.stderr)
            hint = " (the target was written to since the common snapshot)" if reason["kind"] == "modified" else ""
            error.msg = f"{peer['name']}: {error.msg}{hint}"
            return rows, error
        rows.append(fanout.summarise_transfer(peer, item, result))
    if changes:
        try:
            peer_zfs.runner.change(fanout.build_peer_set_argv(peer_zfs.options, peer["host"], changes))
        except CommandError as error:
            error.msg = f"{peer['name']}: {error.msg}"
            return rows, error
    return rows, None


def apply(module, params, plans, zfs):
    """Run every peer's transfers in parallel; return (rows, per-peer totals, wall seconds, errors)."""
    jobs = [
        (lambda work=work: send_to_peer(params, zfs, Peer(module, params, work[0], zfs.commands), work))
        for work in plans
        if work[1] or work[2]
    ]
    started = time.monotonic()
    outcomes = stream.run_parallel(jobs)
    wall = time.monotonic() - started if outcomes and not module.check_mode else 0.0
    rows = [row for peer_rows, _error in outcomes for row in peer_rows]
    errors = [error for _rows, error in outcomes if error is not None]
    totals = {
        peer["name"]: {
            "bytes_sent": sum(row["bytes_sent"] for row in rows if row["peer"] == peer["name"]),
            "datasets_sent": sum(1 for row in rows if row["peer"] == peer["name"]),
            "duration": round(sum(row["duration"] for row in rows if row["peer"] == peer["name"]), 3),
        }
        for peer, _transfers, _changes in plans
    }
    return rows, totals, round(wall, 3), errors


def build_diff(plans, rows, created):
    before, after = {}, {}
    if created:
        before["snapshots_created"], after["snapshots_created"] = [], created
    rescued = {(row["peer"], row["target"]) for row in rows if row["rescue"]}
    for peer, transfers, changes in plans:
        for change in changes:
            key = f"{peer['name']}:{change['target']} {change['property']}"
            before[key], after[key] = change["before"], change["after"]
        for item in transfers:
            key = f"{peer['name']}:{item['target']}"
            names = [snap["snapshot"] for snap in item["state"]["snapshots"]]
            dropped = item["plan"]["would_destroy"]["snapshots"] if (peer["name"], item["target"]) in rescued else []
            before[key] = names
            after[key] = [name for name in names if name not in dropped] + item["plan"]["snapshots_sent"]
    return {"before": before, "after": after, "before_header": "targets", "after_header": "targets"}


def main():
    module = build_module()
    params = module.params
    zfs = Runner(module, "zfs")
    try:
        peers = resolve_peers(params)
        created, sources = plan_snapshots(params, read_sources(zfs, params["datasets"]))
        readers = [Peer(module, params, peer, zfs.commands) for peer in peers]
        states = stream.run_parallel([reader.read_state for reader in readers])
        plans, notes, in_sync = plan(params, peers, sources, states)
        take_snapshots(zfs, created)
        rows, totals, wall, errors = apply(module, params, plans, zfs)
    except (CommandError, StateError) as error:
        extra = error.to_result() if isinstance(error, CommandError) else {}
        module.fail_json(msg=getattr(error, "msg", str(error)), commands=zfs.commands, **extra)
    properties = [
        f"{peer['name']}:{change['target']} {change['property']}={change['after']}"
        for peer, _transfers, changes in plans
        for change in changes
    ]
    result = dict(
        changed=bool(rows or created or properties),
        properties_set=properties,
        commands=zfs.commands,
        snapshots_created=created,
        transfers=rows,
        in_sync=in_sync,
        bytes_sent=sum(row["bytes_sent"] for row in rows),
        peers=totals,
        duration=wall,
        rescues=[row["rescue"] for row in rows if row["rescue"]],
        notes=notes,
    )
    if errors:
        first = errors[0]
        module.fail_json(
            msg="; ".join(error.msg for error in errors) + "; a re-run sends only what is missing",
            **first.to_result(),
            **result,
        )
    if result["changed"]:
        result["diff"] = build_diff(plans, rows, created)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
