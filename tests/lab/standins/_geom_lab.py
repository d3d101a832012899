#!/usr/bin/python3
"""Shared code of the lab GEOM stand-ins (gmirror, ggatec, ggated, geomd) and the lab disk tool.

Installed twice: /usr/local/libexec/fbsd-lab/_geom_lab.py (imported) and /usr/local/sbin/fbsd-lab-disk
(`fbsd-lab-disk create NAME SIZE | list | devfs | boot`). Facts follow FreeBSD sys/geom/mirror/g_mirror.h
(metadata sector), sbin/ggate (gg.exports grammar) and lib/geom (humanize); see docs/lab_standin_geom.md.

Node layout: slices are sparse files /var/db/geom-disk/<name> (persistent, the node's "disks") with a symlink
/dev/<name>; /dev is made private to the node by an overlay (upper layer in /run, so it resets at boot like
devfs); geomd (the "kernel") serves /dev/mirror/<name> and /dev/ggate<N> from a FUSE file system at FS.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))
sys.path[:0] = [HERE, "/usr/local/libexec/fbsd-lab"]
import _fbsdlab as lab  # noqa: E402

DISKS = "/var/db/geom-disk"
RUN = "/var/run/fbsd-lab/geom"
SOCK = RUN + "/geomd.sock"
FS = RUN + "/dev"
SYNC_RATE = RUN + "/sync-rate"  # lab knob: rebuild speed in bytes/s (absent = as fast as possible)
SECTOR = 512
MAGIC = b"GEOM::MIRROR"
VERSION = 4
BALANCES = ["none", "round-robin", "load", "split", "prefer"]
DISK_FLAGS = [
    ("DIRTY", 1),
    ("HARDCODED", 0x10),
    ("INACTIVE", 8),
    ("SYNCHRONIZING", 2),
    ("FORCE_SYNC", 4),
    ("BROKEN", 0x20),
]
DISK_MASK = 0x4F  # flags stored on disk (G_MIRROR_DISK_FLAG_MASK)
NOAUTOSYNC, NOFAILSYNC = 1, 2
MIRROR_FLAGS = [("NOFAILSYNC", NOFAILSYNC), ("NOAUTOSYNC", NOAUTOSYNC)]
ACCESS = {"rw": "read-write", "ro": "read-only", "wo": "write-only"}
MISSING = {
    "label": "Can't get informations about",
    "clear": "Can't clear metadata on",
    "dump": "Can't read metadata from",
    "activate": "Cannot read metadata from",
}
GGATE_PORT = 3080
# struct g_mirror_metadata as mirror_metadata_encode() lays it out (little endian, MD5 over bytes 0..118)
MD_FORMAT = "<16sI16sIIBIIBIBQIQQQ16sQ"
MD_FIELDS = (
    "magic version name mid did all genid syncid priority slice balance mediasize sectorsize "
    "sync_offset mflags dflags provider provsize"
).split()
MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MNT_DETACH = 2, 4, 4096, 16384, 2


def encode_md(md: dict) -> bytes:
    values = [md.get(f, 0) for f in MD_FIELDS]
    values[0], values[2], values[16] = MAGIC, md["name"].encode(), md.get("provider", "").encode()
    values[1] = VERSION
    raw = struct.pack(MD_FORMAT, *values)
    return (raw + hashlib.md5(raw).digest()).ljust(SECTOR, b"\0")


def decode_md(sector: bytes) -> dict | None:
    """Decode a metadata sector (version 3/4 layout); None when it is not gmirror metadata or the hash fails."""
    if len(sector) < 135 or not sector.startswith(MAGIC):
        return None
    md = dict(zip(MD_FIELDS, struct.unpack_from(MD_FORMAT, sector)))
    if md["version"] not in (3, 4) or hashlib.md5(sector[:119]).digest() != sector[119:135]:
        return None
    for key in ("magic", "name", "provider"):
        md[key] = md[key].rstrip(b"\0").decode(errors="replace")
    md["hash"] = sector[119:135].hex()
    return md


def dump_lines(md: dict) -> list[str]:
    """mirror_metadata_dump(): one right-aligned label per field, in the structure's order."""
    dflags = flag_names(md["dflags"], [DISK_FLAGS[i] for i in (0, 3, 4, 2)])
    values = dict(md, balance=BALANCES[md["balance"]], mflags=" ".join(flag_names(md["mflags"], MIRROR_FLAGS)))
    values.update(dflags=" ".join(dflags) or "NONE", mflags=values["mflags"] or "NONE")
    labels = {"sync_offset": "syncoffset", "provider": "hcprovider"}
    return [f"{labels.get(k, k):>10}: {values[k]}" for k in MD_FIELDS] + [f"  MD5 hash: {md['hash']}"]


def flag_names(value: int, table=DISK_FLAGS) -> list[str]:
    return [name for name, bit in table if value & bit]


