"""Shared code of the lab hastd/hastctl stand-ins: hast.conf(5) parser, provider metadata, log lines.

Facts follow FreeBSD sbin/hastd (parse.y, token.l, metadata.c, subr.c, pjdlog.c); see
docs/lab_standin_hast.md. Paths go through _fbsdlab.root() so FBSD_LAB_ROOT=dir acts as a node.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import socket
import sys
import uuid

sys.path[:0] = [os.path.dirname(os.path.realpath(__file__)), "/usr/local/libexec/fbsd-lab"]
import _fbsdlab as lab  # noqa: E402

CONFIG = "/etc/hast.conf"
CONTROL = "uds:///var/run/hastctl"
PIDFILE = "/var/run/hastd.pid"
PORT = 8457
METADATA_SIZE = 4096
SECTOR = 512
EXTENTSIZE = 2 * 1024 * 1024
KEEPDIRTY = 64
MAGIC = b"HASTLAB1\n"  # the real header is an nv(9)-style list; the lab stores JSON after a magic line
EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_UNAVAILABLE, EX_SOFTWARE, EX_OSERR = 64, 65, 66, 69, 70, 71
EX_OSFILE, EX_IOERR, EX_TEMPFAIL, EX_CONFIG = 72, 74, 75, 78
KEYWORDS = set(
    "control pidfile listen replication checksum compression timeout exec metaflush resource name local remote"
    " source on off fullsync memsync async none crc32 sha256 hole lzf".split()
)
CHOICES = {
    "replication": ("fullsync", "memsync", "async"),
    "checksum": ("none", "crc32", "sha256"),
    "compression": ("none", "hole", "lzf"),
}
TOP_LEVEL = ("control", "pidfile", "listen", *CHOICES, "timeout", "exec", "metaflush", "on", "resource")
NODE_KEYS = {"name": "provname", "local": "localpath", "remote": "remoteaddr", "source": "sourceaddr"}
WORD = re.compile(r"[a-zA-Z0-9.\-_/:\[\]]+")


class HastError(Exception):
    """A pjdlog-style message (without the [LEVEL] tag) and the exit status it comes with."""

    def __init__(self, msg: str, code: int = EX_CONFIG):
        super().__init__(msg)
        self.code = code


# strerror(3) texts where FreeBSD's differ from glibc's.
FREEBSD_STRERROR = {
    errno.ENOTCONN: "Socket is not connected",
    errno.ETIMEDOUT: "Operation timed out",
    errno.ENXIO: "Device not configured",
    errno.EWOULDBLOCK: "Resource temporarily unavailable",
}


def errno_msg(msg: str, error: OSError | int) -> str:
    """pjdlog_errno(): the message followed by ': <strerror>.'."""
    number = error if isinstance(error, int) else error.errno
    return f"{msg}: {FREEBSD_STRERROR.get(number) or os.strerror(number)}."


def std_line(level: str, msg: str, prefix: str = "") -> str:
    """pjdlog in standard (stderr/stdout) mode: '[ERROR] [res] message'."""
    return f"[{level}] {prefix}{msg}"


def humanize(value: int) -> str:
    """printf %NB as hastctl prints it: 0B, 512B, 2.0MB, 64MB."""
    if value < 1024:
        return f"{value}B"
    scaled, unit = float(value), 0
    while scaled >= 1024 and unit < 6:
        scaled, unit = scaled / 1024, unit + 1
    text = f"{scaled:.1f}" if scaled < 9.95 else f"{scaled:.0f}"
    return f"{text}{'BKMGTPE'[unit]}B"


def expand_number(text: str) -> int:
    """expand_number(3): digits with an optional k/m/g/t/p/e suffix (powers of 1024)."""
    m = re.fullmatch(r"(\d+)([kmgtpeKMGTPE]?)[bB]?", text)
    if not m:
        raise ValueError(text)
    return int(m.group(1)) * 1024 ** (" kmgtpe".index(m.group(2).lower() or " "))


# ---- node identity (isitme(): hostname, its first component, kern.hostuuid, hostid<kern.hostid>) ----


def hostname() -> str:
    return lab.node_info()["name"] if os.environ.get("FBSD_LAB_ROOT") else socket.gethostname()


def host_uuid() -> str:
    try:
        with open(lab.root("/etc/hostid")) as fh:
            return fh.read().strip()
    except OSError:
        return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{hostname()}.fbsd-lab"))


def node_names() -> list[str]:
    host = hostname()
    hostid = int.from_bytes(hashlib.md5(host_uuid().encode()).digest()[:4], "little")
    names = [host.split(".")[0]] if "." in host.strip(".") else []
    return [*names, host, host_uuid(), f"hostid{hostid}"]


def isitme(name: str) -> bool:
    names = node_names()
    return name in names[:-2] or name.lower() == names[-2].lower() or name == names[-1]


# ---- hast.conf(5) --------------------------------------------------------------------------------


def tokens(text: str):
    """token.l: keywords, NUM, STR, braces; '#' comments; unknown characters are echoed (flex ECHO)."""
    i, line = 0, 0
    while i < len(text):
        char = text[i]
        if char == "\n":
            line += 1
            i += 1
        elif char in " \t":
            i += 1
        elif char == "#":
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif char in "{}":
            yield char, char, line
            i += 1
        elif m := WORD.match(text, i):
            word = m.group()
            i = m.end()
            yield (word if word in KEYWORDS else "NUM" if word.isdigit() else "STR"), word, line
        else:
            sys.stdout.write(char)
            i += 1
    yield "EOF", "", line


class Parser:
    """parse.y as recursive descent: global -> on <node> -> resource <name> -> on <node>."""

    def __init__(self, text: str):
        self.toks = tokens(text)
        self.advance()

    def advance(self):
        self.kind, self.text, self.line = next(self.toks)

    def fail(self):
        raise HastError(f"Unable to parse configuration file at line {self.line} near '{self.text}': syntax error")

    def take(self, *kinds: str) -> str:
        if self.kind not in kinds:
            self.fail()
        text = self.text
        self.advance()
        return text

    def value(self, keyword: str):
        if keyword in CHOICES:
            return self.take(*CHOICES[keyword])
        if keyword == "metaflush":
            return self.take("on", "off") == "on"
        if keyword == "timeout":
            number = int(self.take("NUM"))
            if number <= 0:
                raise HastError("Negative or zero timeout.")
            return number
        if keyword == "remote":
            return self.take("STR", "none")
        return self.take("STR")

    def block(self, allowed: tuple, handle):
        self.take("{")
        while self.kind != "}":
            if self.kind not in allowed:
                self.fail()
            keyword = self.kind
            self.advance()
            handle(keyword)
        self.advance()

    def parse(self) -> dict:
        top = {
            "control": CONTROL,
            "pidfile": PIDFILE,
            "replication": "memsync",
            "checksum": "none",
            "compression": "hole",
            "timeout": 20,
            "exec": "",
            "metaflush": True,
        }
        mine: dict = {}
        listen: list = []
        resources: list = []
        while self.kind != "EOF":
            keyword = self.take(*TOP_LEVEL)
            if keyword == "listen":
                listen.append(self.value(keyword))
            elif keyword == "on":
                me = isitme(self.take("STR"))

                def node_entry(kw, me=me):
                    val = self.value(kw)
                    if me and kw == "listen":
                        listen.append(val)
                    elif me:
                        mine[kw] = val

                self.block(("control", "pidfile", "listen"), node_entry)
            elif keyword == "resource":
                resources.append(self.resource(resources))
            else:
                top[keyword] = self.value(keyword)
        for res in resources:
            for key in ("replication", "checksum", "compression", "timeout", "exec", "metaflush"):
                if res.get(key) is None:
                    res[key] = top[key]
        return {
            "control": mine.get("control", top["control"]),
            "pidfile": mine.get("pidfile", top["pidfile"]),
            "listen": listen or ["tcp4://0.0.0.0:8457", "tcp6://[::]:8457"],
            "resources": resources,
        }

    def resource(self, done: list) -> dict:
        name = self.take("STR")
        if any(r["name"] == name for r in done):
            raise HastError(f"Resource {name} configured more than once.")
        res: dict = {"name": name}
        level1: dict = {}
        found = []

        def node_entry(kw, me):
            val = self.value(kw)
            if me:
                res[NODE_KEYS.get(kw, kw)] = val

        def entry(kw):
            if kw == "on":
                me = isitme(self.take("STR"))
                found.append(me)
                self.block(("name", "local", "remote", "source", "metaflush"), lambda k: node_entry(k, me))
            elif kw in ("name", "local", "metaflush"):
                level1[kw] = self.value(kw)
            else:
                res[kw] = self.value(kw)

        self.block(
            ("replication", "checksum", "compression", "timeout", "exec", "metaflush", "name", "local", "on"), entry
        )
        if not any(found):
            raise HastError(
                f"No resource {name} configuration for this node (acceptable node names: {', '.join(node_names())})."
            )
        res.setdefault("provname", level1.get("name", name))
        if "localpath" not in res and "local" in level1:
            res["localpath"] = level1["local"]
        if "metaflush" not in res and "metaflush" in level1:
            res["metaflush"] = level1["metaflush"]
        if "remoteaddr" not in res:
            raise HastError(f"Remote address not configured for resource {name}.")
        if "localpath" not in res:
            raise HastError(f"Path to local component not configured for resource {name}.")
        return res


def parse_config(path: str) -> dict:
    """yy_config_parse(): the configuration of this node, or HastError (exit 72 unreadable, 78 invalid)."""
    try:
        with open(lab.root(path)) as fh:
            text = fh.read()
    except OSError as exc:
        raise HastError(errno_msg(f"Unable to open configuration file {path}", exc), EX_OSFILE) from None
    return Parser(text).parse()


def parse_addr(addr: str) -> tuple[str, int]:
    """tcp://host[:port], tcp4://, tcp6://[v6]:port or a bare address -> (host, port)."""
    rest = re.sub(r"^tcp[46]?://", "", addr)
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port = tail[1:]
    elif rest.count(":") == 1:
        host, port = rest.split(":")
    else:
        host, port = rest, ""
    return host.split("/")[0], int(port or PORT)


