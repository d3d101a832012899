# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side judgement of the HAST runbooks: the `hast:` section of a resource, the hast role's variables
made from it, and the assessment of both nodes' hast_info and pool reads in the shape ha_assess returns.

Pure functions, so every decision of a HAST runbook is tested without a node.
"""

from __future__ import annotations

import base64
import json
import posixpath
from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _hast, _zpool
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError

HAST_KEYS = (
    "resource",
    "pool",
    "mountpoint",
    "local",
    "providers",
    "addresses",
    "provider_name",
    *_hast._RESOURCE_DEFAULTS,
)
CHOICES = {"replication": _hast.REPLICATION_MODES, "checksum": _hast.CHECKSUMS, "compression": _hast.COMPRESSIONS}
RUNBOOKS = ("status", "failover", "failback", "provision", "resync", "rejoin")


def _fail(name, message):
    raise AnsibleFilterError(f"freebsd_ha.storage: resource {name}: hast.{message}")


def _word(name, key, value):
    if not isinstance(value, str) or not _hast.is_plain_word(value):
        _fail(name, f"{key} must be one hast.conf word (letters, digits, . - _ / : [ ]; no keyword), got {value!r}")
    return value


def _node_paths(name, hast, nodes, key):
    """Return {node: value} from hast[key] given as one value for every node or as a mapping per node."""
    value = hast.get(key)
    if isinstance(value, dict):
        if sorted(value) != sorted(nodes):
            _fail(name, f"{key} must name exactly the nodes {nodes}, got {sorted(value)}")
        return {node: _word(name, f"{key}.{node}", value[node]) for node in nodes}
    return {node: _word(name, key, value) for node in nodes}


def ha_hast_resource(resource):
    """Return the resolved resource with its `hast` section checked and completed (see DOCUMENTATION)."""
    name = resource.get("name")
    if resource.get("backend") != "hast":
        raise AnsibleFilterError(f"freebsd_ha.storage: resource {name} is not a hast resource")
    hast = resource.get("hast")
    if not isinstance(hast, dict):
        raise AnsibleFilterError(
            f"freebsd_ha.storage: resource {name}: a hast resource needs a hast: section "
            "({resource, pool, local or providers, ...}; see docs/variables.md)"
        )
    unknown = sorted(set(hast) - set(HAST_KEYS))
    if unknown:
        _fail(name, f"{', '.join(unknown)}: unknown key(s); known: {', '.join(HAST_KEYS)}")
    hast = dict(hast)
    nodes = resource["nodes"]
    hast["resource"] = _word(name, "resource", hast.get("resource") or name)
    try:
        _zpool.validate_pool_name(hast.get("pool"))
    except StateError as error:
        _fail(name, f"pool: {error}")
    if _zpool.is_pool_id(hast["pool"]):
        _fail(name, f"pool must be the pool's name, not a numeric id, got {hast['pool']!r}")
    mountpoint = hast.setdefault("mountpoint", None)
    if mountpoint is not None and (not isinstance(mountpoint, str) or not posixpath.isabs(mountpoint)):
        _fail(name, f"mountpoint must be an absolute path, got {mountpoint!r}")
    if ("local" in hast) == ("providers" in hast):
        _fail(
            name, "give the local provider either as local: (the same path on every node) or as providers: {node: path}"
        )
    hast["providers"] = _node_paths(name, hast, nodes, "providers" if "providers" in hast else "local")
    hast.pop("local", None)
    addresses = hast.setdefault("addresses", {})
    if not isinstance(addresses, dict) or set(addresses) - set(nodes):
        _fail(name, f"addresses must map nodes of the resource to their replication address, got {addresses!r}")
    for node, address in addresses.items():
        _word(name, f"addresses.{node}", address)
    if hast.get("provider_name") is not None:
        _word(name, "provider_name", hast["provider_name"])
    hast.setdefault("replication", "memsync")
    for key, choices in CHOICES.items():
        if key in hast and hast[key] not in choices:
            _fail(name, f"{key} must be one of {', '.join(choices)}, got {hast[key]!r}")
    timeout = hast.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1):
        _fail(name, f"timeout must be a positive number of seconds, got {timeout!r}")
    if hast.get("exec") is not None and not posixpath.isabs(_word(name, "exec", hast["exec"])):
        _fail(name, f"exec must be an absolute path, got {hast['exec']!r}")
    if hast.get("metaflush") is not None and not isinstance(hast["metaflush"], bool):
        _fail(name, f"metaflush must be true or false, got {hast['metaflush']!r}")
    hast["device"] = _hast.device_path(hast.get("provider_name") or hast["resource"])
    hast["device_dir"] = posixpath.dirname(hast["device"])
    resolved = dict(resource, hast=hast)
    # The pool's root dataset carries the writer/epoch record, so zfs_role and ha_node_datasets work unchanged.
    resolved["datasets"] = [{"name": hast["pool"], "mountpoint": mountpoint}]
    resolved["node_datasets"] = {node: {hast["pool"]: hast["pool"]} for node in nodes}
    return resolved


def _address(node, value):
    if isinstance(value, Mapping):
        return value.get("ha_link_address") or value.get("ansible_host") or node
    return value


def ha_hast_conf(resource, addresses):
    """Return the hast role's hast_resources (one item) for a resource resolved by ha_hast_resource.

    addresses: {node: the node's replication address, or its host variables (hostvars), whose
    ha_link_address, else ansible_host, else the name is taken}; the section's own addresses win.
    Each node's remote is its peer's address.
    """
    hast = resource["hast"]
    wanted = {node: _address(node, (addresses or {}).get(node)) for node in resource["nodes"]}
    wanted.update(hast["addresses"])
    missing = [node for node in resource["nodes"] if not wanted.get(node)]
    if missing:
        _fail(resource["name"], f"addresses: no replication address for {', '.join(missing)} (set ha_link_address)")
    nodes = {}
    for node in resource["nodes"]:
        peer = next(other for other in resource["nodes"] if other != node)
        nodes[node] = {"local": hast["providers"][node], "remote": wanted[peer]}
    item = {"name": hast["resource"], "primary": resource["primary"], "nodes": nodes}
    for key in ("provider_name", *_hast._RESOURCE_DEFAULTS):
        if hast.get(key) is not None:
            item[key] = hast[key]
    return [item]


# ---------------------------------------------------------------- assessment


def _pool_view(pool_name, read):
    """Return the pool's record from a zfs_info result on the pool's root, or None when it is not imported here."""
    if not isinstance(read, dict) or read.get("skipped") or read.get("failed"):
        return None
    row = next((row for row in read.get("datasets", []) if row.get("name") == pool_name), None)
    if row is None:
        return None
    epoch = str(row.get("freebsd-ha:epoch", "-"))
    writer = row.get("freebsd-ha:writer", "-")
    return {
        "imported": True,
        "readonly": row.get("readonly") == "on",
        "mounted": row.get("mounted") == "yes",
        "writer": None if writer in ("-", "", None) else writer,
        "epoch": int(epoch) if epoch.isdigit() else 0,
    }


def _node_view(resource, state):
    """Summarise one node (hast_info, pool read, last-seen record) for the assessment; None input: unreachable."""
    info = (state or {}).get("hast")
    if not isinstance(info, dict) or info.get("unreachable"):
        return {"reachable": False, "seen": (state or {}).get("seen")}
    hast, pool = resource["hast"], resource["hast"]["pool"]
    entry = (info.get("resources") or {}).get(hast["resource"])
    record = _pool_view(pool, state.get("pool"))
    datasets = (
        {}
        if record is None
        else {
            pool: {
                "name": pool,
                "readonly": record["readonly"],
                "mounted": record["mounted"],
                "writer": record["writer"],
                "epoch": record["epoch"],
                "snapshots": [],
            }
        }
    )
    meta = (entry or {}).get("metadata") or {}
    view = {
        "reachable": True,
        "error": info.get("msg") if info.get("failed") else None,
        "hastd_running": info.get("hastd_running"),
        "configured": bool(entry and entry.get("configured")),
        "role": (entry or {}).get("role"),
        "status": (entry or {}).get("status"),
        "dirty_bytes": (entry or {}).get("dirty_bytes"),
        "device_present": bool((entry or {}).get("device_present")),
        "metadata": meta,
        "split_brain_log": ((entry or {}).get("split_brain") or {}).get("evidence", []),
        "bug_292322": ((entry or {}).get("bug_292322") or {}).get("suspected", False),
        "pool": record,
        # The keys ha_node_summary and ha_status_table read, as for a ZFS based resource.
        "datasets": datasets,
        "missing": [],
        "writable": [pool] if record and not record["readonly"] else [],
        "epoch": record["epoch"] if record else 0,
        "writer_record": record["writer"] if record else None,
        "seen": state.get("seen"),
        "entry": entry,
    }
    return view


def _counters(view):
    meta = view.get("metadata") or {}
    return [meta.get("localcnt"), meta.get("remotecnt")] if meta.get("state") == "present" else None


def _divergence(first, second):
    """Return why the two reachable copies diverged (both written since the last sync), from counters and roles."""
    reasons = []
    if _hast.is_split_brain(first.get("metadata"), second.get("metadata")):
        reasons.append(
            f"both copies were written since their last sync (counters local/remote {_counters(first)} and "
            f"{_counters(second)})"
        )
    ids = ((first.get("metadata") or {}).get("resuid"), (second.get("metadata") or {}).get("resuid"))
    if _counters(first) and _counters(second) and 0 not in ids and ids[0] != ids[1]:
        reasons.append(f"the nodes hold different resource IDs ({ids[0]}, {ids[1]}): their metadata were created apart")
    if first["pool"] and second["pool"]:
        reasons.append("the pool is imported on both nodes")
    return reasons


def _ahead(view, peer):
    """Return True when view's copy holds writes its peer has not received (its first disconnected write)."""
    mine, theirs = _counters(view), _counters(peer)
    return bool(mine and theirs) and mine[0] > theirs[1]


