# PRIVATE: internal to freebsd_ha.storage, not a public API; it may change without notice.
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""gmirror(8), ggatec(8) and gg.exports: argv builders, parsers and planners (pure: text in, data out)."""

from __future__ import annotations

import re

from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError

BALANCES = ("load", "prefer", "round-robin", "split")
DEFAULT_BALANCE = "prefer"
MIRROR_STATES = ("COMPLETE", "DEGRADED", "STARTING")
COMPONENT_STATES = ("ACTIVE", "SYNCHRONIZING", "STALE", "NEW", "DISCONNECTED", "NONE", "DESTROY", "INVALID")
# A component with one of these disk flags is being (or must be) rewritten from the others.
_RESYNC_FLAGS = ("SYNCHRONIZING", "FORCE_SYNC", "BROKEN")
# g_mirror_metadata.md_name is 16 bytes with the NUL.
MIRROR_NAME_MAX = 15
_MIRROR_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
PRIORITY_MAX = 255
CLOSED_MODE = "r0w0e0"
DEV_PREFIX = "/dev/"

GGATE_PREFIX = "ggate"
GGATE_DEFAULT_PORT = 3080
GGATE_ACCESS = {"ro": "read-only", "wo": "write-only", "rw": "read-write"}
EXPORT_ACCESS = ("RO", "WO", "RW")
# ggated.c: fgets() into a 2048-byte buffer, and paths must be shorter than MAXPATHLEN (1024).
EXPORTS_LINE_MAX = 2046
EXPORTS_PATH_MAX = 1023

# Either the class is not loaded (`Command 'list' not available; try 'load' first.`, from geom(8)'s
# run_command) or it vanished between the two lookups (`Class 'MIRROR' not found.`, std_list).
_NOT_LOADED_RE = re.compile(r"(Command '\w+' not available; try 'load' first|Class '?MIRROR'? not found)")
_NO_INSTANCE_RE = re.compile(r"(does not have an instance named|No such geom:)")
# A shell prompt that ran one of the tools, as captures often show it (`# gmirror status`, `root@f0:~ # ...`).
_PROMPT_RE = re.compile(r"^.{0,40}?[#$%>] +(?:sudo +)?(?:gmirror|geom +mirror|ggatec) +\w+")
_STATUS_WORD_RE = re.compile(r"^(?:[A-Z][A-Z0-9_-]*|N/A)$")


class ParseError(ValueError):
    """Output of gmirror/ggatec, or a gg.exports file, did not have the documented shape."""


def _int(value, what):
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ParseError(f"{what} is not a number: {value!r}") from None


def component_name(provider):
    """Return the GEOM provider name gmirror lists for a component (`/dev/ada1` -> `ada1`)."""
    return provider[len(DEV_PREFIX) :] if provider.startswith(DEV_PREFIX) else provider


def validate_mirror_name(name):
    """Return name if gmirror can store it as a mirror name; raise StateError saying why not."""
    if not isinstance(name, str) or not name:
        raise StateError("mirror name must be a non-empty string")
    if name.startswith("mirror/") or name.startswith(DEV_PREFIX):
        raise StateError(f"invalid mirror name '{name}': give the mirror's name (gm0), not its provider or device")
    if len(name) > MIRROR_NAME_MAX or not _MIRROR_NAME_RE.match(name):
        raise StateError(
            f"invalid mirror name '{name}': at most {MIRROR_NAME_MAX} letters, digits, '_', '.' or '-' "
            "(the on-disk metadata holds 16 bytes)"
        )
    return name


def is_not_loaded_error(text):
    """Return True when gmirror's error output says the MIRROR class (geom_mirror.ko) is not loaded."""
    return bool(_NOT_LOADED_RE.search(text or ""))


def is_no_such_mirror_error(text):
    """Return True when `gmirror list|status NAME` failed only because no such mirror exists."""
    return bool(_NO_INSTANCE_RE.search(text or ""))


# ---------------------------------------------------------------- gmirror argv builders


def build_status_argv(names=(), script=True):
    """Return `status [-s] [name ...]`; -s repeats name and status on every component line."""
    return ["status"] + (["-s"] if script else []) + list(names)


def build_list_argv(names=()):
    """Return `list [name ...]` (without names: every mirror that has a provider)."""
    return ["list", *names]


def build_dump_argv(components):
    """Return `dump prov ...`, which prints the on-disk metadata of each provider."""
    return ["dump", *[component_name(c) for c in components]]


def build_label_argv(
    name, components, *, balance=DEFAULT_BALANCE, autosync=False, failsync=True, hardcode=False, slice_size=None
):
    """Return `label -v [-n] [-F] [-h] -b <balance> [-s slice] <name> <prov ...>` (priorities follow the order)."""
    argv = ["label", "-v"]
    if not autosync:
        argv.append("-n")
    if not failsync:
        argv.append("-F")
    if hardcode:
        argv.append("-h")
    argv += ["-b", _balance(balance)]
    if slice_size is not None:
        argv += ["-s", str(slice_size)]
    return [*argv, validate_mirror_name(name), *_components(components)]


def build_insert_argv(name, components, priority=None, inactive=False, hardcode=False):
    """Return `insert -v [-h] [-i] [-p priority] <name> <prov ...>`."""
    argv = ["insert", "-v"]
    if hardcode:
        argv.append("-h")
    if inactive:
        argv.append("-i")
    if priority is not None:
        argv += ["-p", str(_priority(priority))]
    return [*argv, validate_mirror_name(name), *_components(components)]


