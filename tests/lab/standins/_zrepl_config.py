"""zrepl.yml parsing and validation for the lab zrepl stand-in (upstream zrepl v0.7 schema).

The schema below mirrors the Go structs of zrepl's internal/config package: a key without
`optional`/`default` is required (yaml-config reports a zero value), unknown keys are refused
with the Go type name, and the enum structs pick their type by the `type` key. Errors are
worded as zrepl prints them: yaml-config "unmarshal errors" are collected, errors returned by
custom unmarshalers (grid, durations, cron) abort at once; job-building checks come after.
"""

from __future__ import annotations

import glob
import ipaddress
import os
import re

import yaml

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DEFAULT_PATHS = ["/etc/zrepl/zrepl.yml", "/usr/local/etc/zrepl/zrepl.yml"]
# Struct schemas in a compact notation: `key` (required string), `key?` (optional: yaml-config's
# `optional`/`default`/`fromdefaults` tags), `key:kind` with kind str, int, uint16, bool, dur (Go
# time.Duration), pdur (zrepl duration), pdur_or_manual, grid, cron, bits, hostport, facility,
# filter (map[string]bool), strmap, `@Struct`, `%enum` (by `type`) and `[]kind` for lists.
ACTIVE = "type name connect:%connect pruning:@PruningSenderReceiver replication?:@Replication conflict_resolution?:@ConflictResolution"
LOG = "type level format"
HOOK = "type err_is_fatal?:bool timeout?:dur"
SEND_FLAGS = "encrypted raw send_properties backup_properties large_blocks compressed embedded_data saved"
STRUCTS = {
    "Config": "jobs?:[]%job global?:@Global include?:[]str",
    "Global": "logging?:[]%logging monitoring?:[]%monitoring control?:@GlobalControl serve?:@GlobalServe",
    "GlobalControl": "sockpath?",
    "GlobalServe": "stdinserver?:@GlobalStdinServer",
    "GlobalStdinServer": "sockdir?",
    "PushJob": f"{ACTIVE} snapshotting:%snapshotting filesystems:filter send?:@SendOptions",
    "PullJob": f"{ACTIVE} root_fs interval:pdur_or_manual recv?:@RecvOptions",
    "SinkJob": "type name serve:%serve root_fs recv?:@RecvOptions",
    "SourceJob": "type name serve:%serve snapshotting:%snapshotting filesystems:filter send?:@SendOptions",
    "SnapJob": "type name pruning:@PruningLocal snapshotting:%snapshotting filesystems:filter",
    "ConflictResolution": "initial_replication?",
    "Replication": "protection?:@ReplicationOptionsProtection concurrency?:@ReplicationOptionsConcurrency",
    "ReplicationOptionsProtection": "initial? incremental?",
    "ReplicationOptionsConcurrency": "steps?:int size_estimates?:int",
    "SendOptions": " ".join(f"{k}?:bool" for k in SEND_FLAGS.split()) + " bandwidth_limit?:@BandwidthLimit",
    "RecvOptions": "properties?:@PropertyRecvOptions bandwidth_limit?:@BandwidthLimit placeholder?:@PlaceholderRecvOptions",
    "BandwidthLimit": "max?:bits bucket_capacity?:bits",
    "PropertyRecvOptions": "inherit?:[]str override?:strmap",
    "PlaceholderRecvOptions": "encryption?",
    "TCPConnect": "type address:hostport dial_timeout?:dur",
    "TLSConnect": "type address:hostport ca cert key server_cn dial_timeout?:dur",
    "SSHStdinserverConnect": "type host user port:uint16 identity_file transport_open_command?:[]str ssh_command? "
    "options?:[]str dial_timeout?:dur",
    "LocalConnect": "type listener_name client_identity dial_timeout?:dur",
    "TCPServe": "type listen:hostport listen_freebind?:bool clients:strmap",
    "TLSServe": "type listen:hostport listen_freebind?:bool ca cert key client_cns:[]str handshake_timeout?:dur",
    "StdinserverServer": "type client_identities:[]str",
    "LocalServe": "type listener_name",
    "PruneKeepNotReplicated": "type keep_snapshot_at_cursor?:bool",
    "PruneKeepLastN": "type count:int regex?",
    "PruneGrid": "type grid:grid regex",
    "PruneKeepRegex": "type regex negate?:bool",
    "PruningSenderReceiver": "keep_sender:[]%prune keep_receiver:[]%prune",
    "PruningLocal": "keep:[]%prune",
    "SnapshottingPeriodic": "type prefix interval:pdur hooks?:[]%hook timestamp_format? timestamp_location?",
    "SnapshottingCron": "type prefix cron:cron hooks?:[]%hook timestamp_format? timestamp_location?",
    "SnapshottingManual": "type",
    "StdoutLoggingOutlet": f"{LOG} time?:bool color?:bool",
    "SyslogLoggingOutlet": f"{LOG} facility?:facility retry_interval?:dur",
    "TCPLoggingOutlet": f"{LOG} address:hostport net? retry_interval?:dur tls?:@TCPLoggingOutletTLS",
    "TCPLoggingOutletTLS": "ca cert key",
    "PrometheusMonitoring": "type listen:hostport listen_freebind?:bool",
    "HookCommand": f"{HOOK} path filesystems?:filter",
    "HookPostgresCheckpoint": f"{HOOK} dsn filesystems:filter",
    "HookMySQLLockTables": f"{HOOK} dsn filesystems:filter",
}


