# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side judgement of resync.yml (full re-seed of a ZFS replica) and of the hold release on failback.

Pure functions over the zfs_info reads of both nodes and the preflight's ha_assess result, so the
whole plan of a resync, including every refusal and the resume point after an interruption, is
tested without a node.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from ansible_collections.freebsd_ha.storage.plugins.module_utils._safety import build_rescue_names

RESYNC_PREFIX = "ha_resync_"
# zrepl's abstractions as user holds: the sender's step holds and the receiver's last-received hold.
STEP_HOLD_RE = re.compile(r"^zrepl_STEP_J_(.+)$")
LAST_RECEIVED_HOLD_RE = re.compile(r"^zrepl_last_received_J_(.+)$")
MARKER = "freebsd-ha:resync"


def _short(snapshot):
    return snapshot["name"].split("@", 1)[1]


def _rows(info):
    """Return ({dataset: row}, [snapshots]) of a zfs_info result; empty when the read failed or the node is gone."""
    if not isinstance(info, dict) or info.get("unreachable") or info.get("failed"):
        return {}, []
    return {row["name"]: row for row in info.get("datasets", [])}, list(info.get("snapshots", []))


def _snapshots_of(snapshots, dataset):
    return sorted((s for s in snapshots if s["dataset"] == dataset), key=lambda s: s["createtxg"])


def _dataset_plan(names, source_read, replica_read, force):
    """Return the re-seed state of one dataset: what to do and what the replica's copy holds.

    names: (logical name, name on the source, name on the replica); *_read: (rows, snapshots) of _rows.
    """
    logical, source_name, replica_name = names
    (source_rows, source_snaps), (replica_rows, replica_snaps) = source_read, replica_read
    source = source_rows.get(source_name)
    replica = replica_rows.get(replica_name)
    src = _snapshots_of(source_snaps, source_name)
    rep = _snapshots_of(replica_snaps, replica_name)
    rep_guids = {s["guid"] for s in rep}
    seeds = [s for s in src if _short(s).startswith(RESYNC_PREFIX)]
    seed = seeds[-1] if seeds else None
    marker = (replica or {}).get(MARKER, "-")
    common = next((s for s in reversed(src) if s["guid"] in rep_guids), None)
    src_guids = {s["guid"] for s in src}
    # Replica snapshots after the last common one (by GUID): the replica diverged.
    base = None if common is None else next(r for r in rep if r["guid"] == common["guid"])
    after = [] if base is None else [s for s in rep if s["createtxg"] > base["createtxg"]]
    entry = {
        "name": logical,
        "source": source_name,
        "replica": replica_name,
        "parent": replica_name.rsplit("/", 1)[0],
        "source_exists": source is not None,
        "replica_exists": replica is not None,
        "common": common and _short(common),
        "encrypted": source is not None and source.get("encryption", "off") not in ("off", "-", ""),
        "expected_bytes": _int(source and source.get("referenced")),
        "replica_bytes": _int(replica and replica.get("referenced")),
        # What the replica holds that the source does not: it goes to the rescue, not away.
        "replica_only_snapshots": [_short(s) for s in rep if s["guid"] not in src_guids],
    }
    if replica is not None and seed is not None and rep and rep[0]["guid"] == seed["guid"] and marker != _short(seed):
        # Seeded from the newest resync snapshot by a run that did not finish: finish it, send nothing.
        return dict(entry, state="in_progress", rename=False, send=False, snapshot=_short(seed))
    if replica is None:
        state = "missing"
    elif common is None:
        state = "no_common_snapshot"
    elif after:
        state = "diverged"
    elif force:
        state = "requested"
    else:
        return dict(entry, state="in_sync", rename=False, send=False, snapshot=None)
    # A resync snapshot that is still the source's newest and not on the replica was taken by an interrupted run.
    reuse = seed is not None and seed["guid"] == src[-1]["guid"] and seed["guid"] not in rep_guids
    return dict(entry, state=state, rename=replica is not None, send=True, snapshot=_short(seed) if reuse else None)


def _int(value):
    return int(value) if str(value).isdigit() else None


def _zrepl_holds(info, datasets, keep=None):
    """Return [{snapshot, tags}] of the zrepl holds on the snapshots of datasets that keep(tag) does not keep."""
    usable = isinstance(info, dict) and not info.get("unreachable") and not info.get("failed")
    found = {}
    for hold in info.get("holds", []) if usable else []:
        dataset = hold["snapshot"].split("@", 1)[0]
        tag = hold["tag"]
        if dataset in datasets and tag.startswith("zrepl_") and not (keep and keep(tag)):
            found.setdefault(hold["snapshot"], []).append(tag)
    return [{"snapshot": snap, "tags": sorted(tags)} for snap, tags in sorted(found.items())]


