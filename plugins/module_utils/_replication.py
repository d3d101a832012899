# PRIVATE: internal to freebsd_ha.storage, not a public API; it may change without notice.
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ZFS send/receive: estimate and error parsers, the replication planner and argv builders (pure)."""

from __future__ import annotations

import re
import shlex

from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError
from ansible_collections.freebsd_ha.storage.plugins.module_utils._safety import local_properties
from ansible_collections.freebsd_ha.storage.plugins.module_utils._zfs import (
    ParseError,
    parse_get,
    split_snapshot_name,
)

SNAPSHOT_GUID_PROPERTIES = ("guid", "createtxg")
RESUME_PREAMBLE = "resume token contents:"
_HUMAN_SIZE_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*([BKMGTPEZ]?)(?:i?B)?$")
_HUMAN_FULL_RE = re.compile(r"^full send of (.+@.+) estimated size is (\S+)$")
_HUMAN_INCREMENTAL_RE = re.compile(r"^send from (.+) to (.+@.+) estimated size is (\S+)$")
_HUMAN_TOTAL_RE = re.compile(r"^total estimated size is (\S+)$")
_UNITS = "BKMGTPEZ"


# ---------------------------------------------------------------- send -nvP


def _human_bytes(text, line):
    match = _HUMAN_SIZE_RE.match(text)
    if not match:
        raise ParseError(f"not a size ({text!r}): {line!r}")
    number, unit = match.groups()
    return int(float(number) * 1024 ** _UNITS.index(unit or "B"))


def _int_field(text, line):
    if not text.isdigit():
        raise ParseError(f"not a byte count ({text!r}): {line!r}")
    return int(text)


def parse_send_estimate(text):
    """Return {"total", "streams": [{kind, from, to, bytes}], "approximate", "resume"} from `zfs send -nv[P]`.

    Handles the parsable (-P, TAB-separated) and human forms, the `resume token contents:`
    preamble of `send -t`, and ZoL 0.7.x < 0.7.12, which left out the size field and the
    `size` line when an estimate was 0 (zrepl issue #289).
    """
    streams, total, resume, approximate = [], None, None, False
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if line == RESUME_PREAMBLE:
            resume = {}
            continue
        if resume is not None and line.startswith("nvlist version:"):
            continue
        if resume is not None and line[:1] in ("\t", " ") and " = " in line:
            key, _sep, value = line.strip().partition(" = ")
            resume[key] = value
            continue
        fields = line.split("\t")
        if fields[0] == "full" and len(fields) in (2, 3):
            size = _int_field(fields[2], line) if len(fields) == 3 else 0
            streams.append({"kind": "full", "from": None, "to": fields[1], "bytes": size})
        elif fields[0] == "incremental" and len(fields) in (3, 4):
            size = _int_field(fields[3], line) if len(fields) == 4 else 0
            streams.append({"kind": "incremental", "from": fields[1], "to": fields[2], "bytes": size})
        elif fields[0] == "size" and len(fields) == 2:
            total = _int_field(fields[1], line)
        elif match := _HUMAN_FULL_RE.match(line):
            approximate = True
            streams.append({"kind": "full", "from": None, "to": match[1], "bytes": _human_bytes(match[2], line)})
        elif match := _HUMAN_INCREMENTAL_RE.match(line):
            approximate = True
            streams.append(
                {"kind": "incremental", "from": match[1], "to": match[2], "bytes": _human_bytes(match[3], line)}
            )
        elif match := _HUMAN_TOTAL_RE.match(line):
            approximate = True
            total = _human_bytes(match[1], line)
        else:
            raise ParseError(f"line {number}: not a zfs send estimate line: {line!r}")
    if not streams:
        raise ParseError("no stream line in zfs send estimate output")
    if total is None:
        total = sum(stream["bytes"] for stream in streams)
    return {"total": total, "streams": streams, "approximate": approximate, "resume": resume}


# ---------------------------------------------------------------- recv errors

_RECV_ERRORS = (
    ("modified", re.compile(r"destination '?(.+?)'? has been modified since most recent snapshot")),
    ("mismatch", re.compile(r"most recent snapshot of '?(.+?)'? does not match incremental source")),
    ("resume_pending", re.compile(r"destination '?(.*?)'? ?contains partially-complete state")),
    ("exists", re.compile(r"destination '?(.*?)'? ?(?:already )?exists")),
    ("key", re.compile(r"()(?:key must be loaded|encryption key does not match|failed to create encryption key)")),
    ("missing_parent", re.compile(r"cannot receive new filesystem stream: ()dataset does not exist")),
)


def parse_recv_error(stderr):
    """Return {"kind", "dataset", "token", "message"} for the stderr of a failed `zfs recv`.

    libzfs splits some reasons over two lines ("has been modified" NEWLINE "since most recent
    snapshot"), so lines are joined before matching. kind is one of modified, mismatch, exists,
    resume_pending, key, missing_parent, incomplete_with_token, incomplete or unknown.
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    joined = " ".join(lines)
    message = next((line for line in lines if line.startswith("cannot ")), lines[0] if lines else "")
    token = re.search(r"zfs send -t (\S+)", joined)
    if token:
        return {"kind": "incomplete_with_token", "dataset": None, "token": token[1], "message": message}
    for kind, pattern in _RECV_ERRORS:
        match = pattern.search(joined)
        if match:
            return {"kind": kind, "dataset": match[1] or None, "token": None, "message": message}
    if "checksum mismatch or incomplete stream" in joined or "failed to read from stream" in joined:
        return {"kind": "incomplete", "dataset": None, "token": None, "message": message}
    return {"kind": "unknown", "dataset": None, "token": None, "message": message}


# ---------------------------------------------------------------- reads


def build_snapshot_guids_argv(dataset):
    """Return `get -H -p -d 1 -o name,property,value,source guid,createtxg <dataset>`.

    `zfs get -p` rather than `zfs list -p`: zfs-fuse has no `list -p` and humanises guid
    ("14.4E") without it, and a guid must be exact to compare snapshots.
    """
    return [
        "get",
        "-H",
        "-p",
        "-d",
        "1",
        "-o",
        "name,property,value,source",
        ",".join(SNAPSHOT_GUID_PROPERTIES),
        dataset,
    ]


def parse_snapshot_guids(text, dataset):
    """Return ([{name, snapshot, guid, createtxg}] of dataset sorted by createtxg, [child dataset names])."""
    return snapshot_guids_of(parse_get(text), dataset)


def snapshot_guids_of(parsed, dataset):
    """Return parse_snapshot_guids' answer from an already parsed `zfs get` ({name: {property: entry}})."""
    snapshots, children = [], []
    for name, props in parsed.items():
        if "#" in name:
            continue
        owner, short = split_snapshot_name(name)
        if not short:
            if name != dataset and name.startswith(f"{dataset}/") and "/" not in name[len(dataset) + 1 :]:
                children.append(name)
            continue
        if owner != dataset:
            continue
        values = {}
        for prop in SNAPSHOT_GUID_PROPERTIES:
            value = props.get(prop, {}).get("value", "")
            if not value.isdigit():
                raise ParseError(f"{name}: {prop} is not an exact number ({value!r}); was -p given?")
            values[prop] = int(value)
        snapshots.append({"name": name, "snapshot": short, **values})
    return sorted(snapshots, key=lambda snap: snap["createtxg"]), children


def build_properties_argv(dataset):
    """Return `get -H -p -o name,property,value,source all <dataset>`: `all` lists only what this zfs knows."""
    return ["get", "-H", "-p", "-o", "name,property,value,source", "all", dataset]


def summarise_target_properties(text, dataset):
    """Return {written (int or None), readonly, mounted, resume_token, resumable, local} from build_properties_argv."""
    return target_properties_of(parse_get(text), dataset)


def target_properties_of(parsed, dataset):
    """Return summarise_target_properties' answer from an already parsed `zfs get`."""
    props = parsed.get(dataset, {})
    values = {prop: entry["value"] for prop, entry in props.items()}
    written = values.get("written")
    token = values.get("receive_resume_token")
    return {
        "written": int(written) if written is not None and written.isdigit() else None,
        "readonly": values.get("readonly"),
        "mounted": values.get("mounted"),
        # Every zfs with resumable receive (recv -s) lists receive_resume_token under `get all`.
        "resumable": "receive_resume_token" in values,
        "resume_token": token if token not in (None, "-", "") else None,
        "local": local_properties(props),
    }


# ---------------------------------------------------------------- options


def send_options_spec():
    """Return the argument spec entries zfs_replicate and zfs_replicate_set share (transport and receive options)."""
    return dict(
        ssh_command=dict(type="str", default="ssh"),
        ssh_options=dict(type="list", elements="str", default=["-o", "BatchMode=yes"]),
        raw=dict(type="bool", default=False),
        properties=dict(type="bool", default=False),
        unmount_target=dict(type="bool", default=True),
        target_readonly=dict(type="bool", default=True),
        create_target_parent=dict(type="bool", default=False),
        discard_target_changes=dict(type="bool", default=False),
    )


# ---------------------------------------------------------------- argv builders


def build_send_argv(snapshot, *, from_snapshot=None, raw=False, properties=False, dry_run=False, resume_token=None):
    """Return `send [-n -v -P] [-w] [-p] [-I from] snapshot` or `send [-n -v -P] -t token`.

    -I (not -i): the stream carries every intermediate snapshot, so the target keeps the
    source's snapshot history and later incrementals can start from any of them.
    """
    argv = ["send"] + (["-n", "-v", "-P"] if dry_run else [])
    if resume_token:
        return [*argv, "-t", resume_token]
    argv += (["-w"] if raw else []) + (["-p"] if properties else [])
    if from_snapshot:
        argv += ["-I", from_snapshot]
    return [*argv, snapshot]


def build_recv_argv(target, unmount=True, force=False, resumable=False):
    """Return `recv [-u] [-F] [-s] target`.

    No `-o readonly=on`: zfs-fuse (pool v23) has no `recv -o`, so readonly is set with
    `zfs set` after the receive on every platform.
    """
    return ["recv"] + (["-u"] if unmount else []) + (["-F"] if force else []) + (["-s"] if resumable else []) + [target]


def build_remote_argv(ssh_options, peer, zfs_args):
    """Return `<ssh options> <peer> zfs <args>` with each argument quoted for the remote shell."""
    return [*ssh_options, peer, "zfs", *(shlex.quote(str(arg)) for arg in zfs_args)]


# ---------------------------------------------------------------- planner


def _find_snapshot(snapshots, wanted, dataset):
    short = wanted.split("@", 1)[1] if "@" in wanted else wanted
    if "@" in wanted and split_snapshot_name(wanted)[0] != dataset:
        raise StateError(f"snapshot '{wanted}' is not a snapshot of '{dataset}'")
    for snap in snapshots:
        if snap["snapshot"] == short:
            return snap
    names = ", ".join(snap["snapshot"] for snap in snapshots) or "none"
    raise StateError(f"snapshot '{dataset}@{short}' does not exist on the source (it has: {names})")


def plan_replication(
    source,
    source_snapshots,
    target,
    target_snapshots,
    target_exists,
    *,
    target_written=None,
    allow_rollback=False,
    snapshot=None,
    resume_token=None,
    resume=False,
    target_children=(),
):
    """Return the replication plan dict: mode (none/full/incremental/resume), from, to, common, what -F would destroy.

    Snapshots are dicts with name, snapshot (short name), guid and createtxg. A snapshot is
    common only when its guid matches: a same-named target snapshot with another guid is a
    different snapshot. Raises StateError for every state a receive must not start from.
    """
    if not source_snapshots:
        raise StateError(
            f"source '{source}' has no snapshot; take one (e.g. with freebsd_ha.storage.zfs_snapshot) "
            "before replicating"
        )
    ordered = sorted(source_snapshots, key=lambda snap: snap["createtxg"])
    to = _find_snapshot(ordered, snapshot, source) if snapshot else ordered[-1]
    plan = {
        "mode": "none",
        "from": None,
        "to": to["name"],
        "common": None,
        "common_guid": None,
        "snapshots_sent": [],
        "force": False,
        "rescue_needed": False,
        "name_conflicts": [],
        "would_destroy": {"snapshots": [], "written": 0, "written_known": True},
        "notes": [],
    }
    if resume_token:
        if not resume:
            raise StateError(
                f"target '{target}' holds a partially received stream (receive_resume_token is set); set resume: true "
                f"to continue it, or run 'zfs receive -A {target}' on the peer to discard it"
            )
        plan.update(mode="resume", snapshots_sent=[])
        return plan
    if not target_exists:
        plan.update(mode="full", snapshots_sent=[to["snapshot"]])
        return plan

    by_guid = {snap["guid"]: snap for snap in target_snapshots}
    source_names = {snap["snapshot"]: snap for snap in ordered}
    plan["name_conflicts"] = [
        f"@{snap['snapshot']} (source guid {source_names[snap['snapshot']]['guid']}, target guid {snap['guid']})"
        for snap in target_snapshots
        if snap["snapshot"] in source_names and source_names[snap["snapshot"]]["guid"] != snap["guid"]
    ]
    if to["guid"] in by_guid:
        plan["common"], plan["common_guid"] = to["snapshot"], to["guid"]
        plan["notes"].append(f"target already has @{to['snapshot']} (guid {to['guid']}); nothing to send")
        return plan
    newer_common = [snap for snap in ordered if snap["createtxg"] > to["createtxg"] and snap["guid"] in by_guid]
    if newer_common:
        raise StateError(
            f"target '{target}' already has @{newer_common[-1]['snapshot']}, newer than the requested "
            f"@{to['snapshot']}; a receive cannot go back in time; request a newer snapshot"
        )
    common = next(
        (snap for snap in reversed(ordered) if snap["createtxg"] < to["createtxg"] and snap["guid"] in by_guid), None
    )
    if common is None:
        conflict = ""
        if plan["name_conflicts"]:
            conflict = (
                " Same-named snapshots there are different snapshots (guids differ): "
                + ", ".join(plan["name_conflicts"])
                + "."
            )
        raise StateError(
            f"target '{target}' exists but shares no snapshot (by guid) with source '{source}', so no incremental "
            f"stream can apply and a full receive would overwrite it.{conflict} Destroy or rename the target on the "
            "peer, or pick another target."
        )

    target_common = by_guid[common["guid"]]
    newer = [snap["snapshot"] for snap in target_snapshots if snap["createtxg"] > target_common["createtxg"]]
    written_known = target_written is not None
    plan["would_destroy"] = {"snapshots": newer, "written": target_written, "written_known": written_known}
    diverged = bool(newer) or (written_known and target_written > 0)
    plan.update(
        mode="incremental",
        **{"from": common["name"]},
        common=common["snapshot"],
        common_guid=common["guid"],
        snapshots_sent=[
            snap["snapshot"] for snap in ordered if common["createtxg"] < snap["createtxg"] <= to["createtxg"]
        ],
    )
    if diverged and not allow_rollback:
        lost = ", ".join(f"@{name}" for name in newer) or "none"
        written = f"{target_written} bytes" if written_known else "unknown"
        raise StateError(
            f"target '{target}' has diverged from source '{source}' since the last common snapshot "
            f"@{common['snapshot']} (guid {common['guid']}): target-only snapshots that a forced receive would "
            f"destroy: {lost}; data written on the target since its latest snapshot: {written}. Refusing to "
            "discard it. Find out why the target was written to; to keep the target's data aside and continue, "
            "set discard_target_changes: true (the target is renamed to a rescue dataset first)."
        )
    if allow_rollback and (diverged or not written_known):
        if target_children:
            raise StateError(
                f"target '{target}' has child datasets ({', '.join(target_children)}); the rescue renames the target "
                "and would move them with it. Move the children or clean up the target by hand."
            )
        if not diverged:
            plan["notes"].append(
                "this zfs has no 'written' property: target writes since the common snapshot are "
                "unknown, assumed modified, so the rescue is taken"
            )
        plan.update(rescue_needed=True, force=True)
    elif not written_known:
        plan["notes"].append(
            "this zfs has no 'written' property: target writes since the common snapshot are "
            "unknown; the receive runs without -F and fails if the target was modified"
        )
    return plan