# ---- provider and metadata -------------------------------------------------------------------------


def provider_size(fd: int) -> int:
    return os.fstat(fd).st_size


def map_size(mediasize: int, extentsize: int) -> int:
    """activemap_calc_ondisk_size(): one bit per extent, rounded up to whole sectors."""
    extents = math.ceil((mediasize - METADATA_SIZE) / extentsize)
    return math.ceil(math.ceil(extents / 8) / SECTOR) * SECTOR


def open_provider(res: dict, write: bool) -> int:
    path = res["localpath"]
    try:
        fd = os.open(lab.root(path), os.O_RDWR if write else os.O_RDONLY)
    except OSError as exc:
        raise HastError(errno_msg(f"Unable to open {path}", exc), EX_NOINPUT) from None
    if not os.path.isfile(lab.root(path)):
        os.close(fd)
        raise HastError(f"{path} is neither GEOM provider nor regular file.", EX_NOINPUT)
    return fd


def metadata_read(fd: int, res: dict) -> dict:
    """metadata_read(): the header a `hastctl create` wrote, or HastError for a never-created provider."""
    block = os.pread(fd, METADATA_SIZE, 0)
    if len(block) != METADATA_SIZE:
        raise HastError(errno_msg("Unable to read metadata", errno.EIO), EX_NOINPUT)
    if not block.strip(b"\0"):  # an empty nv list: every field is missing (ENOENT), as on a fresh disk
        raise HastError(errno_msg(f"Unable to read metadata from {res['localpath']}", errno.ENOENT), EX_NOINPUT)
    try:
        if not block.startswith(MAGIC):
            raise ValueError
        md = json.loads(block[len(MAGIC) :].rstrip(b"\0"))
    except ValueError:
        raise HastError(
            errno_msg(f"Metadata read from {res['localpath']} is invalid", errno.EINVAL), EX_NOINPUT
        ) from None
    if md.get("resource") not in (None, res["name"]):
        raise HastError(f"Provider {res['localpath']} is not part of resource {res['name']}.", EX_NOINPUT)
    return md


