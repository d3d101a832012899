# PRIVATE: internal to freebsd_ha.storage, not a public API; it may change without notice.
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zpool argv builders, parsers and the import/export planner (pure: text in, data out)."""

from __future__ import annotations

import re

from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError

ZPOOL_LIST_COLUMNS = ("name", "health", "guid")
IMPORT_LABELS = ("pool", "id", "state", "status", "action", "see", "config")
# Labels are right-aligned on the colon, so their indentation varies between releases (zfs.md §7).
_LABEL_RE = re.compile(r"^\s*(pool|id|state|status|action|see|config):[ \t]?(.*)$")
# Labels of `zpool status` blocks, which captures often show next to an import listing.
_STATUS_LABEL_RE = re.compile(r"^\s*(scan|scrub|remove|checkpoint|errors):")
NO_POOLS_TO_IMPORT = "no pools available to import"
NO_POOLS = "no pools available"
IMPORTABLE_STATES = ("ONLINE", "DEGRADED")
# Pool names: zpool(8) "must begin with a letter"; the allowed characters match dataset components.
_POOL_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.: -]*$")
_RESERVED_POOL_NAMES = ("log",)
_RESERVED_PREFIXES = ("mirror", "raidz", "draid", "spare")


class ParseError(ValueError):
    """Output of a zpool command did not have the documented shape."""


def is_pool_id(name):
    """Return True when name is a numeric pool id (guid) rather than a pool name."""
    return name.isdigit()


def validate_pool_name(name):
    """Return name if it is a valid pool name or numeric id; raise StateError saying why not."""
    if not isinstance(name, str) or not name:
        raise StateError("pool name must be a non-empty string")
    if is_pool_id(name):
        return name
    if "/" in name or "@" in name:
        raise StateError(f"invalid pool name '{name}': give the pool, not a dataset or snapshot (tank, not tank/nfs)")
    if not _POOL_NAME_RE.match(name):
        raise StateError(
            f"invalid pool name '{name}': it must begin with a letter and use letters, digits, '_', '-', '.', ':' "
            "or space"
        )
    if name in _RESERVED_POOL_NAMES or name.startswith(_RESERVED_PREFIXES) or re.match(r"^c[0-9]", name):
        raise StateError(f"invalid pool name '{name}': the name is reserved by zpool")
    return name


# ---------------------------------------------------------------- argv builders


def build_list_argv(columns=ZPOOL_LIST_COLUMNS):
    """Return `list -H -o <columns>` for every imported pool (naming a missing pool is an error)."""
    return ["list", "-H", "-o", ",".join(columns)]


def build_import_listing_argv(search_dirs=()):
    """Return `import [-d DIR]...`, which lists the pools available for import."""
    argv = ["import"]
    for directory in search_dirs or ():
        argv += ["-d", directory]
    return argv


def build_import_argv(pool, search_dirs=(), force=False, altroot=None, no_mount=False, readonly=False):  # noqa: PLR0917
    """Return `import [-f] [-N] [-R root] [-o readonly=on] [-d DIR]... <pool|id>`."""
    argv = ["import"]
    if force:
        argv.append("-f")
    if no_mount:
        argv.append("-N")
    if altroot:
        argv += ["-R", altroot]
    if readonly:
        argv += ["-o", "readonly=on"]
    for directory in search_dirs or ():
        argv += ["-d", directory]
    return [*argv, validate_pool_name(pool)]


def build_export_argv(pool, force=False):
    """Return `export [-f] <pool>`."""
    return ["export"] + (["-f"] if force else []) + [validate_pool_name(pool)]


# ---------------------------------------------------------------- parsers


def parse_zpool_list(text, columns=ZPOOL_LIST_COLUMNS):
    """Return one dict per pool from `zpool list -H -o <columns>` output, values as strings."""
    pools = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line or line.strip() == NO_POOLS:
            continue
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise ParseError(
                f"line {number}: expected {len(columns)} TAB-separated fields ({','.join(columns)}), "
                f"got {len(fields)}: {line!r}"
            )
        pools.append(dict(zip(columns, fields)))
    return pools


def parse_import_listing(text):
    """Return [{"name", "id", "state", "status", "action", "see", "config"}] from `zpool import` output.

    Every block that starts with a `pool:` label and carries an `id:` is one importable-pool entry;
    `status`/`action` keep their continuation lines joined by a space, `see` is None when absent, and
    `config` is the indented device tree as printed (TAB or space indentation kept, trailing blank
    lines dropped). Text outside the blocks (a shell prompt or another command in a capture, and
    `zpool status` blocks, which have no `id:`) is not part of the listing and is skipped. Inside
    a block, a line that is neither a label nor an indented continuation raises ParseError.
    """
    pools = []
    block = None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r").rstrip()
        match = _LABEL_RE.match(line)
        if match:
            label, value = match.group(1), match.group(2).strip()
            if label == "pool":
                _close(block, pools)
                block = {"name": value, "_line": number, "_last": "pool", "_config": []}
            elif block is None or block.get("_status_block"):
                continue
            elif label in block or (label == "config" and block.get("_has_config")):
                raise ParseError(f"line {number}: second '{label}:' in the entry of pool {block['name']}: {line!r}")
            elif label == "config":
                block["_last"] = "config"
                block["_has_config"] = True
            else:
                block[label] = value
                block["_last"] = label
            continue
        if block is None or not line:
            if block is not None and block["_last"] == "config":
                block["_config"].append("")
            continue
        if block.get("_status_block"):
            if not line[0].isspace():
                block = None
            continue
        if _STATUS_LABEL_RE.match(line) and "id" not in block:
            # `zpool status` output (scan:/errors:) rather than an import listing entry.
            block["_status_block"] = True
            continue
        indented = line[0].isspace()
        if block["_last"] == "config":
            if indented:
                block["_config"].append(line)
                continue
            _close(block, pools)
            block = None
            continue
        if indented and block["_last"] in ("status", "action"):
            block[block["_last"]] = f"{block[block['_last']]} {line.strip()}".strip()
            continue
        raise ParseError(f"line {number}: unexpected line in the entry of pool {block['name']}: {line!r}")
    _close(block, pools)
    return pools


def _close(block, pools):
    if block is None or block.get("_status_block"):
        return
    if "id" not in block or "state" not in block:
        missing = [label for label in ("id", "state") if label not in block]
        raise ParseError(
            f"line {block['_line']}: the entry of pool {block['name']} has no {' or '.join(missing)}: label"
        )
    config = block["_config"]
    while config and not config[-1]:
        config.pop()
    while config and not config[0]:
        config.pop(0)
    pools.append(
        {
            "name": block["name"],
            "id": block["id"],
            "state": block["state"],
            "status": block.get("status"),
            "action": block.get("action"),
            "see": block.get("see"),
            "config": "\n".join(config),
        }
    )


def is_listing_empty_error(rc, stdout, stderr):
    """Return True when a failed `zpool import` listing only means that no pool was found."""
    if rc == 0:
        return False
    if NO_POOLS_TO_IMPORT in stderr:
        return True
    # zfs-fuse exits 1 and prints nothing at all when a directory holds no exported pool.
    return not stdout.strip() and not stderr.strip()


# ---------------------------------------------------------------- planner


def is_importable(entry):
    """Return True when a listing entry says the pool can be imported."""
    action = (entry.get("action") or "").lower()
    return entry["state"] in IMPORTABLE_STATES and "cannot be imported" not in action


def needs_force(entry):
    """Return True when the listing says the import needs -f (the pool was last used by another system)."""
    return "'-f'" in (entry.get("action") or "") or "-f flag" in (entry.get("action") or "")


def find_imported(pools, name):
    """Return the `zpool list` row of the pool named (or with the numeric id) name, or None."""
    key = "guid" if is_pool_id(name) else "name"
    for pool in pools:
        if pool.get(key) == name:
            return pool
    return None


def find_importable(listing, name):
    """Return the listing entries matching a pool name or numeric id."""
    key = "id" if is_pool_id(name) else "name"
    return [entry for entry in listing if entry[key] == name]


def _searched(search_dirs):
    return ", ".join(search_dirs) if search_dirs else "the default device directory (/dev)"


def plan_import(name, imported, listing, search_dirs=(), force=False, altroot=None, no_mount=False, readonly=False):  # noqa: PLR0917
    """Return the argv tails that import pool name ([] when it is already imported); refuse what cannot work."""
    validate_pool_name(name)
    if imported is not None:
        return []
    entries = find_importable(listing, name)
    if not entries:
        found = ", ".join(f"{entry['name']} (id {entry['id']}, {entry['state']})" for entry in listing) or "none"
        raise StateError(
            f"no pool named {name} available for import; searched: {_searched(search_dirs)}; "
            f"pools found there: {found}. Check that the devices are attached (for HAST: that this node is primary "
            "and /dev/hast/<resource> exists) and set search_dirs if they live elsewhere"
        )
    if len(entries) > 1:
        ids = ", ".join(entry["id"] for entry in entries)
        raise StateError(f"several pools named {name} are available for import (ids {ids}); import one by its id")
    entry = entries[0]
    if not is_importable(entry):
        raise StateError(
            f"pool {entry['name']} (id {entry['id']}) cannot be imported: state {entry['state']}"
            + (f"; status: {entry['status']}" if entry.get("status") else "")
            + (f"; action: {entry['action']}" if entry.get("action") else "")
            + (f"; see: {entry['see']}" if entry.get("see") else "")
        )
    if needs_force(entry) and not force:
        raise StateError(
            f"pool {entry['name']} was last accessed by another system ({entry['action']}); set force: true only "
            "once that system no longer uses it (for HAST: after the old primary was demoted)"
        )
    return [build_import_argv(name, search_dirs, force, altroot, no_mount, readonly)]


def plan_export(name, imported, force=False):
    """Return the argv tails that export pool name ([] when it is not imported)."""
    validate_pool_name(name)
    if imported is None:
        return []
    return [build_export_argv(imported["name"], force)]
