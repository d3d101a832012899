# PRIVATE: internal to freebsd_ha.storage, not a public API; it may change without notice.
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""hastctl argv builders, parsers (status, list, dump, hast.conf, hastd log) and the role planner (pure)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError

DEFAULT_CONFIG = "/etc/hast.conf"
DEV_DIR = "/dev/hast"
ROLES = ("init", "primary", "secondary")
STATUS_HEADER = ("Name", "Status", "Role", "Components")
METADATA_STATES = ("present", "absent", "invalid", "foreign", "unknown")
# sysexits(3) values hastctl exits with (hastctl.c): usage error, hastd not reachable.
EX_USAGE = 64
EX_OSERR = 71
# hast.h: error numbers hastd sends back per resource.
EHAST_MESSAGES = {
    1: "hastd does not know this resource (EHAST_NOENTRY): hast.conf changed after hastd started; run "
    "`service hastd reload`",
    2: "hastd rejected the request as invalid (EHAST_INVALID)",
    3: "hastd is out of memory (EHAST_NOMEMORY)",
    4: "hastd does not implement the request (EHAST_UNIMPLEMENTED)",
}
# A split brain repeats its lines at every reconnection attempt; the newest few are enough evidence.
EVIDENCE_LINES = 10
BUG_292322_URL = "https://bugs.freebsd.org/bugzilla/show_bug.cgi?id=292322"
BUG_292322_MIN_MAJOR = 15


# How much of each syslog file the modules scan for hastd lines.
LOG_TAIL_BYTES = 4 * 1024 * 1024


def read_argument_spec():
    """Return the argument spec of the options hast_info and hast_role share (hast.conf path, log scan)."""
    return dict(
        config=dict(type="path", default=DEFAULT_CONFIG),
        log_files=dict(type="list", elements="path", default=["/var/log/messages"]),
        log_window=dict(type="int", default=3600),
    )


class ParseError(ValueError):
    """Output of a HAST command or a hast.conf did not have the documented shape."""


# ---------------------------------------------------------------- argv builders


def _config_args(config):
    return [] if config in (None, DEFAULT_CONFIG) else ["-c", config]


def build_list_argv(names=(), config=None):
    """Return `list [-c config] [name ...]` (no name: every resource hastd knows)."""
    return ["list", *_config_args(config), *names]


def build_status_argv(names=(), config=None):
    """Return `status [-c config] [name ...]` (the verbose format before FreeBSD 10, a table since)."""
    return ["status", *_config_args(config), *names]


def build_dump_argv(name, config=None):
    """Return `dump [-c config] <name>`: the on-disk metadata of one resource, read without hastd."""
    return ["dump", *_config_args(config), name]


def build_role_argv(role, names, config=None):
    """Return `role [-c config] <role> <name ...>`."""
    if role not in ROLES:
        raise StateError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return ["role", *_config_args(config), role, *names]


def build_create_argv(name, config=None):
    """Return `create [-c config] <name>`: writes fresh metadata onto the local provider."""
    return ["create", *_config_args(config), name]


def device_path(provname):
    """Return /dev/hast/<provname>, the GEOM provider hastd creates on the primary only."""
    return f"{DEV_DIR}/{provname}"


# ---------------------------------------------------------------- hastctl list / status / dump

# `extentsize: 2097152 (2.0MB)` - the number, then humanize_number(3) text in parentheses.
_SIZE_RE = re.compile(r"^(\d+) \(([^)]*)\)$")
_BLOCK_KEY_RE = re.compile(r"^  ([a-z][a-z ]*): ?(.*)$")
_STAT_KEY_RE = re.compile(r"^    ([a-z][a-z ]*): (.*)$")
_PAIRS_RE = re.compile(r"^[a-z]+: \d+(?:, [a-z]+: \d+)*$")
_INT_KEYS = ("keepdirty", "workerpid", "error")
_SIZE_KEYS = ("extentsize", "dirty")


def _number(value, what, number):
    if not value.isdigit():
        raise ParseError(f"line {number}: {what} is not a number: {value!r}")
    return int(value)


def _size(value, what, number):
    match = _SIZE_RE.match(value)
    if not match:
        raise ParseError(f"line {number}: {what} is not '<bytes> (<size>)': {value!r}")
    return int(match.group(1))


def _pairs(value, what, number):
    if not _PAIRS_RE.match(value):
        raise ParseError(f"line {number}: {what} is not 'name: number, ...': {value!r}")
    return {key: int(count) for key, count in (pair.split(": ") for pair in value.split(", "))}


def _list_value(key, value, number):
    if key in _SIZE_KEYS:
        return _size(value, key, number)
    if key in _INT_KEYS:
        return _number(value, key, number)
    return value


def _stat_value(key, value, number):
    if key in ("local errors", "queues"):
        return _pairs(value, key, number)
    return _number(value, key, number)