def schema(name: str) -> dict:
    """{key: (kind, required)} of a struct."""
    out = {}
    for item in STRUCTS[name].split():
        key, _, kind = item.partition(":")
        out[key.rstrip("?")] = (kind or "str", not key.endswith("?"))
    return out


ENUMS = {
    "job": {"snap": "SnapJob", "push": "PushJob", "sink": "SinkJob", "pull": "PullJob", "source": "SourceJob"},
    "connect": {
        "tcp": "TCPConnect",
        "tls": "TLSConnect",
        "ssh+stdinserver": "SSHStdinserverConnect",
        "local": "LocalConnect",
    },
    "serve": {"tcp": "TCPServe", "tls": "TLSServe", "stdinserver": "StdinserverServer", "local": "LocalServe"},
    "prune": {
        "not_replicated": "PruneKeepNotReplicated",
        "last_n": "PruneKeepLastN",
        "grid": "PruneGrid",
        "regex": "PruneKeepRegex",
    },
    "snapshotting": {"periodic": "SnapshottingPeriodic", "manual": "SnapshottingManual", "cron": "SnapshottingCron"},
    "logging": {"stdout": "StdoutLoggingOutlet", "syslog": "SyslogLoggingOutlet", "tcp": "TCPLoggingOutlet"},
    "monitoring": {"prometheus": "PrometheusMonitoring"},
    "hook": {
        "command": "HookCommand",
        "postgres-checkpoint": "HookPostgresCheckpoint",
        "mysql-lock-tables": "HookMySQLLockTables",
    },
}
DEFAULTS = {
    "sockpath": "/var/run/zrepl/control",
    "sockdir": "/var/run/zrepl/stdinserver",
    "initial_replication": "most_recent",
    "initial": "guarantee_resumability",
    "incremental": "guarantee_resumability",
    "steps": 1,
    "size_estimates": 4,
    "encryption": "unspecified",
    "keep_snapshot_at_cursor": True,
    "timestamp_format": "dense",
    "timestamp_location": "UTC",
}
BOOL_TRUE = {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"}
BOOL_FALSE = {"n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"}
DURATION_RE = re.compile(r"^\s*([\+-]?\d+)\s*(|s|m|h|d|w)\s*$")
UNIT = {"": 0, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
GO_DUR_RE = re.compile(r"^[+-]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")
GRID_RE = re.compile(r"^\s*(\d+)\s*x\s*([^\(]+)\s*(\((.*)\))?\s*$")
FACILITIES = {"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp"}
FACILITIES |= {f"local{i}" for i in range(8)}


class ConfigError(Exception):
    """A parse error (`could not parse config: ...`)."""


class BuildError(Exception):
    """A job-building error (`cannot build jobs from config: ...`)."""


class Fatal(Exception):
    pass


def parse_duration(text: str) -> int:
    """Seconds of a zrepl duration (`10m`, `1d`); raises ValueError with zrepl's message."""
    m = DURATION_RE.match(text)
    if not m:
        raise ValueError(r"must match ^\s*([\+-]?\d+)\s*(|s|m|h|d|w)\s*$")
    if m.group(2) == "" and int(m.group(1)) != 0:
        raise ValueError("missing time unit")
    return int(m.group(1)) * UNIT[m.group(2)]


def go_duration(seconds: int) -> str:
    """Format seconds like Go's time.Duration.String()."""
    sign, s = ("-", -seconds) if seconds < 0 else ("", seconds)
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return sign + (f"{h}h{m}m{sec}s" if h else f"{m}m{sec}s" if m else f"{sec}s")


def parse_grid(spec: str) -> list:
    """[(seconds, keep_count or -1 for all)] per interval, or ValueError with zrepl's text."""
    parts = spec.split("|")
    out = []
    for i, part in enumerate(parts, 1):
        try:
            m = GRID_RE.match(part)
            if not m:
                raise ValueError("retention string does not match expected format")
            if int(m.group(1)) <= 0:
                raise ValueError("contains factor <= 0")
            length = parse_duration(m.group(2))
            if length <= 0:
                raise ValueError("duration must be positive integer")
            keep = 1
            if m.group(3):
                km = re.match(r"^\s*keep=(.+)\s*$", m.group(4))
                if not km:
                    raise ValueError("interval parameter contains unknown parameters")
                if km.group(1) == "all":
                    keep = -1
                elif re.fullmatch(r"[+-]?\d+", km.group(1)):
                    keep = int(km.group(1))
                else:
                    raise ValueError("cannot parse keep_count value")
            out += [(length, keep)] * int(m.group(1))
        except ValueError as exc:
            raise Fatal(f"cannot parse interval {i} of {len(parts)}: {exc}: {part.strip()}") from None
    return out


CRON_NAMES = {
    "jan": 1,
    "feb": 2,
    "mar": 3,
    "apr": 4,
    "may": 5,
    "jun": 6,
    "jul": 7,
    "aug": 8,
    "sep": 9,
    "oct": 10,
    "nov": 11,
    "dec": 12,
    "sun": 0,
    "mon": 1,
    "tue": 2,
    "wed": 3,
    "thu": 4,
    "fri": 5,
    "sat": 6,
}


def parse_cron(spec: str) -> list:
    """Parse `[sec] min hour dom month dow` into sets of allowed values (robfig/cron rules)."""
    if spec.startswith("@"):
        raise Fatal(f"cron syntax invalid: parser does not accept descriptors: {spec}")
    fields = spec.split()
    if len(fields) not in (5, 6):
        raise Fatal(f"cron syntax invalid: expected 5 to 6 fields, found {len(fields)}: [{' '.join(fields)}]")
    if len(fields) == 5:
        fields = ["0", *fields]
    bounds = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]
    out = []
    for field, (lo, hi) in zip(fields, bounds):
        allowed = set()
        for part in field.split(","):
            rng, _, step = part.partition("/")
            try:
                step_n = int(step) if step else 1
                if rng in ("*", "?"):
                    a, b = lo, hi
                else:
                    a_s, _, b_s = rng.partition("-")
                    a = CRON_NAMES.get(a_s.lower(), None)
                    a = int(a_s) if a is None else a
                    b = (CRON_NAMES.get(b_s.lower()) or int(b_s)) if b_s else (hi if step else a)
            except ValueError:
                raise Fatal(f"cron syntax invalid: failed to parse int from {rng}") from None
            if a < lo or b > hi or a > b or step_n <= 0:
                raise Fatal(
                    f"cron syntax invalid: end of range ({b}) above maximum ({hi}): {part}"
                    if b > hi
                    else f"cron syntax invalid: beginning of range ({a}) below minimum ({lo}): {part}"
                )
            allowed |= set(range(a, b + 1, step_n))
        out.append(allowed)
    return out


class Parser:
    def __init__(self):
        self.errors: list[str] = []

    def err(self, node, msg: str) -> None:
        self.errors.append(f"line {node.start_mark.line + 1}: {msg}" if node is not None else msg)

    def struct(self, node, name: str):
        if not isinstance(node, yaml.MappingNode):
            self.err(node, f"cannot unmarshal !!{node.tag.rsplit(':', 1)[-1]} into config.{name}")
            return None
        fields = schema(name)
        out, seen = {}, set()
        for knode, vnode in node.value:
            key = knode.value
            if key in seen:
                self.err(knode, f'key "{key}" already set in map')
            seen.add(key)
            if key not in fields:
                self.err(knode, f"field {key} not found in type config.{name}")
                continue
            out[key] = self.value(vnode, fields[key][0], key)
        for key, (_spec, req) in fields.items():
            if key not in out or out[key] in (None, "", 0, [], {}):
                if req and (key not in out or out[key] is not None):
                    self.err(node, f"field {key} is required but has zero value")
                if key in DEFAULTS and key not in out:
                    out[key] = DEFAULTS[key]
        return out

    def enum(self, node, kind: str):
        if not isinstance(node, yaml.MappingNode):
            self.err(node, f"cannot unmarshal !!{node.tag.rsplit(':', 1)[-1]} into struct {{ Type string }}")
            return None
        typ = next((v.value for k, v in node.value if k.value == "type"), "")
        if typ == "":
            self.errors.append("must specify type")
            return None
        if typ not in ENUMS[kind]:
            self.errors.append(f'invalid type name "{typ}"')
            return None
        return self.struct(node, ENUMS[kind][typ])

    def value(self, node, spec: str, key: str):
        if spec.startswith("@"):
            return self.struct(node, spec[1:])
        if spec.startswith("%"):
            return self.enum(node, spec[1:])
        if spec.startswith("[]"):
            if not isinstance(node, yaml.SequenceNode):
                self.err(node, f"cannot unmarshal !!{node.tag.rsplit(':', 1)[-1]} into {spec}")
                return []
            return [self.value(n, spec[2:], key) for n in node.value]
        if spec in ("filter", "strmap"):
            if not isinstance(node, yaml.MappingNode):
                self.err(node, f"cannot unmarshal !!{node.tag.rsplit(':', 1)[-1]} into map[string]string")
                return {}
            return {k.value: self.value(v, "bool" if spec == "filter" else "str", key) for k, v in node.value}
        if not isinstance(node, yaml.ScalarNode):
            self.err(node, f"cannot unmarshal !!{node.tag.rsplit(':', 1)[-1]} into {spec}")
            return None
        text = node.value
        if spec in ("str", "hostport"):
            if spec == "hostport" and text and not re.match(r"^(\[[^\]]*\]|[^:\[\]]*):\d+$", text):
                self.err(node, f"field {key}: address {text}: missing port in address")
            return text
        if spec == "bool":
            if text in BOOL_TRUE | BOOL_FALSE:
                return text in BOOL_TRUE
            self.err(node, f"cannot unmarshal !!str `{text}` into bool")
            return None
        if spec in ("int", "uint16"):
            if re.fullmatch(r"[+-]?\d+", text) and (spec == "int" or 0 <= int(text) < 65536):
                return int(text)
            self.err(node, f"cannot unmarshal !!str `{text}` into {spec}")
            return None
        if spec == "dur":
            if GO_DUR_RE.match(text):
                return text
            self.err(node, f"cannot unmarshal !!str `{text}` into time.Duration")
            return None
        if spec in ("pdur", "pdur_or_manual"):
            if spec == "pdur_or_manual" and text == "manual":
                return "manual"
            if text == "" and spec == "pdur_or_manual":
                raise Fatal("value must not be empty")
            try:
                seconds = parse_duration(text)
            except ValueError as exc:
                if spec == "pdur":
                    self.errors.append(f'cannot parse value "{text}": {exc}')
                    return None
                raise Fatal(str(exc)) from None
            if seconds <= 0:
                raise Fatal(
                    f"duration must be positive, got {go_duration(seconds)}"
                    if spec == "pdur"
                    else "duration must be positive integer"
                )
            return seconds
        if spec == "grid":
            return parse_grid(text)
        if spec == "cron":
            parse_cron(text)
            return text
        if spec == "facility":
            if text not in FACILITIES:
                raise Fatal(f'invalid syslog level: "{text}"')
            return text
        if spec == "bits":
            if not re.fullmatch(r"\s*-?\d+(\.\d+)?\s*([KMGTPE]i?)?[Bb]\s*", text):
                raise Fatal(f"cannot parse data size {text!r}")
            return text
        raise AssertionError(spec)


def parse_text(text: str):
    """Parse one YAML document into the config dict; raise ConfigError with zrepl's wording."""
    try:
        node = yaml.compose(text, Loader=Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"yaml: line {mark.line + 1}: {problem}" if mark else f"yaml: {problem}") from None
    parser = Parser()
    try:
        cfg = parser.struct(node, "Config") if node is not None else None
    except Fatal as exc:
        raise ConfigError(str(exc)) from None
    if parser.errors:
        raise ConfigError("yaml: unmarshal errors:\n  " + "\n  ".join(parser.errors))
    cfg = cfg or parser.struct(yaml.compose("{}", Loader=Loader), "Config")
    cfg["global"] = cfg.get("global") or parser.struct(yaml.compose("{}", Loader=Loader), "Global")
    cfg["global"]["control"] = cfg["global"].get("control") or {"sockpath": DEFAULTS["sockpath"]}
    serve = cfg["global"]["serve"] = cfg["global"].get("serve") or {}
    serve["stdinserver"] = serve.get("stdinserver") or {"sockdir": DEFAULTS["sockdir"]}
    cfg["jobs"] = cfg.get("jobs") or []
    return cfg


def load(path: str | None, root=lambda p: p):
    """ParseConfig: default locations, includes, job-name validation."""
    if not path:
        for candidate in DEFAULT_PATHS:
            if os.path.exists(root(candidate)):
                if not os.path.isfile(root(candidate)):
                    raise ConfigError(f"file at default location is not a regular file: {candidate}")
                path = candidate
                break
    if not path:
        raise ConfigError("open : no such file or directory")
    try:
        with open(root(path)) as fh:
            cfg = parse_text(fh.read())
    except OSError as exc:
        raise ConfigError(f"open {path or ''}: {exc.strerror.lower()}") from None
    for inc in cfg.get("include") or []:
        full = inc if os.path.isabs(path) else os.path.join(os.path.dirname(path), inc)
        if not os.path.exists(root(full)):
            raise ConfigError(f'stat path "{full}": stat {full}: no such file or directory')
        if os.path.isdir(root(full)):
            files = sorted(p[len(root("")) :] for p in glob.glob(root(full) + "/*.yml"))
        elif not full.endswith(".yml"):
            raise ConfigError(f"include config files must end with `.yml`: {full}")
        else:
            files = [full]
        for f in files:
            with open(root(f)) as fh:
                sub = parse_text(fh.read())
            if sub.get("include"):
                raise ConfigError(f"included configuration files must not include other files: {f}")
            cfg["jobs"] += sub["jobs"]
    seen = set()
    for job in cfg["jobs"]:
        if job["name"].startswith("_"):
            raise ConfigError(f'job name "{job["name"]}" is reserved for internal use (starts with _)')
        if job["name"] in seen:
            raise ConfigError(f'duplicate job name "{job["name"]}"')
        seen.add(job["name"])
    return cfg


def _rules(rules: list, what: str) -> None:
    for i, rule in enumerate(rules):
        try:
            if rule["type"] in ("grid", "regex") or rule.get("regex"):
                re.compile(rule["regex"])
            if rule["type"] == "last_n" and rule["count"] <= 0:
                raise ValueError(f"must specify positive number as 'keep last count', got {rule['count']}")
            if rule["type"] == "grid":
                last = 0
                for j, (length, _keep) in enumerate(rule["grid"]):
                    if length < last and not all(k == -1 for _, k in rule["grid"][:j]):
                        raise ValueError("retention grid interval length must be monotonically increasing")
                    last = length
        except re.error as exc:
            raise BuildError(f"{what}: cannot build rule #{i}: Regex is invalid: error parsing regexp: {exc}") from None
        except ValueError as exc:
            raise BuildError(f"{what}: cannot build rule #{i}: {exc}") from None


def _files(spec: dict, where: str, skip_cert_check: bool, root) -> None:
    if spec["type"] != "tls" or skip_cert_check:
        return
    for key in ("ca", "cert", "key"):
        if not os.path.exists(root(spec[key])):
            raise BuildError(f"{where}: cannot parse {key} file: open {spec[key]}: no such file or directory")


def build_jobs(cfg: dict, skip_cert_check: bool = False, root=lambda p: p) -> None:
    """JobsFromConfig: the checks zrepl makes while building jobs; raises BuildError."""
    roots = []
    for job in cfg["jobs"]:
        try:
            if not re.fullmatch(r"[A-Za-z0-9_.: -]+", job["name"]):
                raise BuildError(
                    "invalid job name: must be usable as a dataset path component: "
                    f"invalid character in '{job['name']}'"
                )
            typ = job["type"]
            if typ in ("push", "pull"):
                _files(job["connect"], "cannot build client", skip_cert_check, root)
                _rules(job["pruning"]["keep_receiver"], "cannot build receiver pruning rules")
                _rules(job["pruning"]["keep_sender"], "cannot build sender pruning rules")
                repl = job.get("replication") or {}
                for key, value in (repl.get("protection") or {}).items():
                    if value not in ("guarantee_resumability", "guarantee_incremental", "guarantee_nothing"):
                        raise BuildError(f"field `replication`: {key}: invalid replication guarantee kind {value!r}")
                conflict = (job.get("conflict_resolution") or {}).get("initial_replication", "most_recent")
                if conflict not in ("most_recent", "all", "fail"):
                    raise BuildError(f"field `conflict_resolution`: invalid initial_replication value {conflict!r}")
            if typ in ("sink", "source"):
                _files(job["serve"], "cannot build listener factory", skip_cert_check, root)
                for ident in (job["serve"].get("clients") or {}).values():
                    if not re.fullmatch(r"[A-Za-z0-9_.:*-]+", ident):
                        raise BuildError(f"cannot build listener factory: invalid client identity {ident!r}")
            if typ == "snap":
                _rules(job["pruning"]["keep"], "cannot build pruning rules")
                if any(r["type"] == "not_replicated" for r in job["pruning"]["keep"]):
                    raise BuildError("single-site pruner cannot support `not_replicated` keep rule")
            if typ in ("sink", "pull"):
                enc = ((job.get("recv") or {}).get("placeholder") or {}).get("encryption", "unspecified")
                if enc not in ("unspecified", "inherit", "off"):
                    raise BuildError(f'cannot build receiver config: placeholder encryption "{enc}" is invalid')
                roots.append(job["root_fs"])
        except BuildError as exc:
            raise BuildError(f'cannot build job "{job["name"]}": {exc}') from None
    roots = sorted(r + "/" for r in roots)
    if any(b.startswith(a) for a, b in zip(roots, roots[1:])):
        raise BuildError("receiving jobs with overlapping root filesystems are forbidden")


def filter_match(flt: dict, ds: str) -> bool:
    """zrepl's DatasetMapFilter: the most specific pattern wins; exact beats `<` subtree."""
    best, result = None, False
    for pattern, value in flt.items():
        subtree = pattern.endswith("<")
        base = pattern[:-1].rstrip("/") if subtree else pattern
        if (subtree and (base in ("", ds) or ds.startswith(base + "/"))) or (not subtree and ds == base):
            rank = (len(base.split("/")) if base else 0, not subtree)
            if best is None or rank > best:
                best, result = rank, bool(value)
    return result


def client_identity(clients: dict, ip: str) -> str | None:
    """Map a peer address to its identity via a tcp serve `clients` map (CIDR, `*` = address)."""
    for net, ident in clients.items():
        try:
            if ipaddress.ip_address(ip) in ipaddress.ip_network(net, strict=False):
                return ident.replace("*", ip)
        except ValueError:
            continue
    return None