def ha_hast_in_sync(assessment, primary, secondary):
    """Return True when secondary holds every write of primary: connected, complete, and counters mirrored."""
    nodes = assessment["nodes"]
    first, second = nodes.get(primary, {}), nodes.get(secondary, {})
    if not (first.get("reachable") and second.get("reachable")):
        return False
    mine, theirs = _counters(first), _counters(second)
    return (
        first["role"] == "primary"
        and second["role"] == "secondary"
        and first["status"] == "complete"
        and mine is not None
        and theirs is not None
        and mine == [theirs[1], theirs[0]]
    )


def _provision_reasons(name, nodes, runbook):
    reasons = []
    for node, view in nodes.items():
        if not view["reachable"] or runbook == "provision":
            continue
        if view["error"]:
            reasons.append(f"{node}: hast_info failed ({view['error']}); fix hastd/hast.conf there and re-run")
        elif not view["configured"]:
            reasons.append(f"{node} has no HAST resource {name} in hast.conf: run provision.yml")
        elif view["hastd_running"] is False:
            reasons.append(f"hastd is not running on {node}: start it (service hastd start) or run provision.yml")
        elif (view["metadata"] or {}).get("state") == "absent":
            reasons.append(f"{node} has no HAST metadata for {name} (hastctl create never ran): run provision.yml")
    return reasons