def build_remove_argv(name, components):
    """Return `remove -v <name> <prov ...>` (gmirror also clears the metadata on them)."""
    return ["remove", "-v", validate_mirror_name(name), *_components(components)]


def build_rebuild_argv(name, components):
    """Return `rebuild -v <name> <prov ...>`: the named components are rewritten from the ACTIVE others."""
    return ["rebuild", "-v", validate_mirror_name(name), *_components(components)]


def build_activate_argv(name, components):
    """Return `activate -v <name> <prov ...>`."""
    return ["activate", "-v", validate_mirror_name(name), *_components(components)]


def build_configure_argv(name, balance=None, slice_size=None, autosync=None, failsync=None):
    """Return `configure -v [-a|-n] [-f|-F] [-b balance] [-s slice] <name>`, or None when nothing is asked."""
    argv = ["configure", "-v"]
    if autosync is not None:
        argv.append("-a" if autosync else "-n")
    if failsync is not None:
        argv.append("-f" if failsync else "-F")
    if balance is not None:
        argv += ["-b", _balance(balance)]
    if slice_size is not None:
        argv += ["-s", str(slice_size)]
    if len(argv) == 2:
        return None
    return [*argv, validate_mirror_name(name)]


def build_priority_argv(name, component, priority):
    """Return `configure -v -p <priority> <name> <prov>` (gmirror takes -p alone and one provider)."""
    return ["configure", "-v", "-p", str(_priority(priority)), validate_mirror_name(name), component_name(component)]


def build_stop_argv(names, force=False):
    """Return `stop -v [-f] <name ...>`."""
    names = [names] if isinstance(names, str) else list(names)
    return ["stop", "-v"] + (["-f"] if force else []) + [validate_mirror_name(n) for n in names]


def build_forget_argv(names):
    """Return `forget -v <name ...>`: drop components that are not connected from the metadata."""
    names = [names] if isinstance(names, str) else list(names)
    return ["forget", "-v"] + [validate_mirror_name(n) for n in names]


def _balance(balance):
    if balance not in BALANCES:
        raise StateError(f"invalid balance algorithm '{balance}': one of {', '.join(BALANCES)}")
    return balance


def _priority(priority):
    if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= PRIORITY_MAX:
        raise StateError(f"invalid priority {priority!r}: gmirror priorities are 0 to {PRIORITY_MAX}")
    return priority


def _components(components):
    components = [components] if isinstance(components, str) else list(components or ())
    if not components:
        raise StateError("no components given")
    return [component_name(c) for c in components]


# ---------------------------------------------------------------- gmirror parsers


def parse_status(text):
    """Return [{"name", "status", "components": [{"name", "state", "synchronized"}]}] from `gmirror status`.

    geom(8) prints a right-aligned `Name  Status  Components` header and one line per component, with the name
    and status columns blank on continuation lines; `-s` drops the header and repeats name and status on every
    line; old releases print components without `(STATE)`. Lines are read by their words, so captures whose
    spacing was collapsed read the same: a line whose second word is an upper-case status (or `N/A`) starts or
    repeats a geom, any other line is one more component of the geom above. A geom without a component shows
    `N/A` and gets no component; `synchronized` is the percentage of a SYNCHRONIZING component.
    """
    geoms = []
    by_name = {}
    current = None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or _is_prompt(line):
            continue
        if re.match(r"^Name\s+Status\s+Components$", line):
            current = None
            continue
        fields = line.split(None, 2)
        if len(fields) == 3 and _STATUS_WORD_RE.match(fields[1]):
            name, status, component = fields
            current = by_name.get(name)
            if current is None:
                current = by_name[name] = {"name": name, "status": status, "components": []}
                geoms.append(current)
            elif current["status"] != status:
                raise ParseError(f"line {number}: {name} shows status {status} after {current['status']}: {line!r}")
        elif current is None:
            raise ParseError(f"line {number}: not a `gmirror status` line (no geom above it): {line!r}")
        else:
            component = line
        parsed = parse_status_component(component, number)
        if parsed is not None:
            current["components"].append(parsed)
    return geoms


def _is_prompt(line):
    return bool(_PROMPT_RE.match(line) or re.match(r"^(?:.{0,40}\s)?[#$%>]$", line))


def parse_status_component(text, number=0):
    """Return {"name", "state", "synchronized"} for `ada0`, `ada0 (ACTIVE)` or `ada0 (SYNCHRONIZING, 64%)`."""
    text = text.strip()
    if text == "N/A":
        return None
    match = re.match(r"^(\S+)(?: \((.+)\))?$", text)
    if not match:
        raise ParseError(f"line {number}: not a component: {text!r}")
    name, inner = match.groups()
    state, synchronized = inner, None
    if inner:
        sync = re.match(r"^(.*), (\d+)%$", inner)
        if sync:
            state, synchronized = sync.group(1), int(sync.group(2))
        elif re.match(r"^\d+%$", inner):
            state, synchronized = None, int(inner[:-1])
    return {"name": name, "state": state, "synchronized": synchronized}