def ha_resync_plan(reads, resource, assessment, confirm="", force=False, now=0.0):  # noqa: PLR0917
    """Return the plan of a full re-seed of the follower from the writer (see DOCUMENTATION)."""
    reasons, warnings = [], []
    source = assessment.get("authoritative")
    if assessment.get("unreachable"):
        reasons.append(f"{', '.join(assessment['unreachable'])} do not answer; a resync needs both nodes")
    if source is None or len(assessment.get("writers", [])) > 1:
        reasons.append(
            "no single authoritative writer (writers: "
            f"{', '.join(assessment.get('writers', [])) or 'none'}); fix the writer first (status.yml says why)"
        )
    if reasons:
        return {"safe": False, "reasons": reasons, "warnings": warnings, "needed": False, "datasets": []}
    replica = next(node for node in resource["nodes"] if node != source)
    stamp = datetime.fromtimestamp(float(now), tz=timezone.utc)
    source_read, replica_read = _rows(reads.get(source)), _rows(reads.get(replica))
    datasets = []
    for item in resource["datasets"]:
        logical = item["name"]
        names = (logical, resource["node_datasets"][source][logical], resource["node_datasets"][replica][logical])
        entry = _dataset_plan(names, source_read, replica_read, force)
        entry["mountpoint"] = item.get("mountpoint")
        # A raw-received replica is its own encryption root with keylocation=prompt; rc.d/zfskeys loads only
        # datasets whose keylocation is set locally, so the replica gets the writer's (or the one named here).
        located = (source_read[0].get(entry["source"]) or {}).get("keylocation", "none")
        entry["keylocation"] = item.get("replica_keylocation") or (
            None if located in ("none", "prompt", "-") else located
        )
        entry["rescue"] = build_rescue_names(entry["replica"], stamp)[0] if entry["rename"] else None
        if not entry["source_exists"]:
            reasons.append(f"{entry['source']} does not exist on the writer {source}: provision the pair first")
        datasets.append(entry)
    new_snapshot = RESYNC_PREFIX + stamp.strftime("%Y%m%dT%H%M%SZ")
    for entry in datasets:
        if entry["send"] and entry["snapshot"] is None:
            entry["snapshot"] = new_snapshot
    needed = any(entry["state"] != "in_sync" for entry in datasets)
    loss = [
        f"{replica}:{entry['replica']} ({entry['state'].replace('_', ' ')}): "
        f"{entry['replica_bytes'] if entry['replica_bytes'] is not None else 'unknown'} bytes referenced, snapshots "
        f"only there: {', '.join(entry['replica_only_snapshots']) or 'none'}; kept as {entry['rescue']}"
        for entry in datasets
        if entry["rename"]
    ]
    if needed and confirm != replica:
        if confirm == source:
            reasons.append(
                f"ha_confirm_resync names {source}, the writer: a resync replaces the follower's copy, never the "
                f"writer's. To make {replica}'s data win, fail over to {replica} first"
            )
        else:
            changes = "; ".join(loss) or "no existing copy is replaced (the replica is missing or half seeded)"
            reasons.append(
                f"a resync replaces {replica}'s copy with a full send from {source} ({changes}). "
                f"Rerun with -e ha_confirm_resync={replica} to confirm"
            )
    if any(entry["encrypted"] for entry in datasets):
        warnings.append("encrypted datasets are sent raw (zfs send -w): the replica keeps the writer's key")
    on_node = {source: [e["source"] for e in datasets], replica: [e["replica"] for e in datasets]}
    # zrepl is stopped on both nodes for the resync; its next run sets the holds it needs again.
    holds = {node: _zrepl_holds(reads.get(node), on_node[node]) for node in (source, replica)}
    return {
        "safe": not reasons,
        "reasons": reasons,
        "warnings": warnings,
        "needed": needed,
        "source": source,
        "replica": replica,
        "epoch": assessment.get("epoch"),
        "loss": loss,
        "datasets": datasets,
        "release": holds,
    }


def ha_stale_holds(info, datasets, role, jobs):
    """Return [{snapshot, tags}] of zrepl holds on datasets that belong to the other replication direction.

    role: sender (the node pushes: a last-received hold, or a step hold of a job other than its own, is stale)
    or receiver (any step hold is stale, and a last-received hold of a job other than its sink job).
    jobs: this node's own zrepl job names for that role.
    """
    if role not in ("sender", "receiver"):
        raise ValueError(f"role must be sender or receiver, got {role!r}")
    own = set(jobs)

    def keep(tag):
        step, received = STEP_HOLD_RE.match(tag), LAST_RECEIVED_HOLD_RE.match(tag)
        if role == "sender":
            return bool(step and step.group(1) in own)
        return bool(received and received.group(1) in own)

    return _zrepl_holds(info, datasets, keep)


def ha_resync_progress(used_now, baseline, expected, started, now):
    """Return a line and the figures of a running full receive: bytes so far, rate, ETA."""
    done = max(int(used_now) - int(baseline), 0)
    elapsed = max(float(now) - float(started), 0.001)
    rate = done / elapsed
    total = int(expected) if str(expected).isdigit() else None
    eta = None if not total or rate <= 0 else max(total - done, 0) / rate
    shown = f"{done / 1048576:.1f} MiB" + (f" of ~{total / 1048576:.1f} MiB" if total else "")
    line = f"received {shown} in {elapsed:.0f} s ({rate / 1048576:.1f} MiB/s)" + (
        f", ETA {eta:.0f} s" if eta is not None else ", ETA unknown"
    )
    return {"bytes": done, "rate": round(rate, 1), "eta_seconds": None if eta is None else round(eta, 1), "line": line}


class FilterModule:
    """freebsd_ha.storage resync filters."""

    def filters(self):
        return {
            "ha_resync_plan": ha_resync_plan,
            "ha_stale_holds": ha_stale_holds,
            "ha_resync_progress": ha_resync_progress,
        }