def _authority(nodes, primary_node):
    """Return the node whose copy is authoritative: the pool's writer, else the one primary, else the copy ahead."""
    reachable = [n for n, v in nodes.items() if v["reachable"]]
    holders = [n for n in reachable if nodes[n]["pool"] and nodes[n]["writer_record"] == n]
    if len(holders) == 1:
        return holders[0]
    imported = [n for n in reachable if nodes[n]["pool"]]
    if len(imported) == 1:
        return imported[0]
    primaries = [n for n in reachable if nodes[n]["role"] == "primary"]
    if len(primaries) == 1:
        return primaries[0]
    if len(reachable) == 2:
        first, second = reachable
        ahead = [n for n, p in ((first, second), (second, first)) if _ahead(nodes[n], nodes[p])]
        if len(ahead) == 1:
            return ahead[0]
    return None


def ha_hast_assess(states, resource, runbook="status", target=None, accept_data_loss=False, confirm_discard=None):  # noqa: PLR0917
    """Return the judgement of a HAST resource in ha_assess's shape, plus the HAST details (see DOCUMENTATION).

    states: {node: {hast: hast_info result (unreachable true when the node did not answer), pool:
    zfs_info result on the pool's root (or nothing where not read), seen: the last-seen record}}.
    """
    if runbook not in RUNBOOKS:
        raise AnsibleFilterError(f"freebsd_ha.storage: ha_hast_assess: unknown runbook {runbook!r}")
    name = resource["hast"]["resource"]
    nodes = {node: _node_view(resource, (states or {}).get(node)) for node in resource["nodes"]}
    reachable = [n for n, v in nodes.items() if v["reachable"]]
    unreachable = [n for n in resource["nodes"] if n not in reachable]
    writers = [n for n in reachable if nodes[n]["writable"]]
    primaries = [n for n in reachable if nodes[n]["role"] == "primary"]
    seen_epochs = [int((v.get("seen") or {}).get("epoch") or 0) for v in nodes.values()]
    epoch = max([v["epoch"] for v in nodes.values() if v["reachable"]] + seen_epochs + [0])
    authoritative = _authority(nodes, resource["primary"])
    reasons, warnings = _provision_reasons(name, nodes, runbook), []
    split = []
    if len(reachable) == 2:
        split = _divergence(nodes[reachable[0]], nodes[reachable[1]])
    logged = sorted({line for n in reachable for line in nodes[n]["split_brain_log"]})
    if len(primaries) == 2 and authoritative is None:
        split.append("both nodes are primary and neither holds the pool, so nothing tells which copy is current")
    if logged and not split and len(reachable) < 2:
        split.append(f"recent hastd log lines report a split brain ({logged[-1]}) and the peer cannot be compared")
    elif logged and not split:
        warnings.append(f"hastd logged a split brain recently ({logged[-1]}), but the counters show it resolved")
    stale = [] if split else [n for n in primaries if n != authoritative]
    if split:
        winner = target if target in resource["nodes"] else authoritative
        loser = next((n for n in resource["nodes"] if n != winner), None) if winner else None
        winner, loser = (winner, loser) if winner else ("<node whose data wins>", "<the other node>")
        message = (
            f"split brain on {name}: {'; '.join(split)}. Name the node whose data wins and confirm the loss of the "
            f"other's: run resync.yml -e ha_target={winner} -e ha_confirm_resync={loser}"
        )
        (warnings if runbook == "resync" else reasons).append(message)
    elif len(primaries) == 2:
        warnings.append(
            f"{', '.join(stale)} is primary beside {authoritative} but wrote nothing since the last sync: a returning "
            "old primary; it is fenced (services stopped, pool exported, role init) before anything else"
        )
    for node in reachable:
        if nodes[node]["bug_292322"]:
            warnings.append(
                f"{node}: symptoms of FreeBSD bug 292322 (hastd on FreeBSD 15+ stays degraded: the worker does not "
                f"get the connection); apply the fix from {_hast.BUG_292322_URL} or stay on 14.x"
            )
    result = {
        "resource": resource["name"],
        "backend": "hast",
        "hast_resource": name,
        "pool": resource["hast"]["pool"],
        "nodes": nodes,
        "reachable": reachable,
        "unreachable": unreachable,
        "writers": writers,
        "primaries": primaries,
        "epoch": epoch,
        "next_epoch": epoch + 1,
        "authoritative": authoritative,
        "stale": stale,
        "split_brain": split,
        "lag": {},
        "warnings": warnings,
        "loser": None,
        "loses": None,
    }
    if authoritative and len(reachable) == 2:
        peer = next(n for n in reachable if n != authoritative)
        result["in_sync"] = ha_hast_in_sync(result, authoritative, peer)
        result["lag"] = {peer: {resource["hast"]["pool"]: _lag(nodes[authoritative], nodes[peer], result["in_sync"])}}
    else:
        result["in_sync"] = False
    if runbook in ("failover", "failback"):
        reasons += _switch_reasons(result, resource, runbook, target, accept_data_loss)
    elif runbook == "resync":
        reasons += _resync_reasons(result, resource, target, confirm_discard)
    elif runbook == "rejoin":
        reasons += _rejoin_reasons(result)
    result["reasons"] = reasons
    result["safe"] = not reasons
    return result