def parse_list(text):
    """Return every geom of `gmirror list` as {"name", "config", "providers", "consumers"}.

    `config` holds the geom's `Key: value` lines, and each provider/consumer is {"name", "fields"} with its
    indented `Key: value` lines (a consumer without provider has name None). Key order is not relied on:
    libgeom may print the kernel's keys in reverse.
    """
    geoms = []
    geom = section = entry = None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r").rstrip()
        if not line:
            geom = section = entry = None
            continue
        match = re.match(r"^Geom name: (.+)$", line)
        if match:
            geom = {"name": match.group(1), "config": {}, "providers": [], "consumers": []}
            geoms.append(geom)
            section, entry = "config", None
            continue
        if geom is None:
            if _is_prompt(line) or line.startswith("Geom class: "):
                continue
            raise ParseError(f"line {number}: text outside a `Geom name:` block: {line!r}")
        if line in ("Providers:", "Consumers:"):
            section, entry = line[:-1].lower(), None
            continue
        match = re.match(r"^(\d+)\. (?:Name: (.+)|\[no provider\])$", line)
        if match and section in ("providers", "consumers"):
            entry = {"name": match.group(2), "fields": {}}
            geom[section].append(entry)
            continue
        match = re.match(r"^   (\S[^:]*):(?: (.*))?$", line)
        if match and entry is not None:
            entry["fields"][match.group(1)] = match.group(2) or ""
            continue
        match = re.match(r"^(\S[^:]*):(?: (.*))?$", line)
        if match and section == "config":
            geom["config"][match.group(1)] = match.group(2) or ""
            continue
        raise ParseError(f"line {number}: unexpected line in geom {geom['name']}: {line!r}")
    return geoms


def parse_mirrors(text):
    """Return {name: mirror} from `gmirror list`, each summarised by mirror_from_geom()."""
    return {geom["name"]: mirror_from_geom(geom) for geom in parse_list(text)}


def mirror_from_geom(geom):
    """Return the mirror view of one parsed geom: state, balance, ids, provider and its components."""
    config = geom["config"]
    name = geom["name"]
    provider = geom["providers"][0] if geom["providers"] else None
    components = [_component_from_consumer(name, consumer) for consumer in geom["consumers"]]
    mirror = {
        "name": name,
        "geom_state": config.get("State"),
        "components_configured": _int(config.get("Components"), f"mirror {name}: Components"),
        "balance": config.get("Balance"),
        "slice": _int(config.get("Slice"), f"mirror {name}: Slice"),
        "flags": _flags(config.get("Flags")),
        "genid": _int(config.get("GenID"), f"mirror {name}: GenID"),
        "syncid": _int(config.get("SyncID"), f"mirror {name}: SyncID"),
        "id": _int(config.get("ID"), f"mirror {name}: ID"),
        "type": config.get("Type"),
        "provider": provider["name"] if provider else None,
        "mediasize": _mediasize(provider["fields"].get("Mediasize"), name) if provider else None,
        "mode": provider["fields"].get("Mode") if provider else None,
        "components": components,
    }
    mirror["state"] = _summary_state(mirror)
    synchronizing = [c["synchronized"] for c in components if c["state"] == "SYNCHRONIZING"]
    mirror["sync_progress"] = min((s for s in synchronizing if s is not None), default=None)
    return mirror


def _component_from_consumer(mirror, consumer):
    fields = consumer["fields"]
    name = consumer["name"]
    what = f"mirror {mirror} component {name}"
    synchronized = fields.get("Synchronized")
    if synchronized is not None and not re.match(r"^\d+%$", synchronized):
        raise ParseError(f"{what}: Synchronized is not a percentage: {synchronized!r}")
    return {
        "name": name,
        "state": fields.get("State"),
        "priority": _int(fields.get("Priority"), f"{what}: Priority"),
        "syncid": _int(fields.get("SyncID"), f"{what}: SyncID"),
        "genid": _int(fields.get("GenID"), f"{what}: GenID"),
        "flags": _flags(fields.get("Flags")),
        "synchronized": int(synchronized[:-1]) if synchronized else None,
        "bytes_synced": _int(fields.get("BytesSynced"), f"{what}: BytesSynced"),
        "id": _int(fields.get("ID"), f"{what}: ID"),
        "mediasize": _mediasize(fields.get("Mediasize"), what),
    }


def _flags(value):
    if value is None or value.strip() in ("", "NONE"):
        return []
    return [flag for flag in re.split(r"[,\s]+", value.strip()) if flag]


def _mediasize(value, what):
    if value is None:
        return None
    match = re.match(r"^(\d+)(?: \(.*\))?$", value)
    if not match:
        raise ParseError(f"{what}: Mediasize is not `<bytes> (<size>)`: {value!r}")
    return int(match.group(1))


def _summary_state(mirror):
    state = mirror["geom_state"]
    if state == "DEGRADED" and any(c["state"] == "SYNCHRONIZING" for c in mirror["components"]):
        return "SYNCHRONIZING"
    return state


def parse_dump(stdout, stderr=""):
    """Return ({provider: metadata}, {provider: error}) from `gmirror dump prov ...` stdout and stderr.

    A provider without gmirror metadata shows up in the errors (`Can't read metadata from ada2: Invalid
    argument.`); metadata values are ints where gmirror prints numbers, flag lists for mflags/dflags.
    """
    found = {}
    block = None
    for number, raw in enumerate(stdout.split("\n"), start=1):
        line = raw.rstrip("\r").rstrip()
        if not line:
            block = None
            continue
        match = re.match(r"^Metadata on (.+):$", line)
        if match:
            block = found[component_name(match.group(1))] = {}
            continue
        match = re.match(r"^ *([A-Za-z0-9][A-Za-z0-9 ]*):(?: (.*))?$", line)
        if match and block is not None:
            block[match.group(1)] = (match.group(2) or "").strip()
            continue
        if block is None and (_is_prompt(line) or line == "Done."):
            continue
        raise ParseError(f"line {number}: unexpected line in `gmirror dump` output: {line!r}")
    errors = {}
    for line in stderr.splitlines():
        match = re.match(
            r"^(?:Can't read metadata from|MD5 hash mismatch for) (\S+?)(?:: (.*?))?\.?(?:, skipping\.)?$", line
        )
        if match:
            errors[component_name(match.group(1))] = (match.group(2) or "MD5 hash mismatch").rstrip(".")
    return {provider: _metadata(provider, block) for provider, block in found.items()}, errors


