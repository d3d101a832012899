# PRIVATE: internal to freebsd_ha.storage, not a public API; it may change without notice.
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planner for zfs_role (pure): which node writes a resource's datasets, and the authority record it leaves.

The writer of a resource is recorded on each of its datasets in two user properties: the node's
name and an epoch that only grows. A node that comes back with an older epoch than a peer's is
stale and must stay fenced (readonly=on) until a runbook rejoins it.
"""

from __future__ import annotations

from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError
from ansible_collections.freebsd_ha.storage.plugins.module_utils._dataset import plan_mount_and_key
from ansible_collections.freebsd_ha.storage.plugins.module_utils._zfs import (
    SNAPSHOT_COLUMNS,
    build_get_argv,
    build_snapshot_argv,
    validate_dataset_name,
)

WRITER_PROPERTY = "freebsd-ha:writer"
EPOCH_PROPERTY = "freebsd-ha:epoch"
ROLES = ("primary", "secondary")


def build_snapshots_argv(names):
    """Return the one read of every snapshot directly under names (exact numbers, also on zfs-fuse)."""
    return build_get_argv(names, SNAPSHOT_COLUMNS[1:], parsable=True, depth=1)


def _value(props, prop):
    entry = props.get(prop)
    return None if entry is None or entry["value"] == "-" else entry["value"]


def epoch_of(props):
    """Return the recorded epoch of a dataset as int (0 when none is recorded)."""
    raw = _value(props, EPOCH_PROPERTY)
    if raw is None:
        return 0
    try:
        return int(raw)
    except ValueError as exc:
        raise StateError(f"{EPOCH_PROPERTY} is {raw!r}, not a number: fix it by hand with `zfs set`") from exc


def summarise(name, props, snapshots):
    """Return the public view of one dataset: role-relevant properties and its newest snapshot."""
    own = [snap for snap in snapshots if snap["dataset"] == name]
    newest = max(own, key=lambda snap: snap["createtxg"]) if own else None
    return {
        "name": name,
        "readonly": _value(props, "readonly") == "on",
        "mounted": _value(props, "mounted") == "yes",
        "mountpoint": _value(props, "mountpoint"),
        "keystatus": _value(props, "keystatus"),
        "writer": _value(props, WRITER_PROPERTY),
        "epoch": epoch_of(props),
        "snapshot_count": len(own),
        "newest_snapshot": None
        if newest is None
        else {key: newest[key] for key in ("name", "guid", "createtxg", "creation")},
    }


def predict(props, changes):
    """Return the properties a dataset will have once the planned changes (an `after` entry) are applied."""
    translated = {
        "mounted": lambda value: ("mounted", "yes" if value else "no"),
        "key_loaded": lambda value: ("keystatus", "available" if value else "unavailable"),
    }
    predicted = dict(props)
    for key, value in changes.items():
        prop, shown = translated[key](value) if key in translated else (key, value)
        predicted[prop] = {"value": shown, "source": "local"}
    return predicted


def _check_inputs(datasets, role, node, epoch):
    names = [validate_dataset_name(item["name"]) for item in datasets]
    if not names:
        raise StateError("datasets must name at least one dataset")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise StateError(f"datasets lists {', '.join(duplicates)} more than once")
    if role == "primary" and (not node or epoch is None):
        raise StateError("role primary needs node (the writer's name) and epoch (the new authority epoch)")
    if epoch is not None and epoch < 1:
        raise StateError(f"epoch must be a positive number, got {epoch}")
    return names


def plan_role(datasets, current, role, *, node=None, epoch=None, mounted=True, snapshot=None, snapshots=()):
    """Return (plan, before, after) putting every dataset in role; refuse before any change.

    datasets: [{"name", "mountpoint"?}]; current: {name: zfs get properties or None when missing};
    snapshots: the names of the snapshots that exist already.
    primary: key loaded, mountpoint as asked, readonly=off, writer/epoch recorded, mounted.
    secondary (fenced): readonly=on, then optionally one atomic snapshot of all datasets,
    mounted or not as asked; the authority record is left as it is.
    """
    names = _check_inputs(datasets, role, node, epoch)
    missing = [name for name in names if current.get(name) is None]
    if missing:
        raise StateError(f"dataset(s) {', '.join(missing)} do not exist on this node; nothing was changed")
    if role == "primary":
        newer = [f"{name} (epoch {epoch_of(current[name])})" for name in names if epoch_of(current[name]) > epoch]
        if newer:
            raise StateError(
                f"refusing to record epoch {epoch}: {', '.join(newer)} already carry a newer epoch, so a later "
                "promotion happened; read the resource's status and use the newest epoch + 1"
            )
    plan, before, after = [], {}, {}

    def record(name, key, old, new):
        before.setdefault(name, {})[key] = old
        after.setdefault(name, {})[key] = new

    keys_loaded = set()
    for item in datasets:
        name, props = item["name"], current[item["name"]]
        if role == "primary" and _value(props, "keystatus") == "unavailable":
            # zfs loads a key only on its encryption root, once for every dataset under it.
            root = _value(props, "encryptionroot")
            key_of = root if root not in (None, "", "-") else name
            if key_of not in keys_loaded:
                plan.append(["load-key", key_of])
                keys_loaded.add(key_of)
            record(name, "key_loaded", False, True)
        mountpoint = item.get("mountpoint")
        if mountpoint and _value(props, "mountpoint") != mountpoint:
            plan.append(["set", f"mountpoint={mountpoint}", name])
            record(name, "mountpoint", _value(props, "mountpoint"), mountpoint)
        readonly = "off" if role == "primary" else "on"
        if _value(props, "readonly") != readonly or props.get("readonly", {}).get("source") != "local":
            plan.append(["set", f"readonly={readonly}", name])
            record(name, "readonly", _value(props, "readonly"), readonly)
        if role == "primary":
            for prop, value in ((WRITER_PROPERTY, node), (EPOCH_PROPERTY, str(epoch))):
                if _value(props, prop) != value or props[prop]["source"] != "local":
                    plan.append(["set", f"{prop}={value}", name])
                    record(name, prop, _value(props, prop), value)
    if snapshot:
        absent = [f"{name}@{snapshot}" for name in names if f"{name}@{snapshot}" not in snapshots]
        if absent:
            # One `zfs snapshot` for all datasets: atomic within a pool, so the set is consistent.
            plan.append(build_snapshot_argv(absent))
            record("snapshots", "created", None, absent)
    for item in datasets:
        name, props = item["name"], current[item["name"]]
        want_mounted = True if role == "primary" else mounted
        if want_mounted is None:
            continue
        probe = dict(props)
        if item.get("mountpoint"):
            probe["mountpoint"] = {"value": item["mountpoint"], "source": "local"}
        if role == "primary" and _value(props, "keystatus") == "unavailable":
            probe["keystatus"] = {"value": "available", "source": "-"}
        steps, step_before, step_after = plan_mount_and_key({"name": name, "mounted": want_mounted}, probe)
        plan += steps
        for key in step_after:
            record(name, key, step_before[key], step_after[key])
    return plan, before, after
