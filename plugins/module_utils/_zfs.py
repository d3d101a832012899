# PRIVATE: internal to freebsd_ha.storage, not a public API; it may change without notice.
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ZFS argv builders, parsers and planners (pure), plus the one capability probe."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError

SNAPSHOT_COLUMNS = ("name", "guid", "createtxg", "creation", "userrefs")
GET_COLUMNS = ("name", "property", "value", "source")
HOLDS_COLUMNS = ("snapshot", "tag", "timestamp")
DATASET_TYPES = ("filesystem", "volume", "snapshot", "bookmark", "all")

# ZFS_MAX_DATASET_NAME_LEN is 256 including the terminating NUL.
MAX_NAME_LENGTH = 255
# zfs_namecheck.c valid_char(): alphanumerics and "-_.: " (space included).
_COMPONENT_RE = re.compile(r"^[A-Za-z0-9_.: -]+$")
# Old (illumos-derived) builds printed this on stdout with exit 0; current OpenZFS prints it on stderr.
NO_DATASETS = "no datasets available"
_INT_COLUMNS = ("guid", "createtxg", "userrefs")
_HUMANISED_RE = re.compile(r"^[0-9.]+[KMGTPEZ]?$")


class ParseError(ValueError):
    """Output of a zfs command did not have the documented shape."""


# ---------------------------------------------------------------- names


def _check_component(name, component, what):
    if component == "":
        raise StateError(f"invalid {what} name '{name}': empty component (leading, trailing or double '/')")
    if component in (".", ".."):
        raise StateError(f"invalid {what} name '{name}': component '{component}' is reserved")
    if not _COMPONENT_RE.match(component):
        bad = sorted({char for char in component if not _COMPONENT_RE.match(char)})
        raise StateError(
            f"invalid {what} name '{name}': character(s) {' '.join(repr(c) for c in bad)} not allowed; "
            "ZFS names use letters, digits, '_', '-', '.', ':' and space"
        )