def _metadata(provider, block):
    what = f"gmirror metadata on {provider}"
    return {
        "name": block.get("name"),
        "mid": _int(block.get("mid"), f"{what}: mid"),
        "did": _int(block.get("did"), f"{what}: did"),
        "all": _int(block.get("all"), f"{what}: all"),
        "genid": _int(block.get("genid"), f"{what}: genid"),
        "syncid": _int(block.get("syncid"), f"{what}: syncid"),
        "priority": _int(block.get("priority"), f"{what}: priority"),
        "balance": block.get("balance"),
        "mflags": _flags(block.get("mflags")),
        "dflags": _flags(block.get("dflags")),
        "provsize": _int(block.get("provsize"), f"{what}: provsize"),
    }


def is_no_metadata_error(reason):
    """Return True when a dump error only means the provider carries no gmirror metadata."""
    return reason == "Invalid argument"


# ---------------------------------------------------------------- gmirror planners


def find_component(mirror, component):
    """Return the component of mirror named component (with or without /dev/), or None."""
    if mirror is None:
        return None
    name = component_name(component)
    return next((c for c in mirror["components"] if c["name"] == name), None)


def find_owner(mirrors, component, skip=None):
    """Return the name of the mirror (other than skip) that has component as a consumer, or None."""
    name = component_name(component)
    for mirror_name, mirror in mirrors.items():
        if mirror_name != skip and any(c["name"] == name for c in mirror["components"]):
            return mirror_name
    return None


def is_in_sync(component):
    """Return True when a component is ACTIVE and not marked for (re)synchronisation."""
    return component["state"] == "ACTIVE" and not set(component["flags"]) & set(_RESYNC_FLAGS)


def freshness(component):
    """Return the (genid, syncid, in_sync) key gmirror uses to pick the newest copy: bigger is newer.

    The kernel drops components with a lower genid as broken, synchronises those with a lower syncid from
    the rest, and a component it marks SYNCHRONIZING/STALE has not caught up even where its syncid was reset.
    """
    return (component["genid"] or 0, component["syncid"] or 0, 1 if is_in_sync(component) else 0)


def _describe_freshness(component):
    return f"{component['name']} (genid {component['genid']}, syncid {component['syncid']}, {component['state']})"


def plan_rebuild(mirror, components, allow_overwrite_newer=False, force=False):
    """Return the `rebuild` argv for the components that need it; refuse to overwrite the newest copy.

    The decision uses the mirror's own metadata: a target whose (genid, syncid, in-sync) is newer than every
    other component's, or newer than the running mirror's GenID/SyncID, holds data the others lack, and a
    rebuild would copy the older data over it. A component already SYNCHRONIZING is left alone; an in-sync one
    exactly as new as the newest other is only rebuilt with force.
    """
    if mirror is None:
        raise StateError("no such mirror: nothing to rebuild (check the name with gmirror_info)")
    name = mirror["name"]
    wanted = []
    for component in _components(components):
        target = find_component(mirror, component)
        if target is None:
            present = ", ".join(c["name"] for c in mirror["components"]) or "none"
            raise StateError(f"mirror {name} has no component {component} (components: {present})")
        others = [c for c in mirror["components"] if c is not target]
        sources = [c for c in others if is_in_sync(c)]
        if not sources:
            raise StateError(
                f"refusing to rebuild {component} in mirror {name}: no other component is ACTIVE and in sync to "
                f"rebuild it from ({', '.join(_describe_freshness(c) for c in others) or 'no other component'}); "
                f"{component} may be the only copy of the newest data"
            )
        key, newest_other = freshness(target), max(freshness(c) for c in others)
        newer = key > newest_other or key[:2] > (mirror["genid"] or 0, mirror["syncid"] or 0)
        if newer and not allow_overwrite_newer:
            raise StateError(
                f"refusing to rebuild {_describe_freshness(target)} in mirror {name}: it holds newer data than "
                f"{', '.join(_describe_freshness(c) for c in others)} (mirror genid {mirror['genid']}, syncid "
                f"{mirror['syncid']}), and a rebuild would overwrite it with their older contents. Rebuild the stale "
                "side instead, or set allow_overwrite_newer: true only once you have decided to discard the writes "
                f"that exist only on {component}"
            )
        if target["state"] == "SYNCHRONIZING":
            continue
        if is_in_sync(target) and not newer and key == newest_other and not force:
            continue
        wanted.append(target["name"])
    return [build_rebuild_argv(name, wanted)] if wanted else []