def _lag(writer, peer, in_sync):
    return {
        "in_sync": in_sync,
        "peer_role": peer["role"],
        "peer_status": peer["status"],
        "writer_status": writer["status"],
        "dirty_bytes": writer["dirty_bytes"],
        "snapshots_behind": 0 if in_sync else None,
        "diverged": [],
        "common": None,
        "newest_on_writer": None,
    }


def _last_seen(result, node):
    """Return (node's state, when) from the newest last-seen record any reachable node holds about it."""
    records = [v.get("seen") or {} for v in result["nodes"].values() if v["reachable"]]
    records = sorted((r for r in records if node in (r.get("nodes") or {})), key=lambda r: str(r.get("seen_at")))
    return (records[-1]["nodes"][node], records[-1].get("seen_at")) if records else (None, None)


def _switch_reasons(result, resource, runbook, target, accept_data_loss):
    nodes = result["nodes"]
    if target not in resource["nodes"]:
        return [f"target {target!r} is not a node of resource {resource['name']} ({', '.join(resource['nodes'])})"]
    if target in result["unreachable"]:
        return [f"the target {target} does not answer; it cannot become the writer"]
    reasons = []
    if result["unreachable"]:
        lost = result["unreachable"][0]
        seen, when = _last_seen(result, lost)
        known = (
            f"last seen at {when} as {seen.get('role')} {seen.get('status')} with {seen.get('dirty_bytes')} dirty bytes"
            if seen
            else "no earlier state was recorded"
        )
        if runbook == "failback":
            reasons.append(f"{lost} does not answer; failback needs both nodes")
        elif not accept_data_loss:
            reasons.append(
                f"{lost} does not answer ({known}), so this is an unplanned failover: writes {lost} made while "
                "its peer was disconnected are lost; rerun with -e ha_accept_data_loss=true to accept that"
            )
        if nodes[target]["role"] == "primary" and nodes[target]["pool"] is None and result["split_brain"]:
            reasons.append(f"{target} is primary but the copies diverged: run resync.yml")
        return reasons
    if runbook == "failover" and accept_data_loss:
        reasons.append("every node answers: run the planned failover (drop ha_accept_data_loss), it loses nothing")
    other = next(n for n in resource["nodes"] if n != target)
    if _ahead(nodes[other], nodes[target]) and result["authoritative"] == other and nodes[other]["role"] != "primary":
        reasons.append(
            f"{other} holds writes {target} never received and neither node is primary: make {other} primary again "
            f"(failover.yml -e ha_target={other}) so it resynchronises {target}, then switch"
        )
    return reasons