def metadata_write(fd: int, md: dict) -> None:
    body = MAGIC + json.dumps(md, sort_keys=True).encode()
    os.pwrite(fd, body.ljust(METADATA_SIZE, b"\0"), 0)


def new_metadata(res: dict, mediasize: int, extentsize: int, keepdirty: int) -> tuple[dict, int]:
    """What create_one() stores: sizes, resuid 0, counters 0, prevrole init; returns (md, mapsize)."""
    size = map_size(mediasize, extentsize)
    md = {
        "resource": res["name"],
        "datasize": mediasize - METADATA_SIZE - size,
        "extentsize": extentsize,
        "keepdirty": keepdirty,
        "offset": METADATA_SIZE + size,
        "resuid": 0,
        "localcnt": 0,
        "remotecnt": 0,
        "prevrole": "init",
    }
    return md, size


def control_path(addr: str) -> str:
    """uds:///path, unix:///path or /path -> the socket file inside the node."""
    return lab.root(re.sub(r"^(uds|unix)://", "", addr))


def send_msg(sock: socket.socket, header: dict, data: bytes = b"") -> None:
    """One message of the lab wire protocol: 4-byte length, JSON header, then header['len'] bytes."""
    body = json.dumps(dict(header, len=len(data))).encode()
    sock.sendall(len(body).to_bytes(4, "big") + body + data)


def recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError(errno.ENOTCONN, os.strerror(errno.ENOTCONN))  # proto_recv() on EOF
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_msg(sock: socket.socket) -> tuple[dict, bytes]:
    header = json.loads(recv_exact(sock, int.from_bytes(recv_exact(sock, 4), "big")))
    return header, recv_exact(sock, header.get("len", 0))