def plan_label(name, components, mirrors, metadata, options, *, force=False):
    """Return the argv tails that create mirror name from components, then set their priorities.

    options: {"balance", "autosync", "failsync", "hardcode", "slice", "priority"}. An existing mirror that has
    these components (and maybe more, inserted later) only gets their priorities planned; other cases that would
    relabel or steal a disk refuse.
    metadata is the parsed `gmirror dump` of the components that are in no running mirror.
    """
    validate_mirror_name(name)
    wanted = _components(components)
    existing = mirrors.get(name)
    if existing is not None:
        present = [c["name"] for c in existing["components"]]
        missing = [c for c in wanted if c not in present]
        if missing:
            raise StateError(
                f"mirror {name} already exists with components {', '.join(present) or 'none'}, without "
                f"{', '.join(missing)}: use action insert to add them; label would rebuild the mirror"
            )
        return plan_priorities(existing, wanted, options.get("priority"))
    for component in wanted:
        owner = find_owner(mirrors, component)
        if owner is not None:
            raise StateError(f"{component} is a component of mirror {owner}: remove it there first")
        md = metadata.get(component)
        if md is not None and not force:
            raise StateError(
                f"{component} already carries gmirror metadata of mirror {md['name']} (id {md['mid']}, genid "
                f"{md['genid']}, syncid {md['syncid']}) that no running mirror uses; labelling would erase the "
                "record of which copy is newest. Start that mirror instead (kldload geom_mirror, or gmirror "
                "activate), or set force: true to discard the metadata"
            )
    argv = build_label_argv(
        name,
        wanted,
        balance=options.get("balance") or DEFAULT_BALANCE,
        autosync=bool(options.get("autosync")),
        failsync=options.get("failsync") is not False,
        hardcode=bool(options.get("hardcode")),
        slice_size=options.get("slice"),
    )
    # label gives each component its position (0, 1, ...) as priority.
    labelled = {"name": name, "components": [{"name": c, "priority": i} for i, c in enumerate(wanted)]}
    return [argv, *plan_priorities(labelled, wanted, options.get("priority"))]


def plan_priorities(mirror, components, priority):
    """Return `configure -p` argv tails for the components whose priority differs from priority."""
    if priority is None:
        return []
    steps = []
    for component in _components(components):
        current = find_component(mirror, component)
        if current is None:
            raise StateError(f"mirror {mirror['name']} has no component {component} to set a priority on")
        if current["priority"] != _priority(priority):
            steps.append(build_priority_argv(mirror["name"], component, priority))
    return steps


def plan_insert(mirror, components, mirrors, metadata, options, *, allow_overwrite_newer=False, force=False):
    """Return the `insert` (and `configure -p`) argv tails that add components to mirror.

    options: {"priority", "inactive", "hardcode"}. Inserting writes new metadata on the provider and
    synchronises it from the mirror; refuses a provider whose own metadata says it belongs to this mirror
    with newer data (the other side after a failover), or to another mirror.
    """
    if mirror is None:
        raise StateError("no such mirror: label it first (action label)")
    name = mirror["name"]
    new = []
    for component in _components(components):
        if find_component(mirror, component) is not None:
            continue
        owner = find_owner(mirrors, component, skip=name)
        if owner is not None:
            raise StateError(f"{component} is a component of mirror {owner}: remove it there first")
        md = metadata.get(component)
        if md is not None and md["name"] == name and md["mid"] == mirror["id"]:
            theirs, ours = (md["genid"] or 0, md["syncid"] or 0), (mirror["genid"] or 0, mirror["syncid"] or 0)
            if theirs > ours and not allow_overwrite_newer:
                raise StateError(
                    f"refusing to insert {component} into mirror {name}: its metadata says it is a newer copy of "
                    f"this mirror (genid {md['genid']}, syncid {md['syncid']}) than the running mirror (genid "
                    f"{mirror['genid']}, syncid {mirror['syncid']}); inserting would overwrite the newer data. Make "
                    "the node holding it the writer and rebuild this side from it, or set allow_overwrite_newer: "
                    "true to discard it"
                )
        elif md is not None and not force:
            raise StateError(
                f"refusing to insert {component} into mirror {name}: it carries metadata of mirror {md['name']} "
                f"(id {md['mid']}, genid {md['genid']}, syncid {md['syncid']}), which inserting would erase; set "
                "force: true if that mirror is no longer wanted"
            )
        new.append(component_name(component))
    steps = []
    if new:
        steps.append(
            build_insert_argv(name, new, options.get("priority"), options.get("inactive"), options.get("hardcode"))
        )
    present = [c for c in _components(components) if component_name(c) not in new]
    return steps + (plan_priorities(mirror, present, options.get("priority")) if present else [])


def plan_remove(mirror, components):
    """Return the `remove` argv tail for the components still in mirror; refuse to remove the last ACTIVE one."""
    if mirror is None:
        return []
    present = [component_name(c) for c in _components(components) if find_component(mirror, c) is not None]
    if not present:
        return []
    remaining = [c for c in mirror["components"] if c["name"] not in present and c["state"] == "ACTIVE"]
    if not remaining:
        raise StateError(
            f"refusing to remove {', '.join(present)} from mirror {mirror['name']}: no ACTIVE component would "
            "remain; stop the mirror instead"
        )
    return [build_remove_argv(mirror["name"], present)]


def plan_activate(mirror, name, components):
    """Return the `activate` argv tail for the components not connected to mirror (which may not be running)."""
    missing = [component_name(c) for c in _components(components) if find_component(mirror, c) is None]
    return [build_activate_argv(name, missing)] if missing else []


