# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side judgement of the gmirror-over-GEOM-Gate runbooks.

Pure functions: the gmirror section of a resource is validated and mapped onto the ggated role's variables, and
the reads of every node (gmirror list, gmirror dump of the local slice, ggatec list -v, the authority record,
ggated's status) are judged into the assessment shape the runbooks share (see ha_assess).
"""

from __future__ import annotations

import base64
import json
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _geom

STATE_DIR = "/var/db/freebsd_ha"
FILESYSTEMS = ("zfs", "ufs")
# A component marked this way on disk was being (re)written when the mirror stopped: not a consistent copy.
RESYNC_DFLAGS = ("SYNCHRONIZING", "FORCE_SYNC")
_IPV4_RE = re.compile(
    r"^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$"
)
_POOL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]*$")
_MODE_RE = re.compile(r"^r(\d+)w(\d+)e(\d+)$")


def _fail(message):
    raise AnsibleFilterError(f"freebsd_ha.storage: {message}")


def _dev(path):
    return path if path.startswith(_geom.DEV_PREFIX) else f"{_geom.DEV_PREFIX}{path}"


def ha_gmirror_resource(resource, addresses):
    """Return the validated gmirror settings of a resolved resource (see DOCUMENTATION).

    addresses: {node: replication-link address} (hostvar ha_link_address, else ansible_host).
    """
    name = resource.get("name")
    if resource.get("backend") != "gmirror":
        _fail(f"resource {name}: backend is {resource.get('backend')!r}, not gmirror")
    raw = resource.get("gmirror")
    if not isinstance(raw, dict):
        _fail(f"resource {name}: the gmirror backend needs a gmirror section ({{mirror, slice, filesystem}})")
    unknown = sorted(
        set(raw)
        - {"mirror", "slice", "slices", "filesystem", "local_priority", "remote_priority", "balance", "direct"}
        - {"ggate_unit", "ggate_timeout", "state_dir"}
    )
    if unknown:
        _fail(f"resource {name}: unknown gmirror setting(s) {', '.join(unknown)}")
    mirror = raw.get("mirror") or name
    try:
        _geom.validate_mirror_name(mirror)
    except _geom.StateError as error:
        _fail(f"resource {name}: gmirror.mirror: {error}")
    overrides = raw.get("slices") or {}
    if not isinstance(overrides, dict) or set(overrides) - set(resource["nodes"]):
        _fail(f"resource {name}: gmirror.slices maps nodes of the resource to their slice, got {overrides!r}")
    slices = {}
    for node in resource["nodes"]:
        value = overrides.get(node) or raw.get("slice")
        if not isinstance(value, str) or not re.match(r"^(/dev/)?[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", value):
            _fail(
                f"resource {name}: node {node} needs its slice (gmirror.slice, or gmirror.slices.{node}), got {value!r}"
            )
        slices[node] = _dev(value)
    for node in resource["nodes"]:
        address = addresses.get(node) if isinstance(addresses, dict) else None
        if not isinstance(address, str) or not _IPV4_RE.match(address) or address == "0.0.0.0":
            _fail(
                f"resource {name}: node {node} has replication-link address {address!r}; ggated exports the slice to "
                "exactly that address and authenticates nobody, so set ha_link_address to its IPv4 address"
            )
    local_priority = raw.get("local_priority", 1)
    remote_priority = raw.get("remote_priority", 0)
    if not all(isinstance(p, int) and not isinstance(p, bool) for p in (local_priority, remote_priority)) or not (
        0 <= remote_priority < local_priority <= _geom.PRIORITY_MAX
    ):
        _fail(
            f"resource {name}: need 0 <= gmirror.remote_priority < gmirror.local_priority <= 255 (balance prefer "
            f"reads from the biggest priority, which keeps reads local), got {local_priority}/{remote_priority}"
        )
    balance = raw.get("balance", "prefer")
    if balance not in _geom.BALANCES:
        _fail(f"resource {name}: gmirror.balance must be one of {', '.join(_geom.BALANCES)}, got {balance!r}")
    timeout = raw.get("ggate_timeout")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0):
        _fail(f"resource {name}: gmirror.ggate_timeout is whole seconds, got {timeout!r}")
    return {
        "mirror": mirror,
        "device": f"/dev/mirror/{mirror}",
        "slices": slices,
        "components": {node: _geom.component_name(path) for node, path in slices.items()},
        "addresses": dict(addresses),
        "filesystem": _filesystem(name, raw.get("filesystem"), mirror),
        "local_priority": local_priority,
        "remote_priority": remote_priority,
        "balance": balance,
        "direct": raw.get("direct"),
        "ggate_unit": raw.get("ggate_unit"),
        "ggate_timeout": timeout,
        "state_file": f"{raw.get('state_dir') or STATE_DIR}/{name}.json",
        "state_dir": raw.get("state_dir") or STATE_DIR,
    }


def _filesystem(name, raw, mirror):
    if not isinstance(raw, dict) or raw.get("type") not in FILESYSTEMS:
        _fail(
            f"resource {name}: gmirror.filesystem needs type zfs ({{type: zfs, pool}}) or ufs ({{type: ufs, "
            f"mountpoint[, device]}}), got {raw!r}"
        )
    if raw["type"] == "zfs":
        if not isinstance(raw.get("pool"), str) or not _POOL_RE.match(raw["pool"]):
            _fail(
                f"resource {name}: gmirror.filesystem.pool must name the ZFS pool on the mirror, got {raw.get('pool')!r}"
            )
        return {"type": "zfs", "pool": raw["pool"], "mountpoint": raw.get("mountpoint"), "device": None}
    mountpoint = raw.get("mountpoint")
    if not isinstance(mountpoint, str) or not mountpoint.startswith("/") or mountpoint == "/":
        _fail(
            f"resource {name}: gmirror.filesystem.mountpoint must be an absolute path other than /, got {mountpoint!r}"
        )
    device = raw.get("device") or f"/dev/mirror/{mirror}"
    if not device.startswith(f"/dev/mirror/{mirror}"):
        _fail(
            f"resource {name}: gmirror.filesystem.device must be /dev/mirror/{mirror} or a partition of it, got {device!r}"
        )
    return {"type": "ufs", "pool": None, "mountpoint": mountpoint, "device": device}


def ha_gmirror_ggated(gm, resource, primary):
    """Return ggated_resources (one item) for the freebsd_ha.storage.ggated role, with primary as the mirror's host."""
    if primary not in resource["nodes"]:
        _fail(f"resource {resource['name']}: {primary!r} is not one of its nodes {resource['nodes']}")
    item = {
        "name": resource["name"],
        "mirror": gm["mirror"],
        "primary": primary,
        "nodes": {node: {"disk": gm["slices"][node], "address": gm["addresses"][node]} for node in resource["nodes"]},
        "balance": gm["balance"],
        "local_priority": gm["local_priority"],
        "remote_priority": gm["remote_priority"],
        "direct": gm["direct"],
        "autosync": False,
    }
    if gm["ggate_unit"] is not None:
        item["ggate_unit"] = gm["ggate_unit"]
    return [item]


# ---------------------------------------------------------------- reading what the nodes returned


def _mode_counts(mode):
    match = _MODE_RE.match(mode or "")
    return tuple(int(n) for n in match.groups()) if match else (0, 0, 0)


def _component(component):
    return {
        "name": component["name"],
        "state": component["state"],
        "genid": component["genid"] or 0,
        "syncid": component["syncid"] or 0,
        "priority": component["priority"],
        "in_sync": _geom.is_in_sync(component),
        "synchronized": component.get("synchronized"),
    }


def _mirror(mirror, local, remote_units):
    if mirror is None:
        return None
    reads, writes, _failed = _mode_counts(mirror.get("mode"))
    components = [_component(c) for c in mirror["components"]]
    remote_names = {u["name"] for u in remote_units}
    return {
        "state": mirror["state"],
        "mode": mirror.get("mode"),
        "open": _geom.is_open(mirror),
        "writing": writes > 0,
        "reading": reads > 0,
        "id": mirror["id"],
        "genid": mirror["genid"] or 0,
        "syncid": mirror["syncid"] or 0,
        "components_configured": mirror["components_configured"],
        "components": components,
        "local": next((c for c in components if c["name"] == local), None),
        "remote": next((c for c in components if c["name"] in remote_names), None),
        "sync_progress": mirror.get("sync_progress"),
    }


def _slice_metadata(result, component, errors):
    """Return (metadata or None, present) from the registered `gmirror dump <slice>` result."""
    if not isinstance(result, dict) or result.get("skipped"):
        errors.append("gmirror dump of the slice was not read")
        return None, True
    try:
        found, failed = _geom.parse_dump(result.get("stdout", ""), result.get("stderr", ""))
    except _geom.ParseError as error:
        errors.append(f"cannot read `gmirror dump`: {error}")
        return None, True
    if component in found:
        return found[component], True
    reason = failed.get(component)
    if reason is not None and _geom.is_no_metadata_error(reason):
        return None, True
    if reason is not None and "No such file" in reason:
        return None, False
    errors.append(
        f"gmirror dump of {component} failed: {reason or result.get('stderr', '').strip() or result.get('msg')}"
    )
    return None, True


def _ggate_units(result, errors):
    if not isinstance(result, dict) or result.get("skipped"):
        return []
    if result.get("rc", 0) != 0:
        errors.append(f"ggatec list failed: {result.get('stderr', '').strip() or result.get('msg')}")
        return []
    try:
        return _geom.parse_ggatec_list(result.get("stdout", ""))
    except _geom.ParseError as error:
        errors.append(f"cannot read `ggatec list -v`: {error}")
        return []


def _record(result, path, errors):
    """Return the authority record {writer, epoch} from a registered slurp, or None when the file does not exist."""
    if not isinstance(result, dict) or result.get("skipped"):
        return None
    if "content" not in result:
        message = str(result.get("msg", ""))
        if "not found" in message or "No such file" in message or "does not exist" in message:
            return None
        errors.append(f"cannot read the authority record {path}: {message}")
        return None
    try:
        record = json.loads(base64.b64decode(result["content"]).decode())
        epoch = record["epoch"]
        if not isinstance(record.get("writer"), str) or not isinstance(epoch, int) or isinstance(epoch, bool):
            raise ValueError("writer must be a node name and epoch a whole number")
    except (ValueError, KeyError, TypeError) as error:
        errors.append(f'the authority record {path} is not {{"writer": NODE, "epoch": N}} ({error}): fix or remove it')
        return None
    return {"writer": record["writer"], "epoch": epoch}


def _node_view(resource, gm, node, read):
    """Summarise one node's reads (None when it did not answer) for the resource."""
    if read is None:
        return {"reachable": False}
    errors = []
    info = read.get("info") or {}
    peer = next(n for n in resource["nodes"] if n != node)
    units = _ggate_units(read.get("ggate"), errors)
    to_peer = [u for u in units if u.get("host") == gm["addresses"][peer] and u.get("path") == gm["slices"][peer]]
    if info.get("failed"):
        errors.append(f"gmirror list failed: {info.get('msg', '')}")
    mirror = _mirror((info.get("mirrors") or {}).get(gm["mirror"]), gm["components"][node], to_peer)
    metadata, present = _slice_metadata(read.get("dump"), gm["components"][node], errors)
    record = _record(read.get("record"), gm["state_file"], errors)
    ggated = read.get("ggated")
    writing = bool(mirror and mirror["open"])
    return {
        "reachable": True,
        "error": "; ".join(errors) or None,
        "loaded": info.get("loaded", True),
        "mirror": mirror,
        "slice": gm["slices"][node],
        "slice_present": present,
        "metadata": metadata,
        "ggate": to_peer[0] if to_peer else None,
        "ggate_units": units,
        "ggated": isinstance(ggated, dict) and not ggated.get("skipped") and ggated.get("rc") == 0,
        "record": record,
        # The keys every family's node view has (ha_node_summary, ha_status_table).
        "epoch": record["epoch"] if record else 0,
        "writer_record": record["writer"] if record else None,
        "writable": [gm["device"]] if writing else [],
        "missing": [] if present else [gm["slices"][node]],
        "datasets": {
            gm["mirror"]: {
                "name": gm["device"],
                "readonly": not (mirror and mirror["writing"]),
                "mounted": writing,
                "snapshots": [],
            }
        },
    }


def _freshness(metadata):
    return (metadata["genid"] or 0, metadata["syncid"] or 0)


def _copy_of(metadata, mirror_id, mirror):
    return metadata is not None and metadata["name"] == mirror and metadata["mid"] == mirror_id


def _resyncing(metadata):
    return bool(metadata and set(metadata["dflags"]) & set(RESYNC_DFLAGS))


def _lag(gm, writer, view):
    """Return whether the node's slice holds everything the writer's mirror holds, and how the evidence reads."""
    running = writer["mirror"]
    if running is not None and running["remote"] is not None:
        remote = running["remote"]
        newest = max((c["genid"], c["syncid"]) for c in running["components"])
        in_sync = remote["in_sync"] and (remote["genid"], remote["syncid"]) == newest
        state = remote["state"] + (f" {remote['synchronized']}%" if remote["synchronized"] is not None else "")
        return {"in_sync": in_sync, "state": state, "sync_progress": remote["synchronized"]}
    if running is not None:
        return {"in_sync": False, "state": "DETACHED", "sync_progress": None}
    ours, theirs = view["metadata"], writer["metadata"]
    same = (
        ours is not None
        and theirs is not None
        and ours["mid"] == theirs["mid"]
        and _freshness(ours) == _freshness(theirs)
        and not _resyncing(ours)
        and not _resyncing(theirs)
    )
    # Neither node runs the mirror (a switch in progress): equal GenID/SyncID on both slices, none marked for
    # synchronisation, means both were ACTIVE together when the writer stopped it.
    return {"in_sync": same, "state": "STOPPED, same ids" if same else "STOPPED, ids differ", "sync_progress": None}


def ha_gmirror_assess(  # noqa: PLR0917 (a Jinja filter: its options are positional in templates)
    states, resource, gm, runbook="status", target=None, accept_data_loss=False, overwrite_newer=False
):
    """Return the judgement of a gmirror resource's reads in ha_assess's shape, plus this backend's evidence.

    states: {node: {info, dump, ggate, record, ggated} registered results, or None when the node did not
    answer}. runbook: status, failover, failback, rejoin, provision.
    """
    nodes = {node: _node_view(resource, gm, node, states.get(node)) for node in resource["nodes"]}
    reachable = [n for n, v in nodes.items() if v["reachable"]]
    unreachable = [n for n in resource["nodes"] if n not in reachable]
    running = [n for n in reachable if nodes[n]["mirror"] is not None]
    writers = [n for n in reachable if nodes[n]["writable"]]
    epoch = max((nodes[n]["epoch"] for n in reachable), default=0)
    authority = [n for n in reachable if nodes[n]["epoch"] == epoch and nodes[n]["writer_record"] == n and epoch]
    authoritative = authority[0] if len(authority) == 1 else (writers[0] if len(writers) == 1 else None)
    stale = [n for n in running if n != authoritative] if authoritative else []
    reasons, warnings = [], []
    for node in reachable:
        view = nodes[node]
        if view["error"]:
            reasons.append(f"{node}: {view['error']}")
        if not view["slice_present"]:
            reasons.append(f"{node} has no slice {view['slice']}: fix gmirror.slice(s) or attach the disk")
    if len(writers) > 1 and not authority:
        reasons.append(
            f"more than one writer: {', '.join(writers)} each have {gm['device']} open and no authority record decides "
            "between them (split brain). Pick the node whose data wins, stop the services, unmount and `gmirror stop "
            f"{gm['mirror']}` on the other by hand, then run failover.yml -e ha_target=<winner> -e ha_accept_data_loss=true"
        )
    elif stale:
        warnings.append(
            f"{', '.join(stale)} run(s) {gm['device']} though {authoritative} is the writer (epoch {epoch}): a returning "
            "old writer, or a copy the kernel assembled from the exported slice; it is fenced (services stopped, "
            "file system unmounted, mirror stopped) before anything else"
        )
    lag = {}
    if authoritative and authoritative in reachable:
        for node in reachable:
            if node != authoritative:
                # snapshots_behind/diverged: the keys ha_status_table reads for every family (gmirror has no snapshots).
                entry = _lag(gm, nodes[authoritative], nodes[node])
                lag[node] = {gm["mirror"]: dict(entry, snapshots_behind=0 if entry["in_sync"] else 1, diverged=[])}
    for node in unreachable:
        if authoritative and nodes[authoritative]["mirror"] and nodes[authoritative]["ggate"]:
            warnings.append(
                f"{node} does not answer while {authoritative} still has its slice attached as "
                f"{nodes[authoritative]['ggate']['name']}: I/O may block until the unit fails; rejoin.yml detaches it "
                "(ggatec destroy -f) so the mirror runs DEGRADED"
            )
    result = {
        "resource": resource["name"],
        "backend": resource["backend"],
        "nodes": nodes,
        "reachable": reachable,
        "unreachable": unreachable,
        "writers": writers,
        "running": running,
        "epoch": epoch,
        "next_epoch": epoch + 1,
        "authoritative": authoritative,
        "stale": stale,
        "lag": lag,
        "warnings": warnings,
    }
    if runbook in ("failover", "failback"):
        reasons += _switch_reasons(result, resource, gm, runbook, target, accept_data_loss=accept_data_loss)
    elif runbook == "rejoin":
        reasons += _rejoin_reasons(
            result, resource, gm, target, accept_data_loss=accept_data_loss, overwrite_newer=overwrite_newer
        )
    result["reasons"] = reasons
    result["safe"] = not reasons
    return result


def _switch_reasons(result, resource, gm, runbook, target, *, accept_data_loss):
    nodes = result["nodes"]
    if target not in resource["nodes"]:
        return [f"target {target!r} is not a node of resource {resource['name']} ({', '.join(resource['nodes'])})"]
    if target in result["unreachable"]:
        return [f"the target {target} does not answer; it cannot become the writer"]
    view, reasons = nodes[target], []
    if result["authoritative"] == target and view["mirror"] is not None:
        return []  # already the writer: a re-run only finishes the remaining steps
    metadata = view["metadata"]
    writer = result["authoritative"]
    mirror_id = (
        nodes[writer]["mirror"]["id"]
        if writer in result["reachable"] and nodes[writer]["mirror"]
        else (nodes[writer]["metadata"] or {}).get("mid")
        if writer in result["reachable"]
        else None
    )
    if view["mirror"] is None and metadata is None and view["slice_present"]:
        reasons.append(
            f"{view['slice']} on {target} carries no gmirror metadata: it was never a copy of {gm['mirror']}; "
            "run provision.yml (or rejoin.yml) first"
        )
    elif metadata is not None and (metadata["name"] != gm["mirror"] or mirror_id not in (None, metadata["mid"])):
        reasons.append(
            f"{view['slice']} on {target} carries metadata of mirror {metadata['name']} (id {metadata['mid']}), not of "
            f"{gm['mirror']} (id {mirror_id}): it is not a copy of this mirror"
        )
    if _resyncing(metadata):
        reasons.append(
            f"{view['slice']} on {target} was being synchronised (flags {' '.join(metadata['dflags'])}) when it was "
            "last part of the mirror: it is an incomplete copy and cannot become the writer; bring the writer back "
            "and let rejoin.yml finish the synchronisation"
        )
    if result["unreachable"]:
        if runbook == "failback":
            reasons.append(f"{', '.join(result['unreachable'])} do not answer; failback needs both nodes")
        elif not accept_data_loss:
            reasons.append(
                f"{', '.join(result['unreachable'])} do not answer, so this is an unplanned failover that loses the "
                "writes that did not reach the target; rerun with -e ha_accept_data_loss=true to accept that"
            )
        return reasons
    if runbook == "failover" and accept_data_loss:
        reasons.append("every node answers: run the planned failover (drop ha_accept_data_loss), it loses nothing")
    lag = result["lag"].get(target, {}).get(gm["mirror"])
    if writer is None:
        reasons.append(
            f"no node is recorded as the writer of {gm['mirror']} and none has it open: run provision.yml, or pick the "
            "winner by hand (see docs/runbook_gmirror.md)"
        )
    elif lag is not None and not lag["in_sync"]:
        reasons.append(
            f"the copy on {target} is not in sync with {writer} ({lag['state']}): a planned failover would lose "
            "writes; wait until status.yml shows it in sync, or run rejoin.yml to reattach and rebuild it"
        )
    return reasons


def _rejoin_reasons(result, resource, gm, target, *, accept_data_loss, overwrite_newer):
    nodes = result["nodes"]
    writer = result["authoritative"]
    if writer is None:
        return [
            f"no node is recorded as the writer of {gm['mirror']} (authority records: "
            f"{ {n: nodes[n].get('record') for n in result['reachable']} }): run failover.yml to the node whose data "
            "wins first; rejoin only rebuilds followers from the recorded writer"
        ]
    if target and target != writer:
        return [
            f"ha_target={target}, but the recorded writer is {writer} (epoch {result['epoch']}): rejoin rebuilds the "
            f"other node from {writer} and never the other way round. To make {target} the writer run failover.yml"
        ]
    if writer in result["unreachable"]:
        return [f"the writer {writer} does not answer: run failover.yml (unplanned) first"]
    if nodes[writer]["mirror"] is None:
        return [
            f"{writer} is the recorded writer but does not run {gm['mirror']}: run failover.yml -e ha_target={writer}"
        ]
    mirror = nodes[writer]["mirror"]
    reasons = []
    for node in result["reachable"]:
        if node == writer:
            continue
        view = nodes[node]
        metadata = view["metadata"]
        if mirror["remote"] is not None and mirror["remote"]["in_sync"]:
            continue  # already a member in sync: nothing to rebuild
        if metadata is not None and not _copy_of(metadata, mirror["id"], gm["mirror"]):
            reasons.append(
                f"{view['slice']} on {node} carries metadata of mirror {metadata['name']} (id {metadata['mid']}), not of "
                f"{gm['mirror']} (id {mirror['id']}); inserting it would erase that. Clear it by hand (gmirror clear) "
                "once you know it is not wanted"
            )
            continue
        if metadata is not None and _freshness(metadata) > (mirror["genid"], mirror["syncid"]) and not overwrite_newer:
            reasons.append(
                f"{view['slice']} on {node} is newer by gmirror's own metadata (genid {metadata['genid']}, syncid "
                f"{metadata['syncid']}) than the mirror {writer} runs (genid {mirror['genid']}, syncid {mirror['syncid']}): "
                f"rebuilding it from {writer} would destroy writes that exist only on {node}. Keep them by hand (see "
                "docs/runbook_gmirror.md), or rerun with -e ha_gmirror_overwrite_newer=true to discard them"
            )
        record = view["record"]
        if record and record["writer"] == node and record["epoch"] < result["epoch"] and not accept_data_loss:
            reasons.append(
                f"{node} was the writer at epoch {record['epoch']} and lost the role in an unplanned failover: writes "
                f"it made after that exist only on {view['slice']} and rejoin overwrites them from {writer}. Save what "
                "you need first, then rerun with -e ha_accept_data_loss=true"
            )
    return reasons


def ha_gmirror_node_read(host):
    """Return one node's registered reads (its hostvars) as ha_gmirror_assess takes them, or None when it did not answer."""
    info = host.get("__ha_info")
    if not isinstance(info, dict) or info.get("unreachable"):
        return None
    return {key: host.get(f"__ha_gm_{key}") for key in ("dump", "ggate", "record", "ggated")} | {"info": info}


def ha_gmirror_metadata(result, component):
    """Return the gmirror metadata of component from a registered `gmirror dump` result, or None when it has none."""
    errors = []
    metadata, _problem = _slice_metadata(result, component, errors)
    if errors:
        _fail("; ".join(errors))
    return metadata


FILTERS = {
    "ha_gmirror_resource": ha_gmirror_resource,
    "ha_gmirror_ggated": ha_gmirror_ggated,
    "ha_gmirror_node_read": ha_gmirror_node_read,
    "ha_gmirror_assess": ha_gmirror_assess,
    "ha_gmirror_metadata": ha_gmirror_metadata,
}


class FilterModule:
    """freebsd_ha.storage gmirror runbook filters."""

    def filters(self):
        return FILTERS
