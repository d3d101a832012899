# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side judgement of the runbooks: which resource is meant, who writes it, and whether a runbook is safe.

Pure functions over inventory variables and the *_info results gathered from every node, so the
whole decision of a runbook is tested without a node and runs without a round trip.
"""

from __future__ import annotations

import re

from ansible.errors import AnsibleFilterError

# Runbook snapshots carry the epoch they were taken in (ha_failover_e3): a replica that received one
# knows that epoch existed even where the record on its own datasets is older.
RUNBOOK_SNAPSHOT_RE = re.compile(r"^ha_[a-z]+_e([0-9]+)$")
BACKENDS = ("zrepl", "zfs", "hast", "gmirror")
ZFS_BACKENDS = ("zrepl", "zfs")
# Runbooks that move the writer to a target node (move_leader.yml runs "move").
MOVING_RUNBOOKS = ("failover", "failback", "move")
SAFE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def _fail(message):
    raise AnsibleFilterError(f"freebsd_ha.storage: {message}")


def _pick(resources, name):
    if not isinstance(resources, dict) or not resources:
        _fail("ha_resources is empty or not a mapping of resource name to settings; define it in group_vars")
    if name in (None, ""):
        if len(resources) != 1:
            _fail(f"several resources exist ({', '.join(sorted(resources))}); name one with -e ha_resource=NAME")
        name = next(iter(resources))
    if name not in resources:
        _fail(f"unknown resource {name!r}; ha_resources defines {', '.join(sorted(resources))}")
    return name, resources[name]


def _dataset_names(resource, node):
    """Return {logical dataset: the dataset's name on node} for a ZFS based resource."""
    names = {}
    for item in resource["datasets"]:
        logical = item["name"]
        if resource["backend"] == "zrepl" and node != resource["origin"]:
            names[logical] = f"{resource['zrepl']['sink_root']}/{resource['origin']}/{logical}"
        else:
            names[logical] = logical
    return names


def ha_resource(resources, name=None, inventory_hosts=None):
    """Return the resolved, validated resource (see DOCUMENTATION)."""
    name, raw = _pick(resources, name)
    if not isinstance(raw, dict):
        _fail(f"resource {name}: settings must be a mapping")
    resource = dict(raw, name=name)
    backend = resource.get("backend")
    if backend not in BACKENDS:
        _fail(f"resource {name}: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    nodes = resource.get("nodes")
    if not isinstance(nodes, list) or len(nodes) < 2 or len(set(nodes)) != len(nodes):
        _fail(f"resource {name}: nodes must list at least two distinct inventory hosts, got {nodes!r}")
    if backend in ("hast", "gmirror", "zrepl") and len(nodes) != 2:
        _fail(f"resource {name}: the {backend} backend replicates between exactly two nodes, got {len(nodes)}")
    missing = [node for node in nodes if inventory_hosts is not None and node not in inventory_hosts]
    if missing:
        _fail(f"resource {name}: node(s) {', '.join(missing)} are not in the inventory")
    if resource.get("primary") not in nodes:
        _fail(f"resource {name}: primary must be one of its nodes {nodes}, got {resource.get('primary')!r}")
    services = resource.setdefault("services", [])
    if not isinstance(services, list) or not all(isinstance(s, str) and set(s) <= SAFE_NAME_CHARS for s in services):
        _fail(f"resource {name}: services must be a list of rc.d service names, got {services!r}")
    if backend in ZFS_BACKENDS:
        datasets = resource.get("datasets")
        if not isinstance(datasets, list) or not datasets:
            _fail(f"resource {name}: datasets must list the replicated datasets ({{name, mountpoint}})")
        resource["datasets"] = [item if isinstance(item, dict) else {"name": item} for item in datasets]
        for item in resource["datasets"]:
            if not item.get("name") or "@" in item["name"] or item["name"].startswith("/"):
                _fail(f"resource {name}: {item!r} is not a dataset name")
        resource.setdefault("origin", resource["primary"])
        if backend == "zrepl":
            zrepl = resource.setdefault("zrepl", {})
            zrepl.setdefault("sink_root", "zdata/sink")
            zrepl.setdefault("job", f"{name}_push")
            zrepl.setdefault("sink_job", f"{name}_sink")
        resource["node_datasets"] = {node: _dataset_names(resource, node) for node in nodes}
    resource.setdefault("carp", None)
    # The runbook tasks are written once per family: every ZFS replicated backend shares one set.
    resource["family"] = "zfs" if backend in ZFS_BACKENDS else backend
    return resource


# ---------------------------------------------------------------- assessment of gathered state


def _node_view(resource, node, info):
    """Summarise one node's zfs_info result (None when unreachable) for the resource."""
    if info is None:
        return {"reachable": False}
    # zfs_info refuses the whole read when one root is missing: then every dataset counts as missing.
    rows = {} if info.get("failed") else {row["name"]: row for row in info.get("datasets", [])}
    names = resource["node_datasets"][node]
    datasets, missing = {}, []
    for logical, actual in names.items():
        row = rows.get(actual)
        if row is None:
            missing.append(actual)
            continue
        own = sorted((s for s in info.get("snapshots", []) if s["dataset"] == actual), key=lambda s: s["createtxg"])
        epoch = row.get("freebsd-ha:epoch", "-")
        datasets[logical] = {
            "name": actual,
            "readonly": row.get("readonly") == "on",
            "mounted": row.get("mounted") == "yes",
            "writer": None if row.get("freebsd-ha:writer", "-") == "-" else row["freebsd-ha:writer"],
            "epoch": int(epoch) if str(epoch).isdigit() else 0,
            "snapshots": own,
            # Bytes changed after the newest snapshot (zfs_info written: true); None when not read.
            "written": row.get("written"),
        }
    writable = [d["name"] for d in datasets.values() if not d["readonly"]]
    recorded = max((d["epoch"] for d in datasets.values()), default=0)
    seen = [
        int(match.group(1))
        for d in datasets.values()
        for snap in d["snapshots"]
        for match in [RUNBOOK_SNAPSHOT_RE.match(snap["name"].split("@", 1)[1])]
        if match
    ]
    writers = {d["writer"] for d in datasets.values() if d["epoch"] == recorded and d["writer"]}
    return {
        "reachable": True,
        "error": info.get("msg", "") if info.get("failed") else None,
        "datasets": datasets,
        "missing": missing,
        "writable": writable,
        "epoch": recorded,
        "epoch_seen": max([recorded, *seen]),
        "writer_record": sorted(writers)[0] if len(writers) == 1 else None,
    }


def _common(source, target):
    """Return (newest snapshot of source whose GUID target has, snapshots of target after it)."""
    guids = {s["guid"] for s in target}
    common = next((s for s in reversed(source) if s["guid"] in guids), None)
    if common is None:
        return None, list(target)
    position = next(i for i, s in enumerate(target) if s["guid"] == common["guid"])
    return common, target[position + 1 :]


def ha_assess(states, resource, runbook="status", target=None, accept_data_loss=False, source=None):  # noqa: PLR0917
    """Return the judgement of a resource's gathered state: writers, authority, lag and the reasons a runbook is unsafe.

    states: {node: zfs_info result, or None when the node did not answer}. runbook: status,
    failover, failback, move, rejoin. target: the node that should become the writer (failover,
    failback, move).
    source: the node whose snapshots the lag is measured against, when it is not the authoritative one.
    """
    nodes = {node: _node_view(resource, node, states.get(node)) for node in resource["nodes"]}
    reachable = [n for n, v in nodes.items() if v["reachable"]]
    writers = [n for n, v in nodes.items() if v["reachable"] and v["writable"]]
    epoch = max((v["epoch_seen"] for v in nodes.values() if v["reachable"]), default=0)
    authority = [n for n, v in nodes.items() if v["reachable"] and v["epoch"] == epoch and v["writer_record"] == n]
    authoritative = authority[0] if len(authority) == 1 else None
    if authoritative is None and len(writers) == 1:
        authoritative = writers[0]
    stale = [n for n in reachable if n != authoritative and n in writers]
    reasons, warnings = [], []
    for node, view in nodes.items():
        if view["reachable"] and view["missing"]:
            reasons.append(f"{node} lacks dataset(s) {', '.join(view['missing'])}: provision the pair (or resync)")
    if stale and len(authority) == 1:
        warnings.append(
            f"{', '.join(stale)} writable with an older epoch than {authoritative} (epoch {epoch}): "
            "a returning old writer; it is fenced (read-only, services stopped) before anything else"
        )
    elif len(writers) > 1:
        reasons.append(
            f"more than one writer: {', '.join(writers)} have writable datasets and no epoch decides between them "
            "(split brain). Pick the node whose data wins, fence the other by hand (zfs set readonly=on) and run "
            "failback.yml to it: its writes are kept in a rescue"
        )
    lag, diverged = {}, []
    reference = source or authoritative
    if reference:
        for logical, source_dataset in nodes[reference].get("datasets", {}).items():
            for node in reachable:
                if node == reference or logical not in nodes[node].get("datasets", {}):
                    continue
                replica = nodes[node]["datasets"][logical]
                common, extra = _common(source_dataset["snapshots"], replica["snapshots"])
                newest = source_dataset["snapshots"][-1] if source_dataset["snapshots"] else None
                behind = (
                    []
                    if common is None
                    else [s["name"] for s in source_dataset["snapshots"] if s["createtxg"] > common["createtxg"]]
                )
                lag.setdefault(node, {})[logical] = {
                    "common": common and common["name"].split("@", 1)[1],
                    "common_guid": common and common["guid"],
                    "newest_on_writer": newest and newest["name"].split("@", 1)[1],
                    "snapshots_behind": len(behind),
                    "diverged": [s["name"] for s in extra],
                    "in_sync": newest is not None and common is not None and common["guid"] == newest["guid"],
                }
                if common is None:
                    reasons.append(
                        f"{replica['name']} on {node} shares no snapshot with {source_dataset['name']} on {reference}: "
                        "run resync.yml (a full re-seed)"
                    )
                elif extra or (replica["readonly"] and replica["written"]):
                    if node not in diverged:
                        diverged.append(node)
                    message = _divergence(replica, node, common, extra)
                    (warnings if _rescued(runbook, node, target, accept_data_loss) else reasons).append(message)
    result = {
        "resource": resource["name"],
        "backend": resource["backend"],
        "nodes": nodes,
        "reachable": reachable,
        "unreachable": [n for n in resource["nodes"] if n not in reachable],
        "writers": writers,
        "epoch": epoch,
        "next_epoch": epoch + 1,
        "authoritative": authoritative,
        "stale": stale,
        "lag": lag,
        "diverged": diverged,
        "best_follower": _best_follower(nodes, reachable, writers, resource["nodes"]),
        "warnings": warnings,
    }
    if runbook in MOVING_RUNBOOKS:
        reasons += _runbook_reasons(result, resource, runbook, target, accept_data_loss)
    elif runbook == "rejoin":
        reasons += _rejoin_reasons(result, resource)
    result["reasons"] = reasons
    result["safe"] = not reasons
    return result


def _divergence(replica, node, common, extra):
    """Say how a follower's copy left the writer's history, and the runbooks that repair it."""
    if extra:
        what = f"has snapshots newer than the last common one @{common['name'].split('@', 1)[1]}: " + ", ".join(
            s["name"] for s in extra
        )
    else:
        # A read-only copy changed behind replication's back (readonly=off, a write, readonly=on): the next
        # incremental receive would fail with "destination has been modified since most recent snapshot".
        what = f"was written to after its newest snapshot ({replica['written']} bytes changed)"
    return (
        f"{replica['name']} on {node} {what}. Run rejoin.yml or failback.yml (both keep it in a rescue), or "
        f"resync.yml -e ha_confirm_resync={node} -e ha_resync_force=true (a re-seed that keeps the old copy)"
    )


def _rescued(runbook, node, target, accept_data_loss):
    """Return True when a diverged copy on node is kept in a rescue by this runbook rather than refused."""
    if runbook == "failback":
        return node == target
    # An unplanned move (the writer lost, acknowledged) rescues the followers that got ahead of the new writer.
    return runbook == "rejoin" or (runbook in ("failover", "move") and accept_data_loss)


def _newest_rank(nodes, candidates):
    """Return {node: score}: per dataset, how many candidates' newest snapshot (by GUID) node's history holds."""
    scores = dict.fromkeys(candidates, 0)
    logicals = {logical for node in candidates for logical in nodes[node].get("datasets", {})}
    for logical in logicals:
        newest = {}
        for node in candidates:
            snapshots = nodes[node].get("datasets", {}).get(logical, {}).get("snapshots", [])
            # createtxg orders snapshots within one pool only; across nodes only the GUID compares.
            newest[node] = snapshots[-1]["guid"] if snapshots else None
        for node in candidates:
            held = {snap["guid"] for snap in nodes[node].get("datasets", {}).get(logical, {}).get("snapshots", [])}
            scores[node] += sum(1 for other in candidates if newest[other] is not None and newest[other] in held)
    return scores


def _best_follower(nodes, reachable, writers, order):
    """Return the answering read-only node holding the newest snapshots (ties: inventory order), or None."""
    candidates = [node for node in order if node in reachable and node not in writers]
    if not candidates:
        return None
    scores = _newest_rank(nodes, candidates)
    return max(candidates, key=lambda node: (scores[node], -order.index(node)))


def _rejoin_reasons(result, resource):
    writer = result["authoritative"]
    if writer is None or writer not in result["writers"]:
        return [
            "no node is the recorded, writable writer, so there is nothing to rejoin: run failover.yml (or "
            "move_leader.yml) to make one node the writer first"
        ]
    origin = resource.get("origin")
    if resource["backend"] == "zrepl" and writer != origin and origin in result["reachable"]:
        return [
            f"{origin} is the zrepl origin: it follows {writer} only by becoming the writer again; run failback.yml "
            f"(it keeps {origin}'s own writes in a rescue)"
        ]
    return []


def _runbook_reasons(result, resource, runbook, target, accept_data_loss):
    reasons = []
    if target not in resource["nodes"]:
        return [f"target {target!r} is not a node of resource {resource['name']} ({', '.join(resource['nodes'])})"]
    if target in result["unreachable"]:
        return [f"the target {target} does not answer; it cannot become the writer"]
    promoted = result["authoritative"] == target and target in result["writers"]
    returning = [node for node in result["stale"] if node != target]
    if returning and not promoted and runbook != "failback":
        reasons.append(
            f"{', '.join(returning)} came back still writable with an older epoch: run rejoin.yml first (it is "
            f"fenced and its own writes kept in a rescue), then the {runbook}"
        )
    if result["unreachable"]:
        if runbook == "failback":
            reasons.append(f"{', '.join(result['unreachable'])} do not answer; failback needs both nodes")
        elif not accept_data_loss:
            reasons.append(
                f"{', '.join(result['unreachable'])} do not answer, so this is an unplanned failover that loses the "
                "writes since the last replicated snapshot; rerun with -e ha_accept_data_loss=true to accept that"
            )
    elif runbook in ("failover", "move") and accept_data_loss:
        reasons.append("every node answers: run the planned failover (drop ha_accept_data_loss), it loses nothing")
    return reasons


def ha_node_datasets(datasets, resource, node):
    """Return [{name: the dataset's name on node, mountpoint}] for zfs_role, from the resource's datasets."""
    names = resource["node_datasets"][node]
    return [{"name": names[item["name"]], "mountpoint": item.get("mountpoint")} for item in datasets]


def ha_replication_peers(resource, sender, receivers, addresses, discard=()):
    """Return zfs_replicate_set's peers: each receiver with its address, its name for every dataset of the sender,
    and whether its diverged copies are kept in a rescue (the receivers in discard)."""
    sent = resource["node_datasets"][sender]
    return [
        {
            "host": addresses[node],
            "name": node,
            "targets": {sent[logical]: name for logical, name in resource["node_datasets"][node].items()},
            "discard_target_changes": node in discard,
        }
        for node in receivers
        if node != sender
    ]


def ha_unsynced(assessment, nodes, source):
    """Return '<node>:<dataset>' for every dataset of source whose newest snapshot (by GUID) a node lacks."""
    datasets = assessment["nodes"][source].get("datasets", {})
    return [
        f"{node}:{logical}"
        for node in nodes
        if node != source
        for logical in datasets
        if not assessment["lag"].get(node, {}).get(logical, {}).get("in_sync")
    ]


def ha_node_summary(view):
    """Return one node's line of the status document: reachability, role and newest snapshot per dataset."""
    if not view.get("reachable"):
        return {"reachable": False}
    return {
        "reachable": True,
        "writable": bool(view["writable"]),
        "epoch": view["epoch"],
        "writer_record": view["writer_record"],
        "missing": view["missing"],
        "datasets": {
            logical: {
                "name": entry["name"],
                "readonly": entry["readonly"],
                "mounted": entry["mounted"],
                "newest_snapshot": entry["snapshots"][-1]["name"] if entry["snapshots"] else None,
                "snapshot_count": len(entry["snapshots"]),
            }
            for logical, entry in view["datasets"].items()
        },
    }


def ha_status_table(status):
    """Return the status document as aligned text lines, one per node and dataset, then the warnings."""
    lines = [
        f"resource {status['resource']} ({status['backend']}): writer {status['writer'] or 'NONE'}, "
        f"epoch {status['epoch']}",
        f"{'node':<8} {'state':<12} {'dataset':<40} {'ro':<4} {'mnt':<4} {'newest snapshot':<32} {'lag'}",
    ]
    for node, view in status["nodes"].items():
        if not view["reachable"]:
            lines.append(f"{node:<8} {'UNREACHABLE':<12}")
            continue
        state = "writer" if view["writable"] else "read-only"
        for logical, entry in view["datasets"].items():
            lag = status["lag"].get(node, {}).get(logical)
            shown = "-" if lag is None else ("in sync" if lag["in_sync"] else f"{lag['snapshots_behind']} behind")
            if lag and lag["diverged"]:
                shown = f"DIVERGED ({len(lag['diverged'])} extra)"
            newest = (entry["newest_snapshot"] or "-").split("@")[-1]
            lines.append(
                f"{node:<8} {state:<12} {entry['name']:<40} {'on' if entry['readonly'] else 'off':<4} "
                f"{'yes' if entry['mounted'] else 'no':<4} {newest:<32} {shown}"
            )
        for missing in view["missing"]:
            lines.append(f"{node:<8} {state:<12} {missing:<40} MISSING")
    lines += [f"WARNING: {warning}" for warning in status["warnings"]]
    return lines


def ha_rpo(assessment, node, now):
    """Return, per dataset of node, its newest snapshot and that snapshot's age in seconds at now (epoch seconds).

    After an unplanned failover this is what the new writer holds: every write after it was lost.
    """
    rows = []
    for logical, entry in assessment["nodes"][node].get("datasets", {}).items():
        newest = entry["snapshots"][-1] if entry["snapshots"] else None
        created = newest and newest.get("creation")
        rows.append(
            {
                "dataset": logical,
                "last_snapshot": newest and newest["name"],
                "age_seconds": round(float(now) - created, 1) if isinstance(created, (int, float)) else None,
            }
        )
    return rows


def ha_reachable_info(result):
    """Return a registered zfs_info result, or None when the host did not answer (for ha_assess)."""
    if not isinstance(result, dict) or result.get("unreachable"):
        return None
    return result


FILTERS = {
    "ha_resource": ha_resource,
    "ha_assess": ha_assess,
    "ha_reachable_info": ha_reachable_info,
    "ha_node_datasets": ha_node_datasets,
    "ha_replication_peers": ha_replication_peers,
    "ha_unsynced": ha_unsynced,
    "ha_node_summary": ha_node_summary,
    "ha_status_table": ha_status_table,
    "ha_rpo": ha_rpo,
}


class FilterModule:
    """freebsd_ha.storage runbook filters."""

    def filters(self):
        return FILTERS
