# PRIVATE: internal to freebsd_ha.storage, not a public API; it may change without notice.
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared safety measures: rescue naming and the zero-copy rescue that replaces destructive rollbacks."""

from __future__ import annotations

from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError


def build_rescue_names(dataset, now):
    """Return (rescue dataset, its rescue snapshot, the snapshot taken on dataset) for the UTC time now."""
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    rescue = f"{dataset}_rescue_{stamp}"
    return rescue, f"{rescue}@rescue-{stamp}", f"{dataset}@rescue-{stamp}"


def plan_rescue(dataset, keep, now, *, mounted=False, local_properties=None, children=()):
    """Return (zfs argv tails, rescue snapshot) that set dataset back to its snapshot `keep`, losing nothing.

    A rescue snapshot cannot survive `zfs rollback -r` or `recv -F`: both destroy every snapshot
    newer than their base, the rescue included, and a clone pinning it only makes them fail. So
    the dataset is renamed to the rescue name (it keeps every newer snapshot and the live writes),
    a clone of `keep` takes the dataset's name with its locally set properties (a clone inherits
    the rest), and `zfs promote` moves the snapshots up to `keep` onto it, guids unchanged, so
    replication continues from them. The rescue gets canmount=noauto so that it never claims the
    dataset's mountpoint. Nothing is copied.
    """
    if children:
        raise StateError(
            f"'{dataset}' has child datasets ({', '.join(children)}); the rescue would rename them with it. "
            "Move or replicate them first, or handle this dataset by hand."
        )
    rescue, rescue_snapshot, snapshot = build_rescue_names(dataset, now)
    steps = [["snapshot", snapshot]]
    if mounted:
        # A mounted filesystem cannot be renamed while in use on zfs-fuse ("dataset is busy").
        steps.append(["umount", dataset])
    steps += [["set", "canmount=noauto", dataset], ["rename", dataset, rescue]]
    clone_options = []
    for prop, value in sorted((local_properties or {}).items()):
        if prop != "canmount":
            clone_options += ["-o", f"{prop}={value}"]
    steps += [["clone", *clone_options, f"{rescue}@{keep}", dataset], ["promote", dataset]]
    return steps, rescue_snapshot


def local_properties(props):
    """Return {property: value} of the properties set locally (or received) in one dataset's parse_get entry."""
    return {prop: entry["value"] for prop, entry in props.items() if entry["source"] in ("local", "received")}