def validate_dataset_name(name):
    """Return name if it is a valid filesystem/volume name; raise StateError saying why not."""
    if not isinstance(name, str) or not name:
        raise StateError("dataset name must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise StateError(f"invalid dataset name '{name}': longer than {MAX_NAME_LENGTH} characters")
    if "@" in name or "#" in name:
        raise StateError(
            f"invalid dataset name '{name}': '@' and '#' are for snapshots and bookmarks; give the dataset without them"
        )
    for component in name.split("/"):
        _check_component(name, component, "dataset")
    if not name[0].isalpha():
        raise StateError(f"invalid dataset name '{name}': the pool name must begin with a letter")
    return name


def validate_snapshot_name(name):
    """Return name if it is a valid <dataset>@<snapshot> name; raise StateError saying why not."""
    if not isinstance(name, str) or not name:
        raise StateError("snapshot name must be a non-empty string")
    if name.count("@") != 1:
        raise StateError(f"invalid snapshot name '{name}': expected exactly one '@' as in tank/nfs@before-upgrade")
    if len(name) > MAX_NAME_LENGTH:
        raise StateError(f"invalid snapshot name '{name}': longer than {MAX_NAME_LENGTH} characters")
    dataset, short = name.split("@")
    if not short:
        raise StateError(f"invalid snapshot name '{name}': nothing after '@'")
    if "/" in short:
        raise StateError(f"invalid snapshot name '{name}': '/' is not allowed after '@'")
    validate_dataset_name(dataset)
    _check_component(name, short, "snapshot")
    return name


def split_snapshot_name(name):
    """Return (dataset, short name) of <dataset>@<snapshot>."""
    dataset, _sep, short = name.partition("@")
    return dataset, short


def pool_of(name):
    """Return the pool part of a dataset or snapshot name."""
    return name.split("@")[0].split("/")[0]


# ---------------------------------------------------------------- argv builders


# The positional signature is the API other modules were written against.
def build_list_argv(  # noqa: PLR0917
    roots,
    columns,
    types=("filesystem", "volume"),
    recursive=True,
    parsable=False,
    depth=None,
):
    """Return `list -H [-p] -o cols -t types [-r | -d N] roots...` (one call for all roots)."""
    argv = ["list", "-H"]
    if parsable:
        argv.append("-p")
    argv += ["-o", ",".join(columns), "-t", ",".join(types)]
    if depth is not None:
        argv += ["-d", str(int(depth))]
    elif recursive:
        argv.append("-r")
    return argv + list(roots)


def build_get_argv(names, properties, parsable=False, recursive=False, sources=None, depth=None):  # noqa: PLR0917
    """Return `get -H [-p] [-r | -d N] -o name,property,value,source [-s src] props names...`."""
    argv = ["get", "-H"]
    if parsable:
        argv.append("-p")
    if depth is not None:
        argv += ["-d", str(int(depth))]
    elif recursive:
        argv.append("-r")
    argv += ["-o", ",".join(GET_COLUMNS)]
    if sources:
        argv += ["-s", ",".join(sources)]
    return [*argv, ",".join(properties), *names]


def build_snapshot_argv(snapshots, recursive=False, properties=None):
    """Return `snapshot [-r] [-o k=v]... snap...` (several snapshots of one pool are atomic)."""
    argv = ["snapshot"]
    if recursive:
        argv.append("-r")
    for key, value in sorted((properties or {}).items()):
        argv += ["-o", f"{key}={value}"]
    return argv + [validate_snapshot_name(snap) for snap in snapshots]


def build_destroy_argv(snapshot, recursive=False, dry_run=False):
    """Return `destroy [-n -v] [-r] <fs>@<snap>`; only snapshots, never a filesystem."""
    argv = ["destroy"]
    if dry_run:
        argv += ["-n", "-v"]
    if recursive:
        argv.append("-r")
    return [*argv, validate_snapshot_name(snapshot)]


def build_rollback_argv(snapshot, destroy_newer=False):
    """Return `rollback [-r] <fs>@<snap>`; -r (destroys newer snapshots) only when asked."""
    argv = ["rollback"]
    if destroy_newer:
        argv.append("-r")
    return [*argv, validate_snapshot_name(snapshot)]


def build_hold_argv(tag, snapshots, recursive=False):
    """Return `hold [-r] tag snap...`."""
    return ["hold"] + (["-r"] if recursive else []) + [tag] + [validate_snapshot_name(s) for s in snapshots]


def build_release_argv(tag, snapshots, recursive=False):
    """Return `release [-r] tag snap...`."""
    return ["release"] + (["-r"] if recursive else []) + [tag] + [validate_snapshot_name(s) for s in snapshots]


def build_holds_argv(snapshots, recursive=False, parsable=False):
    """Return `holds -H [-p] [-r] snap...` (one call for all snapshots)."""
    argv = ["holds", "-H"]
    if parsable:
        argv.append("-p")
    if recursive:
        argv.append("-r")
    return argv + list(snapshots)


# ---------------------------------------------------------------- parsers


def _lines(text):
    """Yield (number, line) of non-empty output lines, newline characters removed, spaces kept."""
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if line not in ("", NO_DATASETS):
            yield number, line


def _to_int(value, column, number, line):
    if value == "-":
        return None
    if value.isdigit():
        return int(value)
    # Without -p, zfs-fuse humanises guid ("3.84E"); keep that text, it is all this zfs gives.
    if column == "guid" and _HUMANISED_RE.match(value):
        return value
    raise ParseError(f"line {number}: {column} is not a number ({value!r}): {line!r}")


def _rows(text, columns):
    for number, line in _lines(text):
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise ParseError(
                f"line {number}: expected {len(columns)} TAB-separated fields "
                f"({','.join(columns)}), got {len(fields)}: {line!r}"
            )
        yield number, line, dict(zip(columns, fields))


def parse_list(text, columns):
    """Return one dict per line of `zfs list -H -o <columns>` output, values as strings, order kept."""
    return [row for _number, _line, row in _rows(text, columns)]


def parse_snapshots(text):
    """Return snapshot dicts from `zfs list -H [-p] -o name,guid,createtxg,creation,userrefs -t snapshot`.

    createtxg and userrefs become int (None for '-'); guid is int, except where zfs without -p
    humanises it (zfs-fuse prints '3.84E'), which is kept as text: use parse_snapshot_properties()
    there. creation becomes int epoch seconds when the output was parsable (-p), otherwise it stays
    the text zfs printed (e.g. 'Tue Jul 21 15:53 2009').
    """
    snapshots = []
    for number, line, row in _rows(text, SNAPSHOT_COLUMNS):
        if row["name"].count("@") != 1:
            raise ParseError(f"line {number}: not a snapshot name: {line!r}")
        for column in _INT_COLUMNS:
            row[column] = _to_int(row[column], column, number, line)
        if row["creation"].isdigit():
            row["creation"] = int(row["creation"])
        row["dataset"], row["snapshot"] = split_snapshot_name(row["name"])
        snapshots.append(row)
    return snapshots


def parse_get(text):
    """Return {dataset: {property: {"value", "source"}}} from `zfs get -H -o name,property,value,source`."""
    result = {}
    for number, line in _lines(text):
        # source is last and may contain spaces ("inherited from tank/a"); name/value contain no TABs.
        fields = line.split("\t", 3)
        if len(fields) != 4:
            raise ParseError(
                f"line {number}: expected 4 TAB-separated fields (name,property,value,source), "
                f"got {len(fields)}: {line!r}"
            )
        name, prop, value, source = fields
        result.setdefault(name, {})[prop] = {"value": value, "source": source}
    return result


def build_written_argv(datasets, newest_snapshots, exact):
    """Return the `get` argv that tells what each dataset gained after its newest snapshot.

    exact: zfs has the `written` property (OpenZFS): read it on the datasets. Otherwise (zfs-fuse) read
    `referenced` on the datasets and on their newest snapshots, to compare.
    """
    if exact:
        return build_get_argv(datasets, ["written"], parsable=True)
    return build_get_argv([*datasets, *newest_snapshots], ["referenced"], parsable=True)


def written_since_newest_snapshot(text, newest, exact):
    """Return {dataset: bytes changed after its newest snapshot, or None when it has no snapshot}.

    newest: {dataset: its newest snapshot's full name, or None}. Where zfs has no `written` the figure is the
    difference of `referenced` between the dataset and that snapshot: any write that changes the space a
    dataset refers to shows, an overwrite in place of exactly as many bytes does not.
    """
    values = parse_get(text)

    def number(name, prop):
        try:
            return int(values[name][prop]["value"])
        except (KeyError, ValueError) as err:
            raise ParseError(f"{name}: no numeric {prop} in zfs get output") from err

    result = {}
    for dataset, snapshot in newest.items():
        if snapshot is None:
            result[dataset] = None
        elif exact:
            result[dataset] = number(dataset, "written")
        else:
            result[dataset] = abs(number(dataset, "referenced") - number(snapshot, "referenced"))
    return result


def parse_snapshot_properties(text):
    """Return snapshot dicts (as parse_snapshots) from `zfs get -H -p -o name,property,value,source
    guid,createtxg,creation,userrefs <roots>`, keeping only snapshots, in output order.

    This is the exact-number path for zfs without `list -p` (zfs-fuse accepts `get -p`).
    """
    snapshots = []
    for name, props in parse_get(text).items():
        if "@" not in name:
            continue
        missing = [column for column in SNAPSHOT_COLUMNS[1:] if column not in props]
        if missing:
            raise ParseError(f"{name}: no {', '.join(missing)} in zfs get output")
        row = {"name": name}
        for column in SNAPSHOT_COLUMNS[1:]:
            value = props[column]["value"]
            row[column] = value if column == "creation" and not value.isdigit() else _to_int(value, column, "-", name)
        row["dataset"], row["snapshot"] = split_snapshot_name(name)
        snapshots.append(row)
    return snapshots


def parse_holds(text):
    """Return [{"snapshot", "tag", "timestamp"}] from `zfs holds -H [-p]`.

    Tags are kept verbatim, trailing spaces included: a tag is a free-form string and `zfs release`
    needs it byte for byte. timestamp is int epoch seconds with -p, else the text
    ('%a %b %e %H:%M %Y', which may hold double spaces).
    """
    holds = []
    for number, line in _lines(text):
        fields = line.split("\t", 2)
        if len(fields) != 3 or "@" not in fields[0] or not fields[1]:
            raise ParseError(f"line {number}: expected snapshot, tag and timestamp separated by TABs: {line!r}")
        snapshot, tag, timestamp = fields
        holds.append(
            {"snapshot": snapshot, "tag": tag, "timestamp": int(timestamp) if timestamp.isdigit() else timestamp}
        )
    return holds


# ---------------------------------------------------------------- capabilities


@dataclass
class Capabilities:
    """What the zfs on the host supports; detected once per module run."""

    list_parsable: bool = True
    holds_listing: bool = True
    encryption: bool = True
    bookmarks: bool = True
    raw_send: bool = True
    resumable_receive: bool = True
    written: bool = True
    probe: str = "openzfs"

    def to_dict(self):
        """Return the capabilities as a plain dict for module results."""
        return asdict(self)


def is_bad_property_error(err):
    """Return whether zfs rejected a property name this zfs does not know."""
    return "invalid property" in err or "bad property list" in err


def _is_bad_option(err):
    return "invalid option" in err or "illegal option" in err


def detect_capabilities(runner, pool):
    """Return Capabilities of the zfs behind runner, probing with at most two reads of `pool`.

    1. `zfs get -H -o value encryption <pool>` works only where native encryption exists
       (OpenZFS >= 0.8, FreeBSD 13+), which also has `list -p`, `holds`, bookmarks, raw and
       resumable sends: one command on every current system.
    2. Otherwise `zfs list -H -p -o name -d 0 <pool>`: legacy illumos-derived ZFS (FreeBSD <= 12)
       accepts -p and has holds, bookmarks and resumable receive; zfs-fuse (pool v23) rejects it
       and lacks all of them.
    Any other failure (a missing pool) is raised as CommandError.
    """
    result = runner.read(["get", "-H", "-o", "value", "encryption", pool], check_rc=False)
    if result.rc == 0:
        return Capabilities()
    if not is_bad_property_error(result.stderr):
        _raise_probe_error(runner, result)
    result = runner.read(["list", "-H", "-p", "-o", "name", "-d", "0", pool], check_rc=False)
    if result.rc == 0:
        return Capabilities(encryption=False, raw_send=False, probe="legacy")
    if not _is_bad_option(result.stderr):
        _raise_probe_error(runner, result)
    return Capabilities(
        list_parsable=False,
        holds_listing=False,
        encryption=False,
        bookmarks=False,
        raw_send=False,
        resumable_receive=False,
        written=False,
        probe="zfs-fuse",
    )


def _raise_probe_error(runner, result):
    raise runner.failure(result)


# ---------------------------------------------------------------- error texts


def is_hold_exists_error(stderr):
    """Return True when `zfs hold` failed because the tag is already on the snapshot."""
    return "tag already exists on this dataset" in stderr


def is_no_such_tag_error(stderr):
    """Return True when `zfs release` failed because the tag is not on the snapshot."""
    return "no such tag on this dataset" in stderr


def is_missing_dataset_error(stderr):
    """Return True when zfs failed because a named dataset or snapshot does not exist."""
    return "dataset does not exist" in stderr


# ---------------------------------------------------------------- planners


def plan_snapshot_present(name, existing, recursive=False, properties=None):
    """Return the argv tails that create snapshot name unless it is in existing (a set of names)."""
    if name in existing:
        return []
    return [build_snapshot_argv([name], recursive=recursive, properties=properties)]


def plan_snapshot_absent(name, snapshots, holds=None, recursive=False):
    """Return the argv tails that destroy snapshot name; StateError when it (or, recursive, a child) is held.

    snapshots: parsed rows (name, userrefs) of the dataset (and of its descendants when recursive);
    holds: parsed holds of those snapshots, or None where this zfs cannot list holds.
    """
    by_name = {row["name"]: row for row in snapshots}
    if name not in by_name:
        return []
    _dataset, short = split_snapshot_name(name)
    affected = [row for row in snapshots if row["name"] == name or (recursive and row["snapshot"] == short)]
    held = [row for row in affected if row.get("userrefs")]
    if held:
        if holds is not None:
            detail = "; ".join(f"{hold['snapshot']} held by '{hold['tag']}'" for hold in holds)
        else:
            detail = "; ".join(f"{row['name']} has {row['userrefs']} user hold(s)" for row in held)
        raise StateError(
            f"refusing to destroy {name}: it is held ({detail}). Release the holds first, "
            "e.g. `zfs release <tag> <snapshot>` or this module with holds: [<tag>] and hold_state: absent."
        )
    return [build_destroy_argv(name, recursive=recursive)]


def plan_holds(name, tags, hold_state, current_tags, recursive=False):
    """Return hold/release argv tails so that tags are on (present) or off (absent) snapshot name.

    current_tags: the set of tags on the snapshot, or None when unknown (no `zfs holds` listing):
    then every requested tag is planned and the caller treats "tag already exists" / "no such tag"
    as already done.
    """
    plan = []
    for tag in tags:
        if not tag:
            raise StateError("hold tags must be non-empty strings")
        if hold_state == "present" and (current_tags is None or tag not in current_tags):
            plan.append(build_hold_argv(tag, [name], recursive=recursive))
        elif hold_state == "absent" and (current_tags is None or tag in current_tags):
            plan.append(build_release_argv(tag, [name], recursive=recursive))
    return plan


def plan_rollback(target, snapshots, written=None, destroy_newer=False):
    """Return the rollback argv tails for target given the dataset's snapshots (rows with createtxg).

    written: bytes written since the latest snapshot (int), or None where zfs has no `written`.
    Nothing to do when target is the latest snapshot and written == 0. StateError when newer
    snapshots exist and destroy_newer is false. Keeping the current state is the caller's choice
    (_safety.plan_rescue replaces this plan with a zero-copy rescue).
    """
    by_name = {row["name"]: row for row in snapshots}
    if target not in by_name:
        raise StateError(f"cannot roll back to {target}: no such snapshot")
    dataset, _short = split_snapshot_name(target)
    txg = by_name[target]["createtxg"]
    newer = [row["name"] for row in snapshots if row["dataset"] == dataset and row["createtxg"] > txg]
    if newer and not destroy_newer:
        raise StateError(
            f"refusing to roll back {dataset} to {target}: it would destroy the newer snapshots "
            f"{', '.join(newer)}. Replicate or clone what you need, then set destroy_newer: true "
            "(with rescue: true they are kept in the rescue dataset)."
        )
    if not newer and written == 0:
        return []
    return [build_rollback_argv(target, destroy_newer=bool(newer))]