def plan_configure(mirror, options, components=()):
    """Return the `configure` argv tails that bring balance/slice/autosync/failsync/priority to options."""
    if mirror is None:
        raise StateError("no such mirror: label it first (action label)")
    name = mirror["name"]
    connected = len(mirror["components"])
    if mirror["components_configured"] is not None and connected < mirror["components_configured"]:
        raise StateError(
            f"mirror {name} has {connected} of {mirror['components_configured']} components connected, and gmirror "
            "configures only complete mirrors: reconnect them, or forget them (action forget) first"
        )
    balance = options.get("balance")
    slice_size = options.get("slice")
    autosync, failsync = options.get("autosync"), options.get("failsync")
    argv = build_configure_argv(
        name,
        balance if balance is not None and balance != mirror["balance"] else None,
        slice_size if slice_size is not None and slice_size != mirror["slice"] else None,
        autosync if autosync is not None and autosync == ("NOAUTOSYNC" in mirror["flags"]) else None,
        failsync if failsync is not None and failsync == ("NOFAILSYNC" in mirror["flags"]) else None,
    )
    steps = [argv] if argv else []
    if options.get("priority") is not None and components:
        steps += plan_priorities(mirror, components, options["priority"])
    return steps


def is_open(mirror):
    """Return True when the mirror's provider is open (mounted, imported, or a consumer has it)."""
    return mirror.get("mode") not in (None, CLOSED_MODE)


def plan_stop(mirror, force=False):
    """Return the `stop` argv tail; refuse an open mirror unless force (stop -f)."""
    if mirror is None:
        return []
    if is_open(mirror) and not force:
        raise StateError(
            f"mirror {mirror['name']} is open ({mirror['provider']} mode {mirror['mode']}): unmount or export what "
            "uses it first, or set force: true to stop it anyway (writes in flight fail)"
        )
    return [build_stop_argv(mirror["name"], force)]


def plan_forget(mirror):
    """Return the `forget` argv tail when the mirror lists fewer connected components than it is configured with."""
    if mirror is None or mirror["components_configured"] is None:
        return []
    if len(mirror["components"]) >= mirror["components_configured"]:
        return []
    return [build_forget_argv(mirror["name"])]


# ---------------------------------------------------------------- ggatec


def build_ggatec_list_argv(verbose=True, unit=None):
    """Return `list [-v] [-u unit]`."""
    return ["list"] + (["-v"] if verbose else []) + (["-u", str(unit)] if unit is not None else [])


def build_ggatec_create_argv(host, path, port=None, access=None, unit=None, timeout=None, queue_size=None):  # noqa: PLR0917
    """Return `create [-o ro|wo|rw] [-p port] [-q n] [-t s] [-u unit] <host> <path>` (never -v: it stays in front)."""
    argv = ["create"]
    if access is not None:
        if access not in GGATE_ACCESS:
            raise StateError(f"invalid access '{access}': one of {', '.join(GGATE_ACCESS)}")
        argv += ["-o", access]
    if port is not None and port != GGATE_DEFAULT_PORT:
        argv += ["-p", str(port)]
    if queue_size is not None:
        argv += ["-q", str(queue_size)]
    if timeout is not None:
        argv += ["-t", str(timeout)]
    if unit is not None:
        argv += ["-u", str(unit)]
    return [*argv, host, path]


def build_ggatec_destroy_argv(unit, force=False):
    """Return `destroy [-f] -u <unit>`."""
    return ["destroy"] + (["-f"] if force else []) + ["-u", str(unit)]


def parse_ggatec_create(stdout):
    """Return the unit number `ggatec create` printed (`ggate0` -> 0), or None when it printed none (-u given)."""
    units = [int(m.group(1)) for m in re.finditer(rf"^{GGATE_PREFIX}(\d+)\s*$", stdout, re.MULTILINE)]
    if len(units) > 1:
        raise ParseError(f"`ggatec create` printed several units: {stdout!r}")
    return units[0] if units else None


def parse_ggatec_list(text):
    """Return [{"unit", "name", "device", ...}] from `ggatec list` (names only) or `ggatec list -v` (blocks).

    Verbose blocks add host, port and path (split from `info: host:port path`), access, timeout, queue_count,
    queue_size, references, mediasize, sectorsize and mode; a key ggatec printed as `(null)` becomes None.
    """
    units = []
    block = None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r").rstrip()
        if not line:
            block = None
            continue
        if _is_prompt(line):
            continue
        match = re.match(rf"^{GGATE_PREFIX}(\d+)$", line)
        if match and block is None:
            units.append(_ggate_entry(int(match.group(1))))
            continue
        match = re.match(r"^ *([A-Za-z_]+): (.*)$", line)
        if match and match.group(1) == "NAME":
            unit = re.match(rf"^{GGATE_PREFIX}(\d+)$", match.group(2))
            if not unit:
                raise ParseError(f"line {number}: not a ggate provider name: {line!r}")
            block = _ggate_entry(int(unit.group(1)))
            units.append(block)
            continue
        if match and block is not None:
            _ggate_field(block, match.group(1), match.group(2), number)
            continue
        raise ParseError(f"line {number}: unexpected line in `ggatec list` output: {line!r}")
    return units


def _ggate_entry(unit):
    return {"unit": unit, "name": f"{GGATE_PREFIX}{unit}", "device": f"{DEV_PREFIX}{GGATE_PREFIX}{unit}"}