def humanize(n: int) -> str:
    """humanize_number(buf, 5, n, "", HN_AUTOSCALE, HN_B | HN_NOSPACE | HN_DECIMAL) as geom(8) calls it."""
    quotient, remainder, i = n, 0, 0
    while (quotient >= 1000 or (quotient == 999 and remainder >= 512)) and i < 6:
        remainder, quotient, i = quotient % 1024, quotient // 1024, i + 1
    prefix = "BKMGTPE"[i]
    if i > 0 and ((quotient == 9 and remainder < 973) or quotient < 9):
        tenths = (remainder * 10 + 512) // 1024
        return f"{quotient + tenths // 10}.{tenths % 10}{prefix}"
    return f"{quotient + (remainder + 512) // 1024}{prefix}"


def parse_size(text: str) -> int:
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text.rstrip("KMGkmg")) * units[text[len(text.rstrip("KMGkmg")) :].upper()]


def klog(msg: str) -> None:
    """Append a kernel message to the node's syslog file, as the console log would show it."""
    syslog(f"kernel: {msg}")


def syslog(msg: str) -> None:
    path = lab.root("/var/log/messages")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as fh:
        fh.write(f"{time.strftime('%b %e %H:%M:%S')} {lab.node_info()['name']} {msg}\n")


# ---- gg.exports(5) ------------------------------------------------------------------------------


class ExportsError(Exception):
    pass


def parse_exports(text: str, resolve=socket.gethostbyname) -> list[dict]:
    """Parse gg.exports as ggated's exports_get()/line_parse() do; returns entries in lookup order.

    ggated inserts every line at the head of its list, so the last matching line of the file wins.
    Raises ExportsError with ggated's message for the first bad line.
    """
    entries = []
    for lineno, raw in enumerate(text.split("\n"), 1):
        if len(raw) + 1 > 2048:
            raise ExportsError(f"Line {lineno} too long.")
        line = raw.lstrip(" \t")
        if line in ("", "\n") or line.startswith("#"):
            continue
        words = [w for w in line.replace("\t", " ").split(" ") if w]
        if len(words) > 3:
            raise ExportsError(f"Too many arguments at line {lineno}. ")
        if len(words) < 3:
            raise ExportsError(f"Too few arguments at line {lineno}.")
        host, _, bits = words[0].partition("/")
        try:
            ip = struct.unpack("!I", socket.inet_aton(resolve(host)))[0]
        except (OSError, UnicodeError) as exc:
            raise ExportsError(f"Invalid IP/host name at line {lineno}.") from exc
        vmask = int(bits) if bits.isdigit() else (32 if not bits else -1)
        if not 0 <= vmask <= 32:
            raise ExportsError(f"Invalid IP mask value at line {lineno}.")
        flags = {"rd": "ro", "ro": "ro", "wo": "wo", "rw": "rw"}.get(words[1].lower())
        if flags is None:
            raise ExportsError(f"Invalid value in flags field at line {lineno}.")
        if len(words[2]) >= 1024:
            raise ExportsError(f"Path too long at line {lineno}. ")
        mask = (0xFFFFFFFF << (32 - vmask)) & 0xFFFFFFFF if vmask else 0
        entries.insert(0, {"ip": ip & mask, "mask": mask, "vmask": vmask, "flags": flags, "path": words[2]})
    if not entries:
        raise ExportsError("There are no objects to export.")
    return entries


def ip2str(ip: int) -> str:
    return socket.inet_ntoa(struct.pack("!I", ip))


# ---- the ggate wire protocol (lab-specific, one TCP connection) ---------------------------------
# client: JSON line {"path", "flags"}; server: JSON line {"error", "mediasize", "sectorsize"}; then
# requests struct REQ (cmd 1=read 2=write, offset, length [+ data]) and replies struct REP (errno, length [+ data]).
REQ, REP = struct.Struct("<BQI"), struct.Struct("<iI")


def recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise ConnectionError(errno.ECONNRESET, "Connection closed by peer")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv_line(sock: socket.socket) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError(errno.ECONNRESET, "Connection closed by peer")
        data += chunk
    return json.loads(data)


# ---- geomd control socket -------------------------------------------------------------------------


def call(op: str, spawn: bool = True, **args) -> dict | None:
    """Send one request to the node's geomd (starting it if needed); None when not running and spawn=False."""
    for attempt in range(100):
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(lab.root(SOCK))
                sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
                return recv_line(sock)
        except (FileNotFoundError, ConnectionRefusedError):
            if not spawn:
                return None
            if attempt == 0:
                start_geomd()
            time.sleep(0.05)
    raise SystemExit(f"geomd did not start (see {lab.root('/var/log/fbsd-lab/geomd.log')})")


