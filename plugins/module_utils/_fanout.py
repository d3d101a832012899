# PRIVATE: internal to freebsd_ha.storage, not a public API; it may change without notice.
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sending a set of datasets to several peers: the one read per peer, its parser, and the plan per peer (pure)."""

from __future__ import annotations

import re
import shlex

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _replication as repl
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError
from ansible_collections.freebsd_ha.storage.plugins.module_utils._zfs import ParseError, parse_get

_MISSING_RE = re.compile(r"^cannot open '(.+)': dataset does not exist$")
# Shell separators between the zfs commands of one ssh call; never quoted.
REMOTE_SEPARATOR = ";"
REMOTE_AND = "&&"


def parent_of(dataset):
    """Return the parent dataset name (the pool for a top-level dataset)."""
    return dataset.rsplit("/", 1)[0]


def build_peer_read_argv(ssh_options, host, targets):
    """Return the one ssh call that reads every target on a peer: snapshot guids, then the targets' and parents' props.

    Two zfs commands in one remote shell line, so a peer costs one connection whatever the number of
    datasets. `zfs get` goes on past a missing name (it says so on stderr and exits 1), so a missing
    target does not hide the others.
    """
    parents = sorted({parent_of(target) for target in targets} - set(targets))
    guids = repl.build_snapshot_guids_argv(targets[0])[:-1] + list(targets)
    props = repl.build_properties_argv(targets[0])[:-1] + list(targets) + parents
    quoted = [shlex.quote(str(arg)) for arg in guids], [shlex.quote(str(arg)) for arg in props]
    return [*ssh_options, host, "zfs", *quoted[0], REMOTE_SEPARATOR, "zfs", *quoted[1]]


def parse_peer_read(stdout, stderr, targets):
    """Return {target: {exists, snapshots, children, parent_exists, props}} from build_peer_read_argv's output.

    Raises ParseError for a stderr line other than "dataset does not exist" for a name that was asked.
    """
    asked = set(targets) | {parent_of(target) for target in targets}
    missing = set()
    for line in filter(None, (raw.strip() for raw in stderr.splitlines())):
        match = _MISSING_RE.match(line)
        if not match or match[1] not in asked:
            raise ParseError(f"unexpected zfs error on the peer: {line!r}")
        missing.add(match[1])
    parsed = parse_get(stdout)
    state = {}
    for target in targets:
        exists = target not in missing and target in parsed
        snapshots, children = repl.snapshot_guids_of(parsed, target) if exists else ([], [])
        subject = target if exists else parent_of(target)
        state[target] = {
            "exists": exists,
            "snapshots": snapshots,
            "children": children,
            "parent_exists": subject in parsed and subject not in missing,
            "props": repl.target_properties_of(parsed, subject),
        }
    return state


def plan_peer(peer, sources, state, snapshot, *, create_parent):
    """Return (transfers, refusals) for one peer: one transfer per dataset to send, each with its replication plan.

    peer: {name, host, targets: {source: target}, discard_target_changes}. sources: {source: snapshots}.
    state: parse_peer_read's answer. Every refusal is collected (not raised) so the operator sees all of them.
    """
    transfers, refusals = [], []
    for source, target in peer["targets"].items():
        current = state[target]
        try:
            if not current["exists"] and not current["parent_exists"] and not create_parent:
                raise StateError(
                    f"the parent '{parent_of(target)}' of target '{target}' does not exist; create it there "
                    f"(zfs create -p {parent_of(target)}) or set create_target_parent: true"
                )
            plan = repl.plan_replication(
                source,
                sources[source],
                target,
                current["snapshots"],
                current["exists"],
                target_written=current["props"]["written"],
                allow_rollback=peer["discard_target_changes"],
                snapshot=snapshot,
                resume_token=current["props"]["resume_token"] if current["exists"] else None,
                target_children=current["children"],
            )
            if plan["mode"] == "none" and peer["discard_target_changes"]:
                plan = plan_rollback_only(plan, target, current)
        except StateError as error:
            refusals.append(f"{peer['name']}: {error}")
            continue
        transfers.append({"source": source, "target": target, "plan": plan, "state": current})
    return transfers, refusals


def plan_rollback_only(plan, target, current):
    """Return the plan for a target that holds the snapshot to send but may have changed after it.

    With discard_target_changes such a target (a returning old writer) must still be set back to that
    snapshot: mode "rollback" keeps its later snapshots and writes in a rescue and sends nothing. Where
    zfs cannot tell whether it was written (no `written`, zfs-fuse) it is assumed modified.
    """
    held = next(snap for snap in current["snapshots"] if snap["guid"] == plan["common_guid"])
    newer = [snap["snapshot"] for snap in current["snapshots"] if snap["createtxg"] > held["createtxg"]]
    written = current["props"]["written"]
    if not newer and written == 0:
        return plan
    if current["children"]:
        raise StateError(
            f"target '{target}' has child datasets ({', '.join(current['children'])}); the rescue renames the target "
            "and would move them with it. Move the children or clean up the target by hand."
        )
    return dict(
        plan,
        mode="rollback",
        rescue_needed=True,
        would_destroy={"snapshots": newer, "written": written, "written_known": written is not None},
        notes=[f"target has @{plan['common']} but may have changed after it: kept in a rescue, set back to it"],
    )


def needs_readonly(transfer, rescue, wanted):
    """Return True when the target must be set readonly=on after its receive."""
    return wanted and (
        transfer["state"]["props"]["readonly"] != "on" or transfer["plan"]["mode"] == "full" or bool(rescue)
    )


def summarise_transfer(peer, transfer, result):
    """Return the row of the `transfers` result for one dataset sent (or planned) to one peer."""
    plan = transfer["plan"]
    return {
        "peer": peer["name"],
        "source": transfer["source"],
        "target": transfer["target"],
        "mode": plan["mode"],
        "from": plan["from"],
        "to": plan["to"],
        "snapshots_sent": plan["snapshots_sent"],
        "bytes_sent": result.get("bytes", 0),
        "duration": round(result.get("duration", 0.0), 3),
        "rescue": result.get("rescue"),
    }


def plan_properties(state, targets, wanted):
    """Return [{target, property, before, after}] for each wanted property whose local value differs on a target.

    A target that does not exist yet (it is received in full) gets every property; before is then None.
    """
    changes = []
    for target in targets:
        current = state[target]["props"]["local"] if state[target]["exists"] else {}
        for prop, value in sorted(wanted.items()):
            if current.get(prop) != str(value):
                changes.append({"target": target, "property": prop, "before": current.get(prop), "after": str(value)})
    return changes


def build_peer_set_argv(ssh_options, host, changes):
    """Return one ssh call running `zfs set <prop>=<value> <targets>...` per property and value, joined by &&."""
    groups = {}
    for change in changes:
        groups.setdefault((change["property"], change["after"]), []).append(change["target"])
    argv = [*ssh_options, host]
    for index, ((prop, value), targets) in enumerate(sorted(groups.items())):
        argv += ([REMOTE_AND] if index else []) + ["zfs", "set", shlex.quote(f"{prop}={value}")]
        argv += [shlex.quote(target) for target in targets]
    return argv