def parse_list(text):
    """Return one dict per resource from `hastctl list` (and pre-10 `hastctl status`) output.

    Keys are the printed labels with spaces as underscores; sizes are bytes (int); `statistics`
    is a dict (`local_errors`/`queues` are dicts of ints). Lines printed only by some releases
    (`sourceaddr`, `status`, `workerpid`, `local errors`, `queues`) are optional; a resource hastd
    could not report has only `error`.
    """
    entries = []
    entry = None
    in_stats = False
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if not line[0].isspace():
            if not line.endswith(":") or " " in line:
                raise ParseError(f"line {number}: expected '<resource>:' to start a block: {line!r}")
            entry = {"name": line[:-1]}
            entries.append(entry)
            in_stats = False
            continue
        if entry is None:
            raise ParseError(f"line {number}: indented line before the first resource: {line!r}")
        stat = _STAT_KEY_RE.match(line)
        if stat and in_stats:
            key = stat.group(1).replace(" ", "_")
            entry["statistics"][key] = _stat_value(stat.group(1), stat.group(2), number)
            continue
        match = _BLOCK_KEY_RE.match(line)
        if not match:
            raise ParseError(f"line {number}: not a '  key: value' line of resource {entry['name']}: {line!r}")
        key, value = match.group(1), match.group(2)
        if key == "statistics" and not value:
            entry["statistics"] = {}
            in_stats = True
            continue
        in_stats = False
        entry[key.replace(" ", "_")] = _list_value(key, value, number)
    for entry in entries:
        if "error" not in entry and "role" not in entry:
            raise ParseError(f"resource {entry['name']}: block has neither 'role' nor 'error'")
    return entries


def _table_row(fields, number, line):
    if len(fields) == 2 and re.match(r"^ERR\d+$", fields[1]):
        return {"name": fields[0], "error": int(fields[1][3:])}
    if len(fields) != 5:
        raise ParseError(f"line {number}: expected 'name status role localpath remoteaddr' or 'name ERR<n>': {line!r}")
    name, status, role, localpath, remoteaddr = fields
    return {
        "name": name,
        "status": None if status == "-" else status,
        "role": role,
        "localpath": localpath,
        "remoteaddr": remoteaddr,
    }