def start_geomd() -> None:
    with lab.locked(lab.root(SOCK)):
        pid = lab.load_json(lab.root(RUN + "/geomd.json"), {})
        if lab.pid_alive(pid.get("pid", 0), pid.get("start")):
            return
        os.makedirs(lab.root("/var/log/fbsd-lab"), exist_ok=True)
        with open(lab.root("/var/log/fbsd-lab/geomd.log"), "ab") as log, open(os.devnull, "rb") as null:
            proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE if os.path.exists(f"{HERE}/geomd") else lab.LIB_DIR, "geomd")],
                stdin=null,
                stdout=log,
                stderr=log,
                start_new_session=True,
                cwd="/",
                close_fds=True,
            )
        lab.save_json(lab.root(RUN + "/geomd.json"), {"pid": proc.pid, "start": lab.proc_start_time(proc.pid)})


# ---- mounts and the node's private /dev -------------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    args = [
        source.encode(),
        target.encode(),
        fstype.encode() if fstype else None,
        ctypes.c_ulong(flags),
        data.encode() if data else None,
    ]
    if _libc.mount(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def umount(target: str) -> None:
    _libc.umount2(target.encode(), MNT_DETACH)


def mounts() -> list[tuple[str, str, str]]:
    """(mount point, fs type, source) of every mount this process sees."""
    result = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, right = line.split(" - ", 1)
            fstype, source = right.split()[:2]
            result.append((left.split()[4].replace("\\040", " "), fstype, source))
    return result


def ensure_devfs() -> None:
    """Make the node's /dev private (overlay with its upper layer in /run) and link every lab disk there."""
    if os.environ.get("FBSD_LAB_ROOT"):
        return
    with lab.locked(RUN + "/devfs"):
        make_devfs()
    for name in list_disks():
        link(f"{DISKS}/{name}", f"/dev/{name}")


def make_devfs() -> None:
    if not any(m[0] == "/dev" and m[2] == "fbsd-lab-dev" for m in mounts()):
        layers = RUN + "/devfs"
        for sub in ("upper", "work"):
            os.makedirs(f"{layers}/{sub}", exist_ok=True)
        old = os.open("/dev", os.O_PATH | os.O_DIRECTORY)
        subs = sorted(m[0] for m in mounts() if m[0].startswith("/dev/"))
        top = [s for s in subs if not any(s.startswith(p + "/") for p in subs if p != s)]
        mount("fbsd-lab-dev", "/dev", "overlay", 0, f"lowerdir=/dev,upperdir={layers}/upper,workdir={layers}/work")
        for sub in top:  # /dev/pts, /dev/shm, ... were submounts of the old /dev: bind them back in
            mount(f"/proc/self/fd/{old}/{sub[5:]}", sub, None, MS_BIND | MS_REC)
        os.close(old)


def link(target: str, path: str) -> None:
    if os.path.islink(lab.root(path)) and os.readlink(lab.root(path)) == target:
        return
    os.makedirs(os.path.dirname(lab.root(path)), exist_ok=True)
    if os.path.lexists(lab.root(path)):
        os.unlink(lab.root(path))
    os.symlink(target, lab.root(path))


def list_disks() -> list[str]:
    try:
        return sorted(n for n in os.listdir(lab.root(DISKS)) if not n.startswith("."))
    except FileNotFoundError:
        return []


def disk_path(name: str) -> str:
    return lab.root(f"{DISKS}/{name}")


def main(argv: list[str]) -> int:
    """fbsd-lab-disk: the lab's disk shelf (not a FreeBSD tool)."""
    lab.handle_lab_version(argv, "fbsd-lab-disk", "disks (slices) of a FreeBSD node for the GEOM stand-ins")
    verb = argv[1] if len(argv) > 1 else ""
    if verb == "create" and len(argv) == 4 and "/" not in argv[2]:
        os.makedirs(lab.root(DISKS), exist_ok=True)
        if os.path.exists(disk_path(argv[2])):
            lab.err(f"fbsd-lab-disk: {argv[2]} exists")
            return 1
        with open(disk_path(argv[2]), "wb") as fh:
            fh.truncate(parse_size(argv[3]))
    elif verb == "list":
        for name in list_disks():
            print(f"{name} {os.path.getsize(disk_path(name))}")
        return 0
    elif verb not in ("devfs", "boot"):
        lab.err("usage: fbsd-lab-disk create NAME SIZE[K|M|G] | list | devfs | boot")
        return 1
    ensure_devfs()
    loader = lab.read_rc_file(lab.root("/boot/loader.conf"))
    for module in ("geom_mirror", "geom_gate"):
        if verb == "boot" and lab.checkyesno(loader.get(f"{module}_load")):
            lab.kld_load(f"{module}.ko")
    if verb in ("create", "boot") and (lab.module_loaded("geom_mirror") or call("state", spawn=False)):
        call("taste", names=argv[2:3] or None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