def _ggate_field(block, key, value, number):
    value = None if value == "(null)" else value
    what = f"line {number}: {block['name']} {key}"
    if key == "info" and value is not None:
        info = re.match(r"^([^:\s]+):(\d+) (.+)$", value)
        if not info:
            raise ParseError(f"{what} is not `host:port path`: {value!r}")
        block.update(host=info.group(1), port=int(info.group(2)), path=info.group(3))
    elif key in ("timeout", "queue_count", "queue_size", "references", "sectorsize"):
        block[key] = _int(value, what)
    elif key == "mediasize":
        block[key] = _mediasize(value, what) if value is not None else None
    else:
        block[key] = value


def find_ggate(units, host=None, path=None, port=GGATE_DEFAULT_PORT, unit=None):
    """Return the ggate unit matching unit, or host+port+path, from parsed `ggatec list -v`; None if none."""
    for entry in units:
        if unit is not None and entry["unit"] == unit:
            return entry
        if unit is None and (entry.get("host"), entry.get("port"), entry.get("path")) == (host, port, path):
            return entry
    return None


def plan_ggate_create(units, host, path, port=GGATE_DEFAULT_PORT, access="rw", unit=None, **extra):  # noqa: PLR0917
    """Return ([create argv] or [], the existing entry); reuse a unit already attached to host:port path."""
    existing = find_ggate(units, host, path, port)
    if existing is not None:
        if existing.get("access") not in (None, GGATE_ACCESS[access]):
            raise StateError(
                f"{existing['name']} already attaches {host}:{port} {path} {existing['access']}, not "
                f"{GGATE_ACCESS[access]}: destroy it first (state absent) to change the access"
            )
        if unit is not None and existing["unit"] != unit:
            raise StateError(
                f"{host}:{port} {path} is already attached as {existing['name']}, not unit {unit}: use unit "
                f"{existing['unit']} or destroy {existing['name']} first"
            )
        return [], existing
    if unit is not None:
        taken = find_ggate(units, unit=unit)
        if taken is not None:
            raise StateError(
                f"unit {unit} ({taken['name']}) is in use for {taken.get('host')}:{taken.get('port')} "
                f"{taken.get('path')}: choose another unit or destroy it first"
            )
    argv = build_ggatec_create_argv(host, path, port, access, unit, extra.get("timeout"), extra.get("queue_size"))
    return [argv], None


def plan_ggate_destroy(units, unit=None, host=None, path=None, port=GGATE_DEFAULT_PORT, force=False):  # noqa: PLR0917
    """Return ([destroy argv] or [], the entry); refuse an open unit (a gmirror component) unless force."""
    entry = find_ggate(units, host, path, port, unit)
    if entry is None:
        return [], None
    mode = entry.get("mode")
    if mode not in (None, CLOSED_MODE) and not force:
        raise StateError(
            f"{entry['name']} is open (mode {mode}), probably as a gmirror component: remove it from the mirror "
            "first, or set force: true to destroy it anyway (the mirror then drops it as DISCONNECTED)"
        )
    return [build_ggatec_destroy_argv(entry["unit"], force)], entry


# ---------------------------------------------------------------- gg.exports (ggated)


def parse_exports(text):
    """Return [{"host", "mask", "access", "direct", "path", "line"}] from a gg.exports file, as ggated reads it.

    One export per line, `host[/mask]  RO|WO|RW[,DIRECT|NODIRECT]  path` separated by spaces/TABs (flags are
    case-insensitive and `rd` means RO); leading blanks, blank lines and `#` comments are skipped. Every error
    ggated would exit on raises ParseError with its own wording.
    """
    entries = []
    for number, raw in enumerate(text.split("\n"), start=1):
        if len(raw) > EXPORTS_LINE_MAX:
            raise ParseError(f"Line {number} too long.")
        line = raw.lstrip(" \t")
        if not line or line.startswith("#"):
            continue
        if re.search(r"[\x00-\x08\x0a-\x1f\x7f]", line):
            raise ParseError(f"line {number}: control character in an export line: {raw!r}")
        words = [w for w in re.split(r"[ \t]+", line) if w]
        if len(words) < 3:
            raise ParseError(f"Too few arguments at line {number}.")
        if len(words) > 3:
            raise ParseError(f"Too many arguments at line {number}.")
        host, mask = _export_host(words[0], number)
        access, direct = _export_flags(words[1], number)
        if len(words[2]) > EXPORTS_PATH_MAX:
            raise ParseError(f"Path too long at line {number}.")
        entries.append(
            {"host": host, "mask": mask, "access": access, "direct": direct, "path": words[2], "line": number}
        )
    return entries