def parse_status(text):
    """Return one dict per resource from `hastctl status`, table (10.0+) or verbose block (8.x-9.1).

    Table rows give name, status (None for '-': no worker), role, localpath, remoteaddr, or
    name and error for an `ERR<n>` row. The verbose format is parsed as `hastctl list`.
    """
    lines = [line.rstrip("\r") for line in text.split("\n")]
    first = next((index for index, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return []
    if tuple(lines[first].split()) != STATUS_HEADER:
        return parse_list(text)
    rows = []
    for number, line in enumerate(lines[first + 1 :], start=first + 2):
        if line.strip():
            rows.append(_table_row(line.split(), number, line))
    return rows


_DUMP_KEYS = ("datasize", "extentsize", "keepdirty", "localoff", "resuid", "localcnt", "remotecnt", "prevrole")


def parse_dump(text):
    """Return {resource: metadata} from `hastctl dump` (sizes and counters as int, prevrole as text)."""
    dumps = {}
    current = None
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        if line.startswith("resource: "):
            current = {}
            dumps[line[len("resource: ") :]] = current
            continue
        match = re.match(r"^    ([a-z]+): (.*)$", line)
        if current is None or not match or match.group(1) not in _DUMP_KEYS:
            raise ParseError(f"line {number}: not a line of `hastctl dump` output: {line!r}")
        key, value = match.groups()
        if key in ("datasize", "extentsize"):
            current[key] = _size(value, key, number)
        elif key == "prevrole":
            current[key] = value
        else:
            current[key] = _number(value, key, number)
    for name, meta in dumps.items():
        missing = [key for key in _DUMP_KEYS if key not in meta]
        if missing:
            raise ParseError(f"resource {name}: dump lacks {', '.join(missing)}")
    return dumps


# metadata.c / hastctl.c error texts (pjdlog prints `[ERROR] ` then the message on stderr).
_DUMP_ERRORS = (
    # nv_validate() accepts an all-zero area as empty; the missing fields give ENOENT.
    ("absent", re.compile(r"Unable to read metadata from (\S+): No such file or directory\.")),
    ("invalid", re.compile(r"Metadata read from (\S+) is invalid")),
    ("invalid", re.compile(r"Unable to read metadata from (\S+)")),
    ("foreign", re.compile(r"Provider (\S+) is not part of resource (\S+)\.")),
)


def metadata_from_dump(name, rc, stdout, stderr):
    """Return {"state", "error", ...dump fields} for one resource from its `hastctl dump <name>` result.

    `hastctl list` answers for a resource whose provider was never initialised, so only the dump
    tells: present (dump printed it), absent (an all-zero metadata area: `hastctl create` never
    ran), invalid (unreadable metadata: an old file system or corruption), foreign (metadata of
    another resource), unknown (the dump failed otherwise, e.g. the provider cannot be opened).
    """
    message = stderr.strip() or None
    if rc == 0:
        dumps = parse_dump(stdout)
        if name not in dumps:
            raise ParseError(f"`hastctl dump {name}` succeeded but printed no block for {name}")
        return dict(dumps[name], state="present", error=None)
    for state, pattern in _DUMP_ERRORS:
        if message and pattern.search(message):
            return {"state": state, "error": message}
    return {"state": "unknown", "error": message or stdout.strip() or f"hastctl dump exited {rc}"}


def is_list_unsupported(rc, stderr):
    """Return True when hastctl predates `list` (FreeBSD < 10): it printed its usage text."""
    return rc == EX_USAGE and "usage:" in stderr and " list " not in stderr


def is_hastd_unreachable(rc, stderr):
    """Return True when hastctl could not reach hastd over the control socket (hastd not running)."""
    return rc == EX_OSERR and (
        "Unable to connect to hastd via" in stderr or "Unable to setup control connection" in stderr
    )


def read_listing(read, fail, names=(), config=None):
    """Return the parsed `hastctl list` entries (`status` on hastctl without `list`), or None when hastd is down.

    read(argv) runs a read-only hastctl command and returns an object with rc/stdout/stderr;
    fail(result) returns the exception for a failed read. A non-zero exit that still printed a
    block per resource is a per-resource error (`error: <n>`), kept in the entry.
    """
    argv = build_list_argv(names, config)
    result = read(argv)
    if is_list_unsupported(result.rc, result.stderr):
        argv = build_status_argv(names, config)
        result = read(argv)
    if is_hastd_unreachable(result.rc, result.stderr):
        return None
    if result.rc != 0 and not result.stdout.strip():
        raise fail(result)
    return parse_status(result.stdout) if argv[0] == "status" else parse_list(result.stdout)


def read_metadata(read, names, config=None):
    """Return {name: metadata_from_dump()} running `hastctl dump <name>` once per resource (read as above)."""
    metadata = {}
    for name in names:
        result = read(build_dump_argv(name, config))
        metadata[name] = metadata_from_dump(name, result.rc, result.stdout, result.stderr)
    return metadata


def error_text(code):
    """Return the operator text for a per-resource hastd error number."""
    return EHAST_MESSAGES.get(code, f"hastd returned error {code}")


# ---------------------------------------------------------------- hast.conf(5)

# token.l: keywords win over STR at equal length; NUM is digits only; no quoting, no ';'.
KEYWORDS = (
    "control",
    "pidfile",
    "listen",
    "replication",
    "checksum",
    "compression",
    "timeout",
    "exec",
    "metaflush",
    "resource",
    "name",
    "local",
    "remote",
    "source",
    "on",
    "off",
    "fullsync",
    "memsync",
    "async",
    "none",
    "crc32",
    "sha256",
    "hole",
    "lzf",
)
REPLICATION_MODES = ("fullsync", "memsync", "async")
CHECKSUMS = ("none", "crc32", "sha256")
COMPRESSIONS = ("none", "hole", "lzf")
_WORD_RE = re.compile(r"[a-zA-Z0-9.\-_/:\[\]]+")
_GLOBAL_ONLY = ("control", "pidfile", "listen")
_RESOURCE_DEFAULTS = ("replication", "checksum", "compression", "timeout", "exec", "metaflush")
_CHOICES = {"replication": REPLICATION_MODES, "checksum": CHECKSUMS, "compression": COMPRESSIONS}
_NODE_KEYS = ("local", "remote", "source", "provname", "metaflush")


def is_plain_word(value):
    """Return True when value is one hast.conf STR token (not a keyword, not only digits)."""
    text = str(value)
    return bool(_WORD_RE.fullmatch(text)) and text not in KEYWORDS and not text.isdigit()


def _tokenize(text):
    tokens = []
    for number, raw in enumerate(text.split("\n"), start=1):
        position = 0
        line = raw.split("#", 1)[0].rstrip("\r")
        while position < len(line):
            char = line[position]
            if char in " \t":
                position += 1
            elif char in "{}":
                tokens.append((char, char, number))
                position += 1
            else:
                match = _WORD_RE.match(line, position)
                if not match:
                    raise ParseError(f"line {number}: character {char!r} is not allowed in hast.conf: {line!r}")
                word = match.group(0)
                kind = "kw" if word in KEYWORDS else "num" if word.isdigit() else "str"
                tokens.append((kind, word, number))
                position = match.end()
    return tokens


class _Tokens:
    def __init__(self, tokens):
        self.tokens = tokens
        self.index = 0

    def peek(self):
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, want, context):
        token = self.peek()
        last = self.tokens[-1][2] if self.tokens else 1
        if token is None:
            raise ParseError(f"line {last}: file ends inside {context}; expected {want}")
        kind, value, number = token
        if isinstance(want, tuple):
            ok, expected = value in want, " or ".join(want)
        else:
            ok, expected = kind == {"word": "str"}.get(want, want), want
        if not ok:
            raise ParseError(f"line {number}: expected {expected} in {context}, found {value!r}")
        self.index += 1
        return value


def _value(tokens, keyword, context):
    if keyword in _CHOICES:
        return tokens.take(_CHOICES[keyword], context)
    if keyword == "timeout":
        number = tokens.peek()[2] if tokens.peek() else 0
        value = int(tokens.take("num", context))
        if value <= 0:
            raise ParseError(f"line {number}: Negative or zero timeout.")
        return value
    if keyword == "metaflush":
        return tokens.take(("on", "off"), context) == "on"
    if keyword == "remote":
        token = tokens.peek()
        if token and token[1] == "none":
            tokens.index += 1
            return "none"
    return tokens.take("word", context)


def _statements(tokens, allowed, context, target, listen_key=True):
    """Read `keyword value` statements into target until '}' or the end; return the keyword that stopped it."""
    while tokens.peek() is not None:
        kind, word, number = tokens.peek()
        if kind == "}":
            return "}"
        if word in ("on", "resource"):
            return word
        if kind != "kw" or word not in allowed:
            raise ParseError(f"line {number}: {word!r} is not a statement allowed in {context}")
        tokens.index += 1
        value = _value(tokens, word, context)
        key = "provname" if word == "name" else word
        if word == "listen" and listen_key:
            target.setdefault("listen", []).append(value)
        else:
            target[key] = value
    return None


def _block(tokens, name_context):
    name = tokens.take("word", name_context)
    tokens.take("{", f"{name_context} {name}")
    return name


def parse_hast_conf(text):
    """Return {"global", "nodes", "resources"} from hast.conf(5) text; raise ParseError on anything else.

    global: control, pidfile, listen (list) and resource defaults; nodes: {host: {control,
    pidfile, listen}} from top-level `on` sections; resources: [{name, <defaults>, provname
    (`name` statement), local, nodes: {host: {local, remote, source, provname, metaflush}}}].
    Only statements present in the text appear. metaflush is a bool, timeout an int.
    """
    tokens = _Tokens(_tokenize(text))
    conf = {"global": {}, "nodes": {}, "resources": []}
    names = set()
    while True:
        stop = _statements(tokens, _GLOBAL_ONLY + _RESOURCE_DEFAULTS, "the global section", conf["global"])
        if stop is None:
            return conf
        _kind, word, number = tokens.peek()
        if stop == "}":
            raise ParseError(f"line {number}: '}}' without an open section")
        tokens.index += 1
        if word == "on":
            host = _block(tokens, "on")
            node = conf["nodes"].setdefault(host, {})
            if _statements(tokens, _GLOBAL_ONLY, f"node section {host}", node) != "}":
                raise ParseError(f"line {number}: node section {host} holds a nested section or is not closed")
            tokens.take("}", f"node section {host}")
            continue
        resource = _resource(tokens, number)
        if resource["name"] in names:
            raise ParseError(f"line {number}: Resource {resource['name']} configured more than once.")
        names.add(resource["name"])
        conf["resources"].append(resource)


def _resource(tokens, number):
    name = _block(tokens, "resource")
    resource = {"name": name, "nodes": {}}
    context = f"resource {name}"
    allowed = (*_RESOURCE_DEFAULTS, "name", "local")
    while True:
        stop = _statements(tokens, allowed, context, resource)
        if stop == "}":
            tokens.take("}", context)
            return resource
        if stop != "on":
            raise ParseError(f"line {number}: {context} is not closed")
        tokens.index += 1
        host = _block(tokens, f"{context} on")
        node = resource["nodes"].setdefault(host, {})
        node_context = f"{context} on {host}"
        if _statements(tokens, ("name", "local", "remote", "source", "metaflush"), node_context, node) != "}":
            raise ParseError(f"line {number}: {node_context} holds a nested section or is not closed")
        tokens.take("}", node_context)


def node_view(resource, host):
    """Return what hastd on host uses for resource: local, remote, source, provname, metaflush (None if unset).

    Node-level statements win over resource-level ones (hast.conf(5) inheritance); provname
    defaults to the resource name. Returns None when the resource has no section for host.
    """
    node = resource["nodes"].get(host)
    if node is None:
        return None
    return {
        "local": node.get("local", resource.get("local")),
        "remote": node.get("remote"),
        "source": node.get("source"),
        "provname": node.get("provname", resource.get("provname", resource["name"])),
        "metaflush": node.get("metaflush", resource.get("metaflush")),
    }


def find_node(conf, candidates):
    """Return the first of candidates (full hostname, short hostname, ...) that some resource names, or None."""
    for name in candidates:
        if name and any(name in resource["nodes"] for resource in conf["resources"]):
            return name
    return None


def validate_hast_conf(conf, hosts):
    """Return a list of problems: every resource must name exactly hosts, each with local and remote."""
    problems = []
    wanted = sorted(hosts)
    for resource in conf["resources"]:
        if sorted(resource["nodes"]) != wanted:
            problems.append(
                f"resource {resource['name']} has sections for {sorted(resource['nodes'])}, expected {wanted}"
            )
        for host in resource["nodes"]:
            view = node_view(resource, host)
            for key in ("local", "remote"):
                if not view[key]:
                    problems.append(f"resource {resource['name']} on {host}: no {key} statement")
    return problems


def _statement_lines(values, keys, indent):
    lines = []
    for key in keys:
        if key not in values or values[key] is None:
            continue
        value = values[key]
        if key == "listen":
            lines += [f"{indent}listen {address}" for address in value]
            continue
        if key == "metaflush":
            value = "on" if value else "off"
        lines.append(f"{indent}{'name' if key == 'provname' else key} {value}")
    return lines


def render_hast_conf(conf, header=()):
    """Return hast.conf text for a parse_hast_conf()-shaped dict (tabs, man page layout; comments from header)."""
    lines = [f"# {line}" if line else "#" for line in header]
    lines += _statement_lines(conf.get("global", {}), _GLOBAL_ONLY + _RESOURCE_DEFAULTS, "")
    for host, node in conf.get("nodes", {}).items():
        lines += ["", f"on {host} {{", *_statement_lines(node, _GLOBAL_ONLY, "\t"), "}"]
    for resource in conf.get("resources", []):
        lines += ["", f"resource {resource['name']} {{"]
        lines += _statement_lines(resource, (*_RESOURCE_DEFAULTS, "provname", "local"), "\t")
        for host, node in resource["nodes"].items():
            lines += [f"\ton {host} {{", *_statement_lines(node, _NODE_KEYS, "\t\t"), "\t}"]
        lines.append("}")
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- hastd log evidence

_BSD_LINE_RE = re.compile(
    r"^(?P<ts>[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d) (?P<host>\S+) (?P<tag>[^\s:\[]+)(?:\[\d+\])?: (?P<msg>.*)$"
)
_ISO_LINE_RE = re.compile(
    r"^(?:<\d+>1 )?(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) (?P<host>\S+) "
    r"(?P<tag>[^\s\[]+)(?:\[\d+\])?:? (?:\S+ \S+ (?:-|\[[^\]]*\]) )?(?P<msg>.*)$"
)
# pjdlog prefix of hastd workers and of the parent once the resource is known: "[<res>] (<role>) ".
_PREFIX_RE = re.compile(r"^\[(?P<res>[^\]]+)\] \((?P<role>[a-z]+)\) (?P<text>.*)$")
_HEADER_TIMEOUT_RE = re.compile(r"^Unable to receive header from (?P<addr>\S+): Operation timed out\.$")
# hastd secondary.c / hastd.c / primary.c texts.
_RESOURCE_EVENTS = (
    ("split_brain", "Split-brain detected, exiting."),
    ("split_brain", "Split-brain condition!"),
    ("dual_primary", "Remote node acts as primary for the resource and not as secondary."),
    ("dual_primary", "We act as primary for the resource and not as secondary as requested by "),
    ("resuid_mismatch", "Resource unique ID mismatch ("),
)
LOG_EVENT_KINDS = ("split_brain", "dual_primary", "resuid_mismatch", "header_timeout", "g_attach")


def _log_time(stamp, now):
    if stamp[0].isdigit():
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    # RFC 3164 stamps have no year: take now's, or the year before for a date ahead of now.
    parsed = datetime.strptime(f"{now.year} {stamp}", "%Y %b %d %H:%M:%S").replace(tzinfo=now.tzinfo)
    if parsed > now + timedelta(days=1):
        parsed = parsed.replace(year=now.year - 1)
    return parsed


def _event(kind, line, when, resource=None, address=None):
    return {"kind": kind, "resource": resource, "address": address, "time": when, "line": line}


def scan_hastd_log(text, now):
    """Return the HAST events found in syslog text (hastd and kernel lines), oldest first.

    Each event: kind (LOG_EVENT_KINDS), resource (from the pjdlog prefix, else None), address
    (header_timeout only), time (aware datetime, None when the stamp is unreadable) and the line.
    A log holds every daemon's lines, so lines that are not HAST events are skipped, not errors.
    """
    events = []
    for raw in text.split("\n"):
        line = raw.rstrip("\r")
        match = _BSD_LINE_RE.match(line) or _ISO_LINE_RE.match(line)
        if not match:
            continue
        tag, message = match.group("tag"), match.group("msg")
        try:
            when = _log_time(match.group("ts"), now)
        except ValueError:
            when = None
        if tag == "kernel":
            if "g_dev_taste" in message and "g_attach" in message:
                events.append(_event("g_attach", line, when))
            continue
        if tag != "hastd":
            continue
        prefixed = _PREFIX_RE.match(message)
        if prefixed:
            for kind, text_start in _RESOURCE_EVENTS:
                if prefixed.group("text").startswith(text_start):
                    events.append(_event(kind, line, when, resource=prefixed.group("res")))
            continue
        timeout = _HEADER_TIMEOUT_RE.match(message)
        if timeout:
            events.append(_event("header_timeout", line, when, address=timeout.group("addr")))
    return events


def is_recent(event, now, window_seconds):
    """Return True when the event is within window_seconds before now (an unreadable stamp counts as recent)."""
    return event["time"] is None or now - event["time"] <= timedelta(seconds=window_seconds)


def address_host(address):
    """Return the host part of a HAST address (tcp://host:port, tcp4://, tcp6://[v6]:port, bare host)."""
    if not address:
        return None
    rest = address.split("://", 1)[-1]
    if rest.startswith("["):
        return rest[1 : rest.index("]")] if "]" in rest else rest
    if rest.count(":") == 1:
        rest = rest.split(":", 1)[0]
    return rest.split("/", 1)[0]


def os_major(release):
    """Return the major version of a kern.osrelease string ("15.0-RELEASE" -> 15), or None."""
    match = re.match(r"^(\d+)\.", release or "")
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------- state of one node


def resource_view(name, entry, *, meta, conf_view, events, device_present, os_release):
    """Return the hast_info view of one resource from its list/status entry, dump and log events.

    entry: parsed `hastctl list` block (None when hastd is down or does not know the resource);
    meta: metadata_from_dump() result (None when no dump was possible); conf_view: node_view()
    of /etc/hast.conf for this node (None when the file has no such resource); events: recent
    log events for this resource (already filtered).
    """
    entry = entry or {}
    conf_view = conf_view or {}
    provname = entry.get("provname") or conf_view.get("provname") or name
    role = entry.get("role")
    status = entry.get("status")
    split = [event["line"] for event in events if event["kind"] in ("split_brain", "dual_primary")][-EVIDENCE_LINES:]
    mismatch = [event["line"] for event in events if event["kind"] == "resuid_mismatch"]
    bug = [event["line"] for event in events if event["kind"] in ("header_timeout", "g_attach")]
    major = os_major(os_release)
    not_replicating = (role == "primary" and status == "degraded") or (role == "secondary" and status is None)
    return {
        "name": name,
        "role": role,
        "status": status,
        "complete": status == "complete",
        "dirty_bytes": entry.get("dirty"),
        "local": entry.get("localpath") or conf_view.get("local"),
        "remote": entry.get("remoteaddr") or conf_view.get("remote"),
        "source": entry.get("sourceaddr") or conf_view.get("source"),
        "replication": entry.get("replication"),
        "provider": provname,
        "device": device_path(provname),
        "device_present": device_present,
        "extentsize": entry.get("extentsize"),
        "keepdirty": entry.get("keepdirty"),
        "workerpid": entry.get("workerpid"),
        "error": entry.get("error"),
        "error_text": error_text(entry["error"]) if entry.get("error") else None,
        "configured": bool(conf_view),
        "known_to_hastd": bool(entry) and not entry.get("error"),
        "metadata_initialised": None if meta is None or meta["state"] == "unknown" else meta["state"] == "present",
        "metadata": meta,
        "split_brain": {"suspected": bool(split), "evidence": split},
        "resuid_mismatch": mismatch,
        "bug_292322": {
            "suspected": bool(bug) and not_replicating and (major is None or major >= BUG_292322_MIN_MAJOR),
            "evidence": bug,
        },
    }


def events_for(resource_name, remote, events):
    """Return the events that concern one resource: its prefix, its peer's address, or a kernel g_attach line."""
    peer = address_host(remote)
    chosen = []
    for event in events:
        if event["resource"] == resource_name or event["kind"] == "g_attach":
            chosen.append(event)
        elif event["kind"] == "header_timeout" and peer and address_host(event["address"]) == peer:
            chosen.append(event)
    return chosen


def recent_events(texts, now, window_seconds):
    """Return the HAST events of several log texts that fall within window_seconds before now."""
    events = []
    for text in texts:
        events += [event for event in scan_hastd_log(text, now) if is_recent(event, now, window_seconds)]
    return events


def node_views(names, entries, metadata, events, *, conf_views=None, os_release=None):
    """Return {name: resource_view()} for names, in order; entries is None when hastd is not running."""
    by_name = {entry["name"]: entry for entry in entries or []}
    views = {}
    for name in names:
        entry, conf_view = by_name.get(name), (conf_views or {}).get(name)
        remote = (entry or {}).get("remoteaddr") or (conf_view or {}).get("remote")
        views[name] = resource_view(
            name,
            entry,
            meta=metadata.get(name),
            conf_view=conf_view,
            events=events_for(name, remote, events),
            device_present=None,
            os_release=os_release,
        )
        views[name]["hastd_running"] = entries is not None
        if entries is not None and entry is None:
            views[name]["error_text"] = "hastd has not loaded this resource: run `service hastd reload`"
    return views


def read_node_state(read, fail, *, config, now, window, names=(), conf_views=None, log_texts=(), os_release=None):
    """Return (hastd_running, {name: view}) of this node from hastctl list/dump (through read/fail) and log texts.

    names: the resources to report; empty means every one hastd lists plus every one conf_views
    (this node's hast.conf sections) names. Dumps run for the names hast.conf knows (hastctl
    rejects others), or for all names when conf_views is None.
    """
    entries = read_listing(read, fail, names, config)
    if not names:
        names = [entry["name"] for entry in entries or []]
        names += [name for name in conf_views or {} if name not in names]
    dump_names = names if conf_views is None else [name for name in names if name in conf_views]
    metadata = read_metadata(read, dump_names, config)
    events = recent_events(log_texts, now, window)
    views = node_views(names, entries, metadata, events, conf_views=conf_views, os_release=os_release)
    return entries is not None, views


# ---------------------------------------------------------------- role planner


def is_split_brain(local_meta, peer_meta):
    """Return True when both nodes wrote since their last sync (hastd secondary.c counter rule)."""
    if not local_meta or not peer_meta:
        return False
    if local_meta.get("state") != "present" or peer_meta.get("state") != "present":
        return False
    return local_meta["localcnt"] > peer_meta["remotecnt"] and peer_meta["localcnt"] > local_meta["remotecnt"]


def _comparable(local, peer):
    return (local.get("metadata") or {}).get("state") == "present" and (
        ((peer or {}).get("metadata") or {}).get("state") == "present"
    )


def _diverged(local, peer):
    """Return why the two copies diverged, from the metadata and roles of both nodes (empty: they did not)."""
    reasons = []
    local_meta, peer_meta = local.get("metadata") or {}, (peer or {}).get("metadata") or {}
    if is_split_brain(local_meta, peer_meta):
        reasons.append(
            f"both copies were written since the last sync (this node localcnt={local_meta['localcnt']} "
            f"remotecnt={local_meta['remotecnt']}, peer localcnt={peer_meta['localcnt']} "
            f"remotecnt={peer_meta['remotecnt']})"
        )
    # resuid 0: metadata created but never joined to a primary; it adopts the peer's id at the handshake.
    ids = (local_meta.get("resuid"), peer_meta.get("resuid"))
    if _comparable(local, peer) and 0 not in ids and ids[0] != ids[1]:
        reasons.append(
            f"the nodes hold different resource IDs ({ids[0]} here, {ids[1]} on the peer): their metadata were "
            "created separately"
        )
    if local.get("role") == "primary" and (peer or {}).get("role") == "primary":
        reasons.append("both nodes are primary")
    return reasons


def _log_evidence(local, peer):
    """Return the recent split-brain log lines as evidence, only when the counters cannot be compared."""
    lines = local.get("split_brain", {}).get("evidence", [])
    if not lines or _comparable(local, peer):
        return []
    return [f"{len(lines)} recent hastd log line(s) report a split brain (the last: {lines[-1]})"]


def _check_reachable(name, local, role):
    if role is None:
        return
    if local.get("hastd_running") is False:
        raise StateError(
            f"hastd is not running, so the role of {name} cannot be set to {role}; start it with "
            "`service hastd start` (create: true alone works without hastd)"
        )
    if local.get("error"):
        raise StateError(f"resource {name}: {error_text(local['error'])}; nothing was changed")


def _metadata_plan(name, local, peer, role, *, create, discard_local_data, diverged):
    """Return True when `hastctl create` must run; raise StateError when it must not."""
    meta = local.get("metadata") or {"state": "unknown", "error": "not read"}
    state, detail = meta["state"], meta.get("error") or ""
    path = local.get("local") or "its local provider"
    if state == "absent":
        if create or discard_local_data:
            return True
        if role in ("primary", "secondary"):
            raise StateError(
                f"resource {name} has no HAST metadata on {path} (`hastctl create` never ran there); give "
                "create: true to initialise it; nothing was changed"
            )
        return False
    if state in ("invalid", "foreign"):
        if discard_local_data:
            return True
        if create or role in ("primary", "secondary"):
            raise StateError(
                f"resource {name}: {path} holds {state} metadata ({detail}); `hastctl create` would overwrite "
                "whatever is there. If nothing on it is needed, give discard_local_data: true; nothing was changed"
            )
        return False
    if state == "unknown":
        if create or discard_local_data:
            raise StateError(
                f"resource {name}: cannot tell whether {path} holds HAST metadata ({detail}); fix the provider "
                "and run again; nothing was changed"
            )
        return False
    if not discard_local_data:
        return False
    return _is_loser(name, peer, role, diverged)


def _is_loser(name, peer, role, diverged):
    """Return True when this copy is to be re-created (it diverged and the peer keeps the data); else refuse or False."""
    if not diverged:
        return False
    if (peer or {}).get("role") != "primary":
        raise StateError(
            f"refusing to discard the local data of {name}: the peer is not known to be primary, so this node "
            "may hold the only good copy; make the node whose data you keep primary first and pass its state "
            "as peer_role/peer_resources; nothing was changed"
        )
    if role not in (None, "init", "secondary"):
        raise StateError(
            f"refusing to discard the local data of {name} and make it {role}: the discarded node can only "
            "resynchronise as secondary; nothing was changed"
        )
    return True


def plan_role(
    name, local, peer, role=None, *, create=False, discard_local_data=False, allow_split_brain=False, config=None
):
    """Return {"steps", "before", "after", "warnings", "verify_role"} for one resource; refuse before any change.

    local: this node's hast_info view of the resource plus hastd_running; peer: the peer's view
    (at least {"role"}) or None when unknown; role: init|primary|secondary or None (create only).
    Steps are hastctl argv tails; create runs only where metadata is absent, or where it is
    invalid/foreign or this node is the split-brain loser and discard_local_data is true.
    verify_role is the role hastd must report after the steps (None when no role step runs).
    """
    _check_reachable(name, local, role)
    warnings = []
    current = local.get("role")
    diverged = _diverged(local, peer)
    split = diverged + _log_evidence(local, peer)
    peer_primary = (peer or {}).get("role") == "primary" and "both nodes are primary" not in diverged
    evidence = ["the peer is primary for it"] * peer_primary + split
    if role == "primary":
        if evidence and not allow_split_brain:
            advice = (
                "Both copies changed since the last sync, so one must be given up: make the node whose writes are "
                "lost secondary with discard_local_data: true while the other stays primary"
                if split
                else "Two primaries would split the data: make this node secondary (it resynchronises from the "
                "peer), or demote the peer first"
            )
            raise StateError(
                f"refusing to make {name} primary: {'; '.join(evidence)}. {advice}. allow_split_brain: true "
                "overrides this; nothing was changed"
            )
        if evidence:
            warnings.append(f"{name}: promoted despite split-brain evidence: {'; '.join(evidence)}")
        if peer is None:
            warnings.append(f"{name}: the peer's role was not given, so a primary peer cannot be ruled out")
    if local.get("bug_292322", {}).get("suspected"):
        warnings.append(
            f"{name}: symptoms of FreeBSD bug 292322 (hastd fails to hand the connection to its worker on "
            f"FreeBSD 15+, the primary stays degraded): {BUG_292322_URL}"
        )
    recreate = _metadata_plan(
        name, local, peer, role, create=create, discard_local_data=discard_local_data, diverged=diverged
    )
    if discard_local_data and not recreate and (local.get("metadata") or {}).get("state") == "present":
        warnings.append(
            f"{name}: discard_local_data given, but neither the counters nor the roles show that this copy lost a "
            "split brain (give the peer's hast_info resources as peer_resources to compare counters); kept"
        )
    final = role or current
    if recreate and final == "primary" and (local.get("metadata") or {}).get("state") == "present":
        raise StateError(
            f"refusing to re-create the metadata of {name} and bring it back as primary: fresh metadata holds no "
            "data the peer lacks, it can only resynchronise as secondary; give role: secondary; nothing was changed"
        )
    steps = []
    if recreate:
        if current not in ("init", None):
            steps.append(build_role_argv("init", [name], config))
        steps.append(build_create_argv(name, config))
        if final not in ("init", None):
            steps.append(build_role_argv(final, [name], config))
    elif role and role != current:
        steps.append(build_role_argv(role, [name], config))
    before, after = {}, {}
    if final != current and final is not None:
        before["role"], after["role"] = current, final
    if recreate:
        before["metadata"] = (local.get("metadata") or {}).get("state", "unknown")
        after["metadata"] = "created"
    verify = final if any(step[0] == "role" for step in steps) else None
    return {"steps": steps, "before": before, "after": after, "warnings": warnings, "verify_role": verify}
