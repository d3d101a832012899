# PRIVATE: internal to freebsd_ha.storage, not a public API; it may change without notice.
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planner for zfs_dataset (pure): zfs get output and wanted options in, ordered argv tails and diff out."""

from __future__ import annotations

import re

from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError
from ansible_collections.freebsd_ha.storage.plugins.module_utils._zfs import (
    ParseError,
    build_get_argv,
    parse_get,
    validate_dataset_name,
)

# `all` returns every native property plus the user properties set on (or inherited by) the
# dataset in one call, on zfs-fuse as on OpenZFS; encryption properties appear only where they exist.
READ_PROPERTIES = ("all",)
ENCRYPTION_PROPERTIES = ("encryption", "keystatus", "encryptionroot")
_MISSING_RE = re.compile(r"^cannot open '(.+)': dataset does not exist$")
_CHILDREN_HEADER = "use '-r' to destroy the following datasets:"
_UNMOUNTABLE_MOUNTPOINTS = ("none", "legacy", "-")
_SHOWN_DEPENDENTS = 10


def build_read_argv(names):
    """Return `get -H -o name,property,value,source all <names>` (the one read of the present path)."""
    return build_get_argv(names, READ_PROPERTIES)


def build_dependents_argv(name):
    """Return `get -H -r -o ... type <name>`: the dataset, its children and snapshots, one line each."""
    return build_get_argv([name], ["type"], recursive=True)


def build_encryption_argv(name):
    """Return `get -H -o ... encryption,keystatus,encryptionroot <name>` (fails where encryption does not exist)."""
    return build_get_argv([name], ENCRYPTION_PROPERTIES)


def build_dry_run_argv(destroy_argv):
    """Return the `destroy -n -v ...` form of a planned destroy."""
    return [destroy_argv[0], "-n", "-v", *destroy_argv[1:]]


def split_get_errors(stderr):
    """Return (set of names zfs reports missing, [other stderr lines]) from a `zfs get` stderr."""
    missing, other = set(), []
    for raw in stderr.splitlines():
        line = raw.strip()
        if not line:
            continue
        match = _MISSING_RE.match(line)
        if match:
            missing.add(match.group(1))
        else:
            other.append(line)
    return missing, other


def datasets_from_get(stdout, names, missing):
    """Return {name: {property: {"value", "source"}} or None when missing} for each name read."""
    parsed = parse_get(stdout)
    result = {}
    for name in names:
        if name in missing:
            result[name] = None
        elif name in parsed:
            result[name] = parsed[name]
        else:
            raise ParseError(f"zfs get printed nothing for {name} and did not say it is missing")
    return result


def read_datasets(runner, names):
    """Return {name: `zfs get all` properties or None when missing} for names, with as few reads as zfs allows."""
    datasets, pending = {}, list(names)
    while pending:
        result = runner.read(build_read_argv(pending), check_rc=False)
        missing, other = split_get_errors(result.stderr)
        if result.rc != 0 and (other or not missing):
            raise runner.failure(result)
        # zfs-fuse stops at the first missing name; what it skipped is read again in the next round.
        listed = parse_get(result.stdout)
        done = [name for name in pending if name in missing or name in listed] or pending
        datasets.update(datasets_from_get(result.stdout, done, missing))
        pending = [name for name in pending if name not in done]
    return datasets


def dependents_from_get(stdout, name):
    """Return the children and snapshots of name listed by `zfs get -r ... type`, in zfs order."""
    return [dataset for dataset in parse_get(stdout) if dataset != name]


def parse_destroy_dependents(stderr):
    """Return the datasets listed after "use '-r' to destroy the following datasets:" ([] if none)."""
    lines = [line.strip() for line in stderr.splitlines()]
    if _CHILDREN_HEADER not in lines:
        return []
    return [line for line in lines[lines.index(_CHILDREN_HEADER) + 1 :] if line]


def normalise_value(value):
    """Return a property value as zfs prints it: booleans become on/off, numbers text."""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _value(props, prop):
    return (props or {}).get(prop, {}).get("value")


def needs_encryption_read(wanted, props):
    """Return True when keys matter to the plan but `zfs get all` showed no keystatus."""
    if props is None or "keystatus" in props:
        return False
    return wanted.get("key_loaded") is not None or (wanted.get("mounted") is True and _value(props, "mounted") != "yes")


def describe_dependents(dependents):
    """Return the dependents as a short comma-separated list for messages."""
    shown = ", ".join(dependents[:_SHOWN_DEPENDENTS])
    more = len(dependents) - _SHOWN_DEPENDENTS
    return shown + (f" and {more} more" if more > 0 else "")


def plan_present(wanted, current, source=None):
    """Return (plan, before, after) bringing dataset wanted["name"] to the wanted state; refuse unsafe starts.

    current and source are the `zfs get` property dicts of name and of rename_from (None when missing).
    """
    name = validate_dataset_name(wanted["name"])
    rename_from = wanted.get("rename_from")
    plan, before, after = [], {}, {}
    props = current
    parents = ["-p"] if wanted.get("create_parents") else []
    if rename_from:
        validate_dataset_name(rename_from)
        if current is not None and source is not None:
            raise StateError(
                f"both {rename_from} and {name} exist; refusing to rename over an existing dataset. "
                f"Destroy or rename one of them first, or drop rename_from"
            )
        if current is None:
            if source is None:
                raise StateError(f"neither {name} nor rename_from {rename_from} exists; there is nothing to rename")
            plan.append(["rename", *parents, rename_from, name])
            before["name"], after["name"] = rename_from, name
            props = source
    wanted_props = {key: normalise_value(value) for key, value in sorted((wanted.get("properties") or {}).items())}
    if props is None:
        options = [part for key, value in wanted_props.items() for part in ("-o", f"{key}={value}")]
        plan.append(["create", *parents, *options, name])
        before["state"], after["state"] = "absent", "present"
        if wanted_props:
            after["properties"] = dict(wanted_props)
        return plan, before, after
    for key, value in wanted_props.items():
        entry = props.get(key)
        local = entry["value"] if entry and entry["source"] == "local" else None
        if local != value:
            plan.append(["set", f"{key}={value}", name])
            before.setdefault("properties", {})[key] = local
            after.setdefault("properties", {})[key] = value
    steps, mount_before, mount_after = plan_mount_and_key(wanted, props)
    plan += steps
    before.update(mount_before)
    after.update(mount_after)
    return plan, before, after


def plan_mount_and_key(wanted, props):
    """Return (plan, before, after) for mounted/key_loaded of an existing dataset whose properties are props."""
    name = wanted["name"]
    mounted, key_loaded, key_location = wanted.get("mounted"), wanted.get("key_loaded"), wanted.get("key_location")
    plan, before, after = [], {}, {}
    is_mounted = _value(props, "mounted") == "yes"
    keystatus = _value(props, "keystatus")
    encrypted = keystatus in ("available", "unavailable")
    key_available = keystatus == "available"
    if key_loaded is not None:
        if keystatus is None:
            raise StateError(
                f"this zfs has no native encryption (no keystatus property on {name}); key_loaded cannot be managed here"
            )
        if not encrypted:
            raise StateError(
                f"{name} is not encrypted (encryption {_value(props, 'encryption') or 'off'}); drop key_loaded"
            )
        root = _value(props, "encryptionroot")
        if root not in (None, "-", name) and key_loaded != key_available:
            raise StateError(f"the key of {name} belongs to its encryption root {root}; set key_loaded on {root}")
        if mounted is True and key_loaded is False:
            raise StateError(f"mounted: true needs the key of {name} loaded; key_loaded: false contradicts it")
    unmount = mounted is False and is_mounted
    if key_loaded is False and key_available:
        if is_mounted and not unmount:
            raise StateError(f"{name} is mounted; unloading its key needs it unmounted first: set mounted: false")
        if unmount:
            plan.append(["unmount", name])
            before["mounted"], after["mounted"] = True, False
        plan.append(["unload-key", name])
        before["key_loaded"], after["key_loaded"] = True, False
    elif unmount:
        plan.append(["unmount", name])
        before["mounted"], after["mounted"] = True, False
    if key_loaded is True and keystatus == "unavailable":
        plan.append(["load-key", *(["-L", key_location] if key_location else []), name])
        before["key_loaded"], after["key_loaded"] = False, True
    if mounted is True and not is_mounted:
        if encrypted and not key_available and key_loaded is not True:
            raise StateError(
                f"cannot mount {name}: its encryption key is not loaded (keystatus unavailable); load the key first "
                "with key_loaded: true (and key_location if the key is not where keylocation says)"
            )
        mountpoint, canmount = _value(props, "mountpoint"), _value(props, "canmount")
        if mountpoint in _UNMOUNTABLE_MOUNTPOINTS:
            raise StateError(
                f"cannot mount {name}: its mountpoint is {mountpoint}; set properties.mountpoint to a path"
            )
        if canmount == "off":
            raise StateError(f"cannot mount {name}: canmount is off; set properties.canmount to on or noauto")
        plan.append(["mount", name])
        before["mounted"], after["mounted"] = False, True
    return plan, before, after


def plan_absent(wanted, exists, dependents):
    """Return (plan, before, after) destroying wanted["name"]; refuse dependents unless destroy_dependents."""
    name = validate_dataset_name(wanted["name"])
    if wanted.get("rename_from"):
        raise StateError("rename_from only applies with state: present")
    if not exists:
        return [], {}, {}
    recursive = []
    if dependents:
        if not wanted.get("destroy_dependents"):
            raise StateError(
                f"{name} has {len(dependents)} dependent dataset(s) or snapshot(s): {describe_dependents(dependents)}; "
                "nothing was destroyed. ZFS cannot keep a rescue snapshot of a destroyed dataset, so destroying "
                "them is opt-in: set destroy_dependents: true to destroy them with it"
            )
        recursive = ["-r"]
    return [["destroy", *recursive, name]], {"state": "present"}, {"state": "absent"}