def _resync_reasons(result, resource, target, confirm_discard):
    if target not in resource["nodes"]:
        return [
            f"resync needs the winner: -e ha_target=<node whose data is kept> (one of {', '.join(resource['nodes'])})"
        ]
    if result["unreachable"]:
        return [f"{', '.join(result['unreachable'])} do not answer; a resync needs both nodes"]
    loser = next(n for n in resource["nodes"] if n != target)
    view = result["nodes"][loser]
    result["loser"] = loser
    pool = view["pool"]
    result["loses"] = {
        "node": loser,
        "role": view["role"],
        "counters": _counters(view),
        "wrote_since_last_sync": _ahead(view, result["nodes"][target]),
        "pool_imported": bool(pool),
        "pool_writer": pool and pool["writer"],
        "pool_epoch": pool and pool["epoch"],
        "dirty_bytes": view["dirty_bytes"],
        "what": f"every write {loser} made since the last sync with {target}; its provider is re-initialised "
        f"(hastctl create) and copied in full from {target}",
    }
    reasons = []
    if not result["split_brain"]:
        reasons.append(
            f"the copies of {resource['hast']['resource']} have not diverged: nothing to resync; a node that lags "
            "catches up as secondary (rejoin.yml)"
        )
    if confirm_discard != loser:
        reasons.append(
            f"resync keeps {target}'s data and throws away {loser}'s ({result['loses']['what']}); confirm with "
            f"-e ha_confirm_resync={loser}"
        )
    return reasons