def _export_host(word, number):
    host, _sep, mask = word.partition("/")
    ipv4 = re.match(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$", host)
    if ipv4 and any(int(octet) > 255 for octet in ipv4.groups()):
        raise ParseError(f"Invalid IP/host name at line {number}.")
    if not ipv4 and not re.match(
        r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$", host
    ):
        raise ParseError(f"Invalid IP/host name at line {number}.")
    if "/" not in word:
        return host, None
    if not re.match(r"^\d{1,2}$", mask) or int(mask) > 32:
        raise ParseError(f"Invalid IP mask value at line {number}.")
    return host, int(mask)


def _export_flags(word, number):
    match = re.match(r"^(rd|ro|wo|rw)(?:,(direct|nodirect))?$", word, re.IGNORECASE)
    if not match:
        raise ParseError(f"Invalid value in flags field at line {number}.")
    access = match.group(1).upper().replace("RD", "RO")
    direct = None if match.group(2) is None else match.group(2).lower() == "direct"
    return access, direct


def format_export(entry):
    """Return one gg.exports line for {"host", "mask", "access", "direct", "path"}."""
    host = entry["host"] if entry.get("mask") is None else f"{entry['host']}/{entry['mask']}"
    access = entry["access"].upper()
    if access not in EXPORT_ACCESS:
        raise StateError(f"invalid export access '{entry['access']}': one of {', '.join(EXPORT_ACCESS)}")
    if entry.get("direct") is not None:
        access += ",DIRECT" if entry["direct"] else ",NODIRECT"
    return f"{host}\t{access}\t{entry['path']}"


def serialise_exports(entries, header=()):
    """Return gg.exports text: header lines as `#` comments, then one line per export."""
    lines = [f"# {line}".rstrip() for line in header]
    lines += [format_export(entry) for entry in entries]
    text = "\n".join(lines) + "\n"
    parse_exports(text)
    return text


def is_single_host(entry):
    """Return True when an export admits exactly one address (no network mask, no 0.0.0.0 wildcard)."""
    return entry.get("mask") in (None, 32) and entry["host"] != "0.0.0.0"


def check_exports_to_peers(entries, peers, allow_networks=False):
    """Raise StateError unless every export admits only the given peer addresses (networks only if allowed)."""
    if not entries:
        raise StateError("gg.exports would export nothing, and ggated exits with 'There are no objects to export.'")
    for entry in entries:
        if not is_single_host(entry):
            if not allow_networks:
                raise StateError(
                    f"line {entry['line']}: {format_export(entry)} exports {entry['path']} to a network or wildcard; "
                    "ggated has no authentication, so only the peer's address is allowed (set allow_networks to "
                    "override)"
                )
        elif entry["host"] not in peers:
            raise StateError(
                f"line {entry['line']}: {format_export(entry)} exports {entry['path']} to {entry['host']}, which is not "
                f"the peer ({', '.join(peers)})"
            )


# ---------------------------------------------------------------- gmirror views for diff


def mirror_view(mirror):
    """Return the part of a mirror a diff shows: existence, state, balance, flags and component state/priority."""
    if mirror is None:
        return {"exists": False}
    return {
        "exists": True,
        "state": mirror["state"],
        "balance": mirror["balance"],
        "flags": list(mirror["flags"]),
        "components_configured": mirror["components_configured"],
        "components": {c["name"]: {"state": c["state"], "priority": c["priority"]} for c in mirror["components"]},
    }


def predict_view(view, steps):
    """Return the mirror_view() the planned argv tails should leave (what check mode shows as `after`)."""
    view = {**view, "components": {k: dict(v) for k, v in view.get("components", {}).items()}}
    for argv in steps:
        verb, opts, args = _split_argv(argv)
        if verb == "label":
            view = {
                "exists": True,
                "state": "COMPLETE",
                "balance": opts.get("-b"),
                "flags": [f for f, o in (("NOFAILSYNC", "-F"), ("NOAUTOSYNC", "-n")) if o in opts],
                "components_configured": len(args) - 1,
                "components": {c: {"state": "ACTIVE", "priority": i} for i, c in enumerate(args[1:])},
            }
        elif verb == "insert":
            for c in args[1:]:
                view["components"][c] = {"state": "SYNCHRONIZING", "priority": int(opts.get("-p", 0))}
            view["components_configured"] = (view.get("components_configured") or 0) + len(args) - 1
        elif verb == "remove":
            for c in args[1:]:
                view["components"].pop(c, None)
            view["components_configured"] = (view.get("components_configured") or 0) - (len(args) - 1)
        elif verb == "rebuild":
            for c in args[1:]:
                view["components"][c]["state"] = "SYNCHRONIZING"
        elif verb == "activate":
            for c in args[1:]:
                view["components"][c] = {"state": None, "priority": None}
        elif verb == "forget":
            view["components_configured"] = len(view["components"])
        elif verb == "stop":
            view = {"exists": False}
        elif verb == "configure" and "-p" in opts:
            view["components"][args[1]]["priority"] = int(opts["-p"])
        elif verb == "configure":
            view["balance"] = opts.get("-b", view.get("balance"))
            flags = set(view.get("flags", []))
            for flag, on, off in (("NOAUTOSYNC", "-n", "-a"), ("NOFAILSYNC", "-F", "-f")):
                if on in opts:
                    flags.add(flag)
                elif off in opts:
                    flags.discard(flag)
            view["flags"] = sorted(flags)
        if view.get("exists") and view.get("components_configured") is not None:
            states = [c["state"] for c in view["components"].values()]
            complete = len(states) == view["components_configured"] and all(s == "ACTIVE" for s in states)
            view["state"] = "COMPLETE" if complete else "SYNCHRONIZING" if "SYNCHRONIZING" in states else "DEGRADED"
    return view


def _split_argv(argv):
    verb, rest = argv[0], list(argv[1:])
    opts, args = {}, []
    while rest:
        arg = rest.pop(0)
        if arg in ("-b", "-s", "-p"):
            opts[arg] = rest.pop(0)
        elif arg.startswith("-"):
            opts[arg] = True
        else:
            args.append(arg)
    return verb, opts, args


def view_diff(before, after, header):
    """Return an Ansible diff holding only the keys whose values differ between two views."""
    keys = [k for k in dict.fromkeys([*before, *after]) if before.get(k) != after.get(k)]
    return {
        "before": {k: before.get(k) for k in keys},
        "after": {k: after.get(k) for k in keys},
        "before_header": header,
        "after_header": header,
    }