def _rejoin_reasons(result):
    if result["authoritative"] is None or result["nodes"][result["authoritative"]]["role"] != "primary":
        return ["no node is primary with the pool: fail over first (failover.yml), then rejoin the other node"]
    return []


def ha_hast_table(assessment):
    """Return the HAST part of the status as text lines: role, sync status, dirty bytes and pool record per node."""
    lines = [
        f"HAST resource {assessment['hast_resource']} (pool {assessment['pool']}): writer "
        f"{assessment['authoritative'] or 'NONE'}, epoch {assessment['epoch']}, "
        f"{'in sync' if assessment['in_sync'] else 'NOT in sync'}",
        f"{'node':<8} {'role':<10} {'status':<10} {'dirty bytes':>12} {'localcnt/remotecnt':<19} {'pool':<10} "
        "writer/epoch",
    ]
    for node, view in assessment["nodes"].items():
        if not view["reachable"]:
            seen, when = _last_seen(assessment, node)
            last = (
                f" (last seen {when}: {seen['role']} {seen['status']}, {seen['dirty_bytes']} dirty bytes)"
                if seen
                else ""
            )
            lines.append(f"{node:<8} UNREACHABLE{last}")
            continue
        counters = _counters(view)
        pool = view["pool"]
        lines.append(
            f"{node:<8} {view['role'] or '-':<10} {view['status'] or '-':<10} {view['dirty_bytes'] or 0:>12} "
            f"{'/'.join(map(str, counters)) if counters else '-':<19} "
            f"{('writable' if not pool['readonly'] else 'read-only') if pool else 'exported':<10} "
            f"{(pool['writer'] or '-') + '/' + str(pool['epoch']) if pool else '-'}"
        )
    return lines


def ha_hast_seen(assessment):
    """Return the last-seen record written on the nodes: role, status, dirty bytes and counters of each reachable one."""
    return {
        "resource": assessment["resource"],
        "epoch": assessment["epoch"],
        "writer": assessment["authoritative"],
        "nodes": {
            node: {
                "role": view["role"],
                "status": view["status"],
                "dirty_bytes": view["dirty_bytes"],
                "counters": _counters(view),
            }
            for node, view in assessment["nodes"].items()
            if view["reachable"]
        },
    }


def ha_hast_state(hostvars):
    """Return one node's {hast, pool, seen} for ha_hast_assess from its host variables after the preflight reads."""
    seen = None
    slurped = hostvars.get("__ha_hast_seen") or {}
    if slurped.get("content"):
        try:
            seen = json.loads(base64.b64decode(slurped["content"]))
        except ValueError:
            seen = None
    return {"hast": hostvars.get("__ha_info"), "pool": hostvars.get("__ha_hast_pool"), "seen": seen}


FILTERS = {
    "ha_hast_state": ha_hast_state,
    "ha_hast_resource": ha_hast_resource,
    "ha_hast_conf": ha_hast_conf,
    "ha_hast_assess": ha_hast_assess,
    "ha_hast_in_sync": ha_hast_in_sync,
    "ha_hast_table": ha_hast_table,
    "ha_hast_seen": ha_hast_seen,
}


class FilterModule:
    """freebsd_ha.storage HAST runbook filters."""

    def filters(self):
        return FILTERS
