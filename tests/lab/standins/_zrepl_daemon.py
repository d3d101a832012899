"""The lab zrepl daemon: jobs, transports, replication, pruning and the control socket.

Replication moves real data with the node's `zfs send | zfs recv` (through the lab zfs wrapper,
so holds are listed by `zfs holds`). Endpoints follow zrepl's internal/endpoint package: the
sender places step holds `zrepl_STEP_J_<job>` while a step runs and records the replication
cursor after the step (zfs-fuse has no bookmarks: the cursor lives in
/var/db/fbsd-lab/zrepl/cursors.json); the receiver creates placeholders, applies recv property
overrides with `zfs set`/`zfs inherit` (zfs-fuse's recv has no -o/-x) and moves the hold
`zrepl_last_received_J_<job>` to the newest received snapshot. Transports exchange JSON lines
and length-prefixed stream chunks over ssh (via `zrepl stdinserver`), TCP or in-process (local).
"""

from __future__ import annotations

import faulthandler
import http.client
import http.server
import json
import os
import re
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time

import _fbsdlab as lab
import _zrepl_config as zc

ZFS = os.environ.get("FBSD_LAB_ZREPL_ZFS", "/usr/sbin/zfs")  # tests point it elsewhere
# Verbs the lab zfs wrapper adds to or records go through it; the rest run zfs-fuse's zfs
# directly, as the wrapper itself would (execv), only without its start-up cost.
WRAPPED = {"hold", "release", "holds", "destroy", "mount", "create"}
CURSORS = "/var/db/fbsd-lab/zrepl/cursors.json"
CRYPTO = "/var/db/fbsd-lab/zfs/crypto.json"  # the lab zfs wrapper's encryption records
ZERO = "0001-01-01T00:00:00Z"
MU = threading.RLock()
ACTIVE_CMDS: dict = {}
LISTENERS: dict = {}


class ZError(Exception):
    pass


def now_ns() -> int:
    return time.time_ns()


def gotime(ns: int | None) -> str:
    """Go's RFC3339Nano rendering of a time (zero time when unset)."""
    if not ns:
        return ZERO
    secs, frac = divmod(ns, 10**9)
    tm = time.localtime(secs)
    off = tm.tm_gmtoff
    zone = "Z" if off == 0 else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    nanos = f"{frac:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", tm) + (f".{nanos}" if nanos else "") + zone


def log(job: str, level: str, msg: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} [{level}][{job}]: {msg}", flush=True)


def zfs(*args: str, stdin=None, owner=None) -> str:
    """Run the node's zfs; raise ZError in zrepl's ZFSError wording on failure."""
    proc = zfs_popen(args, stdin=stdin, stdout=subprocess.PIPE, owner=owner)
    out, err = proc.communicate()
    zfs_done(proc)
    if proc.returncode != 0:
        raise ZError(f"zfs exited with error: exit status {proc.returncode}\nstderr:\n{err.decode()}")
    return out.decode()


def zfs_popen(args, owner=None, **kw) -> subprocess.Popen:
    real = lab.root("/run/fbsd-lab/host-sbin/zfs")
    direct = ZFS == "/usr/sbin/zfs" and os.path.exists(real) and args[0] not in WRAPPED
    direct = direct and "-w" not in args and "encryption" not in args
    proc = subprocess.Popen([real if direct else ZFS, *args], stderr=subprocess.PIPE, **kw)
    with MU:
        ACTIVE_CMDS[proc.pid] = {"Path": "zfs", "Args": ["zfs", *args], "StartedAt": gotime(now_ns())}
    if owner is not None:
        owner.procs.add(proc)
    return proc


def zfs_done(proc) -> None:
    with MU:
        ACTIVE_CMDS.pop(proc.pid, None)


def datasets() -> dict:
    """{dataset: is_placeholder} for every filesystem/volume of the node (placeholder = local on)."""
    out = {}
    for line in zfs("get", "-H", "-r", "-o", "name,value,source", "zrepl:placeholder").splitlines():
        name, value, source = line.split("\t")
        if "@" not in name:
            out[name] = value == "on" and source == "local"
    return out


def versions(fs: str) -> list:
    """Snapshots of fs, oldest first: {Name, Type, Guid, CreateTXG, Creation (epoch), UserRefs}."""
    names = [n for n in zfs("list", "-H", "-o", "name", "-t", "snapshot", "-r", fs).split() if n.split("@")[0] == fs]
    if not names:
        return []
    props: dict = {}
    for line in zfs("get", "-H", "-p", "-o", "name,property,value", "guid,createtxg,creation,userrefs", *names).split(
        "\n"
    )[:-1]:
        name, prop, value = line.split("\t")
        props.setdefault(name, {})[prop] = int(value)
    out = [
        {
            "Name": n.split("@")[1],
            "Type": "snapshot",
            "Guid": p["guid"],
            "CreateTXG": p["createtxg"],
            "Creation": p["creation"],
            "UserRefs": p.get("userrefs", 0),
        }
        for n, p in props.items()
    ]
    return sorted(out, key=lambda v: v["CreateTXG"])


def holds(fs: str, snaps: list, tag: str) -> list:
    """Names of the snapshots of fs (among snaps) that carry the hold tag."""
    held = [f"{fs}@{v['Name']}" for v in snaps if v["UserRefs"] > 0]
    if not held:
        return []
    out = zfs("holds", "-H", *held)
    return [line.split("\t")[0].split("@")[1] for line in out.splitlines() if line.split("\t")[1] == tag]


def hold(fs: str, snap: str, tag: str) -> None:
    try:
        zfs("hold", tag, f"{fs}@{snap}")
    except ZError as exc:
        if "tag already exists" not in str(exc):
            raise


def release_all(fs: str, tag: str, keep: str | None = None) -> None:
    for snap in holds(fs, versions(fs), tag):
        if snap != keep:
            zfs("release", tag, f"{fs}@{snap}")


def destroy(fs: str, names: list) -> dict:
    errors = {}
    for name in names:
        try:
            zfs("destroy", f"{fs}@{name}")
        except ZError as exc:
            errors[name] = str(exc).rsplit("\n", 2)[-2].rsplit(": ", 1)[-1] if "\n" in str(exc) else str(exc)
    return errors


# ---- endpoints ---------------------------------------------------------------------------


class Endpoint:
    procs: set

    def ping(self) -> str:
        return "pong"


class Sender(Endpoint):
    def __init__(self, job: dict):
        self.job, self.flt = job["name"], job["filesystems"]
        send = job.get("send") or {}
        self.flags = (["-w"] if send.get("encrypted") or send.get("raw") else []) + (
            ["-p"] if send.get("send_properties") or send.get("backup_properties") else []
        )
        self.encrypted, self.raw = bool(send.get("encrypted")), bool(send.get("raw"))
        self.procs: set = set()

    def check(self, fs: str) -> None:
        if not zc.filter_match(self.flt, fs):
            raise ZError(f"endpoint does not allow access to filesystem {fs}")

    def list_filesystems(self) -> list:
        return [
            {"Path": ds, "IsPlaceholder": ph} for ds, ph in sorted(datasets().items()) if zc.filter_match(self.flt, ds)
        ]

    def list_versions(self, fs: str) -> list:
        self.check(fs)
        return versions(fs)

    def cursor(self, fs: str):
        return lab.load_json(lab.root(CURSORS), {}).get(fs, {}).get(self.job, {}).get("guid")

    def validate(self, fs: str) -> None:
        """zfs.ZFSSendArgsUnvalidated.Validate's encryption checks (zrepl runs them in the dry send)."""
        self.check(fs)
        encrypted = zfs("get", "-H", "-o", "value", "encryption", fs).strip() != "off"
        if self.encrypted and not encrypted:
            raise ZError(
                f'validate send arguments: encrypted send mandated by policy, but filesystem "{fs}" is not encrypted'
            )
        if self.raw and encrypted and not self.encrypted:
            raise ZError(
                f'validate send arguments: policy mandates raw+unencrypted sends, but filesystem "{fs}" is encrypted'
            )

    def send(self, fs: str, frm: str | None, to: str, protect: bool):
        self.check(fs)
        tag = f"zrepl_STEP_J_{self.job}"
        if protect:
            for snap in (frm, to):
                if snap:
                    hold(fs, snap, tag)
        # a new send cleans up step holds of earlier failed attempts (endpoint.Send)
        for snap in holds(fs, versions(fs), tag):
            if snap not in (frm, to):
                zfs("release", tag, f"{fs}@{snap}")
        args = ["send", *self.flags] + (["-i", f"@{frm}"] if frm else []) + [f"{fs}@{to}"]
        proc = zfs_popen(args, stdout=subprocess.PIPE, owner=self)

        def finish():
            err = proc.stderr.read().decode()
            proc.wait()
            zfs_done(proc)
            proc.stdout.close()
            proc.stderr.close()
            if proc.returncode != 0:
                raise ZError(f"zfs send failed: zfs exited with error: exit status {proc.returncode}\nstderr:\n{err}")

        return proc.stdout, finish

    def crypto(self, fs: str):
        """Encryption record a raw send carries (the lab zfs wrapper emulates native encryption)."""
        records = lab.load_json(lab.root(CRYPTO), {})
        if "-w" not in self.flags or fs not in records:
            return None
        root = records.get(records[fs]["root"], records[fs])
        return {"encryption": records[fs]["encryption"], "keyformat": root["keyformat"], "keyhash": root["keyhash"]}

    def send_completed(self, fs: str, to: str) -> None:
        release_all(fs, f"zrepl_STEP_J_{self.job}")
        guid = next(v["Guid"] for v in versions(fs) if v["Name"] == to)
        with lab.locked(lab.root(CURSORS)):
            cur = lab.load_json(lab.root(CURSORS), {})
            cur.setdefault(fs, {})[self.job] = {"guid": guid, "name": f"@{to}"}
            lab.save_json(lab.root(CURSORS), cur)

    def destroy(self, fs: str, names: list) -> dict:
        self.check(fs)
        return destroy(fs, names)


class Receiver(Endpoint):
    def __init__(self, job: dict, identity: str | None):
        self.job, self.root_fs = job["name"], job["root_fs"]
        self.root = f"{self.root_fs}/{identity}" if job["type"] == "sink" else self.root_fs
        recv = job.get("recv") or {}
        props = recv.get("properties") or {}
        self.override, self.inherit = props.get("override") or {}, props.get("inherit") or []
        self.ph_enc = (recv.get("placeholder") or {}).get("encryption", "unspecified")
        self.procs: set = set()

    def local(self, fs: str) -> str:
        if not fs:
            raise ZError("cannot map empty filesystem")
        return f"{self.root}/{fs}"

    def list_filesystems(self) -> list:
        all_ds = datasets()
        if self.root_fs not in all_ds:
            raise ZError("root_fs does not exist")
        return [
            {"Path": ds[len(self.root) + 1 :], "IsPlaceholder": ph}
            for ds, ph in sorted(all_ds.items())
            if ds.startswith(self.root + "/")
        ]

    def list_versions(self, fs: str) -> list:
        return versions(self.local(fs))

    def destroy(self, fs: str, names: list) -> dict:
        return destroy(self.local(fs), names)

    def receive(self, fs: str, to: str, crypto: dict | None, stream) -> None:
        lp = self.local(fs)
        parts, known = lp.split("/"), datasets()
        for i in range(1, len(parts)):
            path = "/".join(parts[:i])
            if path in known:
                continue
            if self.root_fs == path or self.root_fs.startswith(path + "/"):
                raise ZError(f'pool "{path}" not imported' if i == 1 else f'root_fs "{self.root_fs}" does not exist')
            if path != self.root and self.ph_enc == "unspecified":
                raise ZError(
                    f"cannot create placeholder filesystem {path}: placeholder filesystem encryption "
                    "handling is unspecified in receiver config"
                )
            enc = ["-o", "encryption=off"] if self.ph_enc == "off" and path != self.root else []
            zfs("create", "-o", "zrepl:placeholder=on", "-o", "mountpoint=none", *enc, path)
        force = []
        if known.get(lp):  # an existing placeholder is replaced with `recv -F`
            zfs("set", "zrepl:placeholder=off", lp)
            force = ["-F"]
        proc = zfs_popen(["recv", *force, f"{lp}@{to}"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, owner=self)
        try:
            while chunk := stream.read(1 << 16):
                proc.stdin.write(chunk)
        except (BrokenPipeError, OSError):
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
        err = proc.stderr.read().decode()
        proc.stderr.close()
        proc.wait()
        zfs_done(proc)
        if proc.returncode != 0:
            if force:
                zfs("set", "zrepl:placeholder=on", lp)
            raise ZError(f"zfs exited with error: exit status {proc.returncode}\nstderr:\n{err}")
        if crypto and (lp not in known or force):  # a raw full receive: lp becomes an encryption root, no key
            with lab.locked(lab.root(CRYPTO)):
                records = lab.load_json(lab.root(CRYPTO), {})
                records[lp] = dict(crypto, root=lp, keylocation="prompt")
                lab.save_json(lab.root(CRYPTO), records)
            subprocess.run([ZFS, "unmount", lp], capture_output=True, check=False)
        for prop, value in self.override.items():
            zfs("set", f"{prop}={value}", lp)
        for prop in self.inherit:
            zfs("inherit", prop, lp)
        tag = f"zrepl_last_received_J_{self.job}"
        hold(lp, to, tag)
        release_all(lp, tag, keep=to)


# ---- transport: JSON lines + length-prefixed chunks ----------------------------------------


class Chunks:
    """Reader over length-prefixed chunks ending with an empty chunk."""

    def __init__(self, rfile):
        self.rfile, self.buf, self.eof = rfile, b"", False

    def read(self, n: int) -> bytes:
        while not self.buf and not self.eof:
            head = self.rfile.read(4)
            size = struct.unpack(">I", head)[0] if len(head) == 4 else 0
            self.buf = self.rfile.read(size) if size else b""
            self.eof = size == 0
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def drain(self) -> None:
        while self.read(1 << 16):
            pass


def write_chunks(wfile, reader, counter=None) -> None:
    while chunk := reader.read(1 << 16):
        wfile.write(struct.pack(">I", len(chunk)) + chunk)
        if counter:
            counter(len(chunk))
    wfile.write(struct.pack(">I", 0))
    wfile.flush()


def send_line(wfile, obj) -> None:
    wfile.write(json.dumps(obj).encode() + b"\n")
    wfile.flush()


def serve(rfile, wfile, endpoint) -> None:
    """Answer RPCs of one connection until EOF."""
    while line := rfile.readline():
        req = json.loads(line)
        method, args = req["m"], req["a"]
        try:
            if method == "receive":
                stream = Chunks(rfile)
                try:
                    endpoint.receive(*args, stream)
                finally:
                    stream.drain()
                send_line(wfile, {"r": None})
            elif method == "send":
                reader, finish = endpoint.send(*args)
                send_line(wfile, {"r": "stream"})
                write_chunks(wfile, reader)
                finish()
                send_line(wfile, {"r": None})
            else:
                send_line(wfile, {"r": getattr(endpoint, method)(*args)})
        except (ZError, OSError, StopIteration, KeyError, AttributeError) as exc:
            send_line(wfile, {"e": str(exc) or type(exc).__name__})


class Remote:
    """Client side of an endpoint reached through a transport connection."""

    def __init__(self, rfile, wfile, closer):
        self.rfile, self.wfile, self.close, self.procs = rfile, wfile, closer, set()

    def _reply(self, dataconn=False):
        line = self.rfile.readline()
        if not line:
            raise ZError("connection closed by peer (EOF)")
        rep = json.loads(line)
        if "e" in rep:
            raise ZError(f"server error: {rep['e']}" if dataconn else f"rpc error: code = Unknown desc = {rep['e']}")
        return rep["r"]

    def __getattr__(self, method):
        def call(*args):
            send_line(self.wfile, {"m": method, "a": list(args)})
            return self._reply()

        return call

    def receive(self, fs, to, crypto, stream):
        send_line(self.wfile, {"m": "receive", "a": [fs, to, crypto]})
        write_chunks(self.wfile, stream)
        self._reply(dataconn=True)

    def send(self, fs, frm, to, protect):
        send_line(self.wfile, {"m": "send", "a": [fs, frm, to, protect]})
        self._reply(dataconn=True)
        return Chunks(self.rfile), lambda: self._reply(dataconn=True)


def sockfiles(sock):
    """(rfile, wfile, closer) of a connected socket; the closer releases all three."""
    rfile, wfile = sock.makefile("rb"), sock.makefile("wb")
    return rfile, wfile, lambda: [f.close() for f in (rfile, wfile, sock)]


def connect(connect_cfg: dict, node: dict):
    """Open the active side's connection; return a Remote (or the in-process endpoint for local)."""
    typ = connect_cfg["type"]
    if typ == "local":
        factory = LISTENERS.get(connect_cfg["listener_name"])
        if factory is None:
            raise ZError(f"no listener registered for name {connect_cfg['listener_name']!r}")
        ep = factory(connect_cfg["client_identity"])
        ep.close = lambda: None
        return ep
    if typ == "tcp":
        host, _, port = connect_cfg["address"].rpartition(":")
        try:
            sock = socket.create_connection(
                (host.strip("[]"), int(port)), timeout=10, source_address=(node.get("address", ""), 0)
            )
        except OSError as exc:
            raise ZError(f"dial tcp {connect_cfg['address']}: connect: {exc.strerror or exc}".lower()) from None
        sock.settimeout(None)
        return Remote(*sockfiles(sock))
    if typ == "ssh+stdinserver":
        argv = ["ssh", "-q", "-p", str(connect_cfg["port"]), "-i", connect_cfg["identity_file"]]
        for opt in connect_cfg.get("options") or []:
            argv += ["-o", opt]
        argv += [f"{connect_cfg['user']}@{connect_cfg['host']}", "zrepl", "stdinserver", node["name"]]
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def closer():
            proc.stdin.close()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

        remote = Remote(proc.stdout, proc.stdin, closer)
        try:
            remote.ping()
        except (ZError, OSError):
            proc.kill()
            raise ZError(f"ssh transport: {proc.stderr.read().decode().strip() or 'connection failed'}") from None
        return remote
    raise ZError(f"lab stand-in: transport {typ!r} is not emulated")


# ---- snapshotting ----------------------------------------------------------------------------


def go_ms(ns: int) -> str:
    ms = round(ns / 1e6)
    return f"{ms}ms" if ms < 1000 else f"{ms / 1000:g}s"


class Snapper:
    def __init__(self, cfg: dict, flt: dict, job: Job):
        self.cfg, self.flt, self.job, self.type = cfg, flt, job, cfg["type"]
        self.state, self.sleep_until, self.error, self.progress = 1, 0, "", None
        self.running, self.errors = False, []

    def name(self) -> str:
        now, fmt = time.time(), self.cfg.get("timestamp_format", "dense")
        tm = time.gmtime(now) if self.cfg.get("timestamp_location", "UTC") == "UTC" else time.localtime(now)
        stamp = {"dense": "%Y%m%d_%H%M%S_000", "human": "%Y-%m-%d_%H:%M:%S", "iso-8601": "%Y-%m-%dT%H:%M:%S.000Z"}.get(
            fmt
        )
        return self.cfg["prefix"] + (str(int(now)) if fmt == "unix-seconds" else time.strftime(stamp, tm))

    def take(self) -> bool:
        try:
            fss = [ds for ds in sorted(datasets()) if zc.filter_match(self.flt, ds)]
        except ZError as exc:
            log(self.job.name, "ERROR", f"cannot list filesystems: {exc}")
            return False
        with MU:
            self.progress = [
                {
                    "Path": fs,
                    "State": 1,
                    "SnapName": "",
                    "StartAt": ZERO,
                    "Hooks": "",
                    "HooksHadError": False,
                    "DoneAt": ZERO,
                }
                for fs in fss
            ]
        ok = True
        for rep in self.progress:
            start, name = now_ns(), self.name()
            with MU:
                rep.update(State=2, SnapName=name, StartAt=gotime(start))
            try:
                zfs("snapshot", f"{rep['Path']}@{name}")
                state, status = 4, "Ok"
            except ZError as exc:
                log(self.job.name, "ERROR", f"cannot create snapshot: {exc}")
                state, status, ok = 8, "Err", False
            with MU:
                rep.update(
                    State=state,
                    DoneAt=gotime(now_ns()),
                    Hooks=f"1 {status} {go_ms(now_ns() - start)} snapshot",
                    HooksHadError=not ok,
                )
        return ok

    def run(self) -> None:
        if self.type == "manual":
            return
        if self.type == "cron":
            sched = zc.parse_cron(self.cfg["cron"])
            while not self.job.stop.is_set():
                self.sleep_until = next_cron(sched, time.time())
                if self.job.stop.wait(max(0, self.sleep_until - time.time())):
                    return
                self.running = True
                ok = self.take()
                self.running, self.errors = (
                    False,
                    [] if ok else ["one or more snapshots could not be created, check logs for details"],
                )
                self.job.snapshots_taken()
            return
        interval = self.cfg["interval"]
        try:
            last = max(
                (
                    v["Creation"]
                    for fs in datasets()
                    if zc.filter_match(self.flt, fs)
                    for v in versions(fs)
                    if v["Name"].startswith(self.cfg["prefix"])
                ),
                default=None,
            )
            self.sleep_until = time.time() if last is None else last + interval
        except ZError as exc:
            self.state, self.error, self.sleep_until = 2, str(exc), time.time() + interval
        while not self.job.stop.wait(max(0, self.sleep_until - time.time())):
            invoked = time.time()
            self.state, self.error = 8, ""
            ok = self.take()
            self.job.snapshots_taken()
            self.state = 16 if ok else 32
            self.error = "" if ok else "one or more snapshots could not be created, check logs for details"
            self.sleep_until = invoked + interval

    def report(self):
        rep = {"Type": self.type, "Periodic": None, "Cron": None, "Manual": None}
        if self.type == "periodic":
            rep["Periodic"] = {
                "State": self.state,
                "SleepUntil": gotime(int(self.sleep_until * 1e9)),
                "Error": self.error,
                "Progress": self.progress,
            }
        elif self.type == "cron":
            rep["Cron"] = {
                "State": "running" if self.running else "waiting",
                "WakeupTime": gotime(int(self.sleep_until * 1e9)),
                "Errors": self.errors or None,
                "Progress": self.progress,
            }
        else:
            rep["Manual"] = {}
        return rep


def next_cron(sched: list, after: float) -> float:
    t = int(after) - int(after) % 60
    for _ in range(366 * 24 * 60):
        tm = time.localtime(t)
        if (
            tm.tm_min in sched[1]
            and tm.tm_hour in sched[2]
            and tm.tm_mon in sched[4]
            and tm.tm_mday in sched[3]
            and (tm.tm_wday + 1) % 7 in sched[5]
        ):
            for sec in sorted(sched[0]):
                if t + sec > after:
                    return t + sec
        t += 60
    return after + 366 * 86400


# ---- pruning ---------------------------------------------------------------------------------


def keep_destroys(rule: dict, snaps: list) -> set:
    """Names this keep rule does not keep (zrepl pruning: destroyed only if no rule keeps it)."""
    names = [s["Name"] for s in snaps]
    typ = rule["type"]
    if typ == "not_replicated":
        return {s["Name"] for s in snaps if s["Replicated"]}
    if typ == "regex":
        return {n for n in names if bool(re.search(rule["regex"], n)) == bool(rule.get("negate"))}
    matching = [s for s in snaps if re.search(rule.get("regex") or "", s["Name"])]
    if typ == "last_n":
        newest = sorted(matching, key=lambda s: s["CreateTXG"], reverse=True)[: rule["count"]]
        return set(names) - {s["Name"] for s in newest}
    keep, now = set(), max((s["Creation"] for s in matching), default=0)
    start = now
    for length, count in rule["grid"]:
        bucket = sorted((s for s in matching if start - length < s["Creation"] <= start), key=lambda s: s["Creation"])
        keep |= {s["Name"] for s in (bucket if count == -1 else bucket[:count])}
        start -= length
    return set(names) - keep


def prune(target, sender, rules: list, report: dict, *, at_cursor_replicated=False, local=False) -> None:
    """Run one pruner over target's filesystems, filling report (pruner.Report)."""
    try:
        sfss = {f["Path"] for f in sender.list_filesystems()}
        tfss = target.list_filesystems()
    except ZError as exc:
        with MU:
            report.update(State="PlanErr", Error=str(exc))
        return
    with MU:
        report["State"] = "Exec"
    for tfs in tfss:
        path = tfs["Path"]
        fsr = {"Filesystem": path, "SnapshotList": None, "DestroyList": None, "SkipReason": "", "LastError": ""}
        if tfs["IsPlaceholder"]:
            fsr["SkipReason"] = "filesystem is placeholder"
        elif path not in sfss:
            fsr["SkipReason"] = "filesystem has no correspondence on sender"
        else:
            fsr["SnapshotList"], fsr["DestroyList"] = [], []
            try:
                snaps = target.list_versions(path)
                cursor = None if local else sender.cursor(path)
                if cursor is None and not local:
                    raise ZError(
                        "replication cursor bookmark does not exist "
                        "(one successful replication is required before pruning works)"
                    )
                pre = local or any(s["Guid"] == cursor for s in snaps)
                for s in snaps:
                    at = s["Guid"] == cursor
                    pre = pre and not at
                    s["Replicated"] = pre or (at_cursor_replicated and at)
                if pre and not local:
                    raise ZError("prune target has no snapshot that corresponds to sender replication cursor bookmark")
                destroy_set = set.intersection(*[keep_destroys(r, snaps) for r in rules]) if rules else set()
                rep = [
                    {"Name": s["Name"], "Replicated": s["Replicated"], "Date": gotime(s["Creation"] * 10**9)}
                    for s in snaps
                ]
                fsr["SnapshotList"], fsr["DestroyList"] = rep, [r for r in rep if r["Name"] in destroy_set]
                failed = target.destroy(path, [s["Name"] for s in snaps if s["Name"] in destroy_set])
                if failed:
                    msgs = set(failed.values())
                    fsr["LastError"] = (
                        f"destroys failed {', '.join('@' + n for n in failed)}: {msgs.pop()}"
                        if len(msgs) == 1
                        else "destroys failed: " + ", ".join(f"(@{n}: {e})" for n, e in failed.items())
                    )
            except ZError as exc:
                fsr["LastError"] = str(exc)
        with MU:
            report["Completed"].append(fsr)
    with MU:
        report["State"] = (
            "ExecErr" if any(not f["SkipReason"] and f["LastError"] for f in report["Completed"]) else "Done"
        )


def new_prune_report() -> dict:
    return {"State": "Plan", "Error": "", "Pending": [], "Completed": []}


# ---- jobs ------------------------------------------------------------------------------------


class Job:
    def __init__(self, cfg: dict, daemon: Daemon):
        self.cfg, self.name, self.type, self.daemon = cfg, cfg["name"], cfg["type"], daemon
        self.stop, self.trigger = daemon.stop, threading.Event()
        self.wakeup_pending = self.reset_pending = False
        self.cancel = threading.Event()
        self.snapper = Snapper(cfg["snapshotting"], cfg["filesystems"], self) if "snapshotting" in cfg else None
        self.replication = self.prune_sender = self.prune_receiver = self.pruning = None
        self.endpoints: list = []

    def signal(self, op: str) -> str | None:
        with MU:
            if op == "wakeup":
                if self.wakeup_pending:
                    return "already woken up"
                self.wakeup_pending = True
                self.trigger.set()
            else:
                if self.reset_pending:
                    return "already reset"
                self.reset_pending = True
                self.cancel.set()
                for ep in self.endpoints:
                    for proc in list(ep.procs):
                        if proc.poll() is None:
                            proc.kill()
        return None

    def snapshots_taken(self) -> None:
        self.trigger.set()

    def status(self):
        if self.type in ("push", "pull"):
            snap = self.snapper.report() if self.snapper else None
            return {
                "Replication": self.replication,
                "PruningSender": self.prune_sender,
                "PruningReceiver": self.prune_receiver,
                "Snapshotting": snap,
            }
        if self.type == "snap":
            return {"Pruning": self.pruning, "Snapshotting": self.snapper.report()}
        return {"Snapper": self.snapper.report() if self.snapper else None}

    def start(self) -> None:
        if self.snapper:
            threading.Thread(target=self.snapper.run, daemon=True).start()
        if self.type in ("push", "pull", "snap"):
            threading.Thread(target=self.loop, daemon=True).start()
        if self.type == "pull" and self.cfg["interval"] != "manual":
            threading.Thread(target=self.ticker, daemon=True).start()

    def ticker(self) -> None:
        while not self.stop.wait(self.cfg["interval"]):
            self.trigger.set()

    def loop(self) -> None:
        while not self.stop.is_set():
            self.trigger.wait()
            with MU:
                self.trigger.clear()
                self.wakeup_pending = False
            if self.stop.is_set():
                return
            try:
                self.do() if self.type != "snap" else self.do_snap()
            except Exception as exc:  # a job must survive anything, as zrepl's goroutines do
                log(self.name, "ERROR", f"invocation failed: {exc!r}")
            with MU:
                if self.reset_pending and self.cancel.is_set():
                    self.reset_pending = False
                    self.cancel.clear()

    def do_snap(self) -> None:
        ep = Sender({"name": self.name, "filesystems": self.cfg["filesystems"]})
        with MU:
            self.pruning = new_prune_report()
        prune(ep, ep, self.cfg["pruning"]["keep"], self.pruning, local=True)

    def do(self) -> None:
        if self.cancel.is_set():
            log(self.name, "INFO", "reset received, cancelling current invocation")
            return
        if self.type == "push":
            sender = Sender(self.cfg)
            try:
                receiver = connect(self.cfg["connect"], lab.node_info())
            except ZError as exc:
                receiver = exc
        else:
            receiver = Receiver(self.cfg, None)
            try:
                sender = connect(self.cfg["connect"], lab.node_info())
            except ZError as exc:
                sender = exc
        report = {
            "StartAt": gotime(now_ns()),
            "FinishAt": ZERO,
            "WaitReconnectSince": ZERO,
            "WaitReconnectUntil": ZERO,
            "WaitReconnectError": None,
            "Attempts": [],
        }
        with MU:
            self.replication, self.prune_sender, self.prune_receiver = report, None, None
            self.endpoints = [e for e in (sender, receiver) if not isinstance(e, ZError)]
        try:
            self.replicate(sender, receiver, report)
            if isinstance(sender, ZError) or isinstance(receiver, ZError) or self.cancel.is_set():
                return
            rules = self.cfg["pruning"]
            with MU:
                self.prune_sender = new_prune_report()
            at_cursor = any(
                r["type"] == "not_replicated" and not r.get("keep_snapshot_at_cursor", True)
                for r in rules["keep_sender"]
            )
            prune(sender, sender, rules["keep_sender"], self.prune_sender, at_cursor_replicated=at_cursor)
            with MU:
                self.prune_receiver = new_prune_report()
            prune(receiver, sender, rules["keep_receiver"], self.prune_receiver)
        finally:
            for ep in self.endpoints:
                ep.close() if isinstance(ep, Remote) else None

    def replicate(self, sender, receiver, report: dict) -> None:
        attempt = {
            "State": "planning",
            "StartAt": gotime(now_ns()),
            "FinishAt": ZERO,
            "PlanError": None,
            "Filesystems": [],
        }
        with MU:
            report["Attempts"].append(attempt)

        def finish(state):
            with MU:
                attempt["State"], attempt["FinishAt"] = state, gotime(now_ns())
                report["FinishAt"] = attempt["FinishAt"]

        try:
            for ep in (sender, receiver):
                if isinstance(ep, ZError):
                    raise ep
            sfss = sender.list_filesystems()
            rfss = {f["Path"]: f for f in receiver.list_filesystems()}
        except (ZError, OSError) as exc:
            with MU:
                attempt["PlanError"] = {"Err": str(exc), "Time": gotime(now_ns())}
            return finish("planning-error")
        fsreps = [
            {
                "Info": {"Name": f["Path"]},
                "State": "planning",
                "BlockedOn": "plan-queue",
                "PlanError": None,
                "StepError": None,
                "CurrentStep": 0,
                "Steps": [],
            }
            for f in sfss
        ]
        with MU:
            attempt["Filesystems"], attempt["State"] = fsreps, "fan-out-filesystems"
        protection = (self.cfg.get("replication") or {}).get("protection") or {}
        policy = (self.cfg.get("conflict_resolution") or {}).get("initial_replication", "most_recent")
        for sfs, fsr in zip(sfss, fsreps):
            fs = sfs["Path"]
            with MU:
                fsr["BlockedOn"] = "nothing"
            try:
                steps = self.plan(sender, receiver, sfs, rfss.get(fs), policy)
            except (ZError, OSError) as exc:
                with MU:
                    fsr.update(State="planning-error", PlanError={"Err": str(exc), "Time": gotime(now_ns())})
                continue
            with MU:
                fsr["Steps"] = [
                    {
                        "Info": {
                            "From": f"@{a}" if a else "",
                            "To": f"@{b}",
                            "Resumed": False,
                            "BytesExpected": size,
                            "BytesReplicated": 0,
                        }
                    }
                    for a, b, size in steps
                ]
                fsr["State"] = "stepping"
            for i, (frm, to, _size) in enumerate(steps):
                kind = "initial" if frm is None else "incremental"
                try:
                    if self.cancel.is_set():
                        raise ZError("context canceled")
                    self.step(
                        sender,
                        receiver,
                        fs,
                        frm,
                        to,
                        info=fsr["Steps"][i]["Info"],
                        protect=protection.get(kind, "guarantee_resumability") == "guarantee_resumability",
                    )
                except (ZError, OSError) as exc:
                    msg = "context canceled" if self.cancel.is_set() else str(exc)
                    with MU:
                        fsr.update(State="step-error", StepError={"Err": msg, "Time": gotime(now_ns())})
                    break
                with MU:
                    fsr["CurrentStep"] = i + 1
            else:
                with MU:
                    fsr["State"] = "done"
        finish("done" if all(f["State"] == "done" for f in fsreps) else "filesystem-error")

    def plan(self, sender, receiver, sfs: dict, rfs: dict | None, policy: str) -> list:
        """zrepl's IncrementalPath: steps (from, to, size estimate) or a conflict error."""
        fs = sfs["Path"]
        if sfs["IsPlaceholder"]:
            if rfs and not rfs["IsPlaceholder"]:
                raise ZError("sender filesystem is placeholder, but receiver filesystem is not")
            return []
        svs = sender.list_versions(fs)
        if not svs:
            raise ZError("sender does not have any versions")
        rvs = receiver.list_versions(fs) if rfs and not rfs["IsPlaceholder"] else []
        common = next(
            (
                (r, s)
                for r in range(len(rvs) - 1, -1, -1)
                for s in range(len(svs) - 1, -1, -1)
                if svs[s]["Guid"] == rvs[r]["Guid"]
            ),
            None,
        )
        if common is None:
            if rvs:
                raise ZError(
                    "no common snapshot or suitable bookmark between sender and receiver:\n"
                    "  sorted sender versions:\n"
                    + "".join(f"    @{v['Name']}\n" for v in svs)
                    + "  sorted receiver versions:\n"
                    + "".join(f"    @{v['Name']}\n" for v in rvs)
                )
            if policy == "fail":
                raise ZError("automatic conflict resolution for initial replication is disabled in config")
            path = [None] + ([v["Name"] for v in svs] if policy == "all" else [svs[-1]["Name"]])
        else:
            r, s = common
            if r != len(rvs) - 1:
                raise ZError(
                    "the receiver's latest snapshot is not present on sender:\n"
                    f"  last common: @{svs[s]['Name']}\n  sender-only:\n"
                    + "".join(f"    @{v['Name']}\n" for v in svs[s + 1 :])
                    + "  receiver-only:\n"
                    + "".join(f"    @{v['Name']}\n" for v in rvs[r + 1 :])
                )
            path = [v["Name"] for v in svs[s:]]
        sender.validate(fs)
        size = 0
        if path[0] is None:
            size = (
                int(zfs("get", "-H", "-p", "-o", "value", "referenced", f"{fs}@{path[1]}").strip() or 0)
                if isinstance(sender, Sender)
                else 0
            )
        return [(a, b, size if a is None else 0) for a, b in zip(path, path[1:])]

    def step(self, sender, receiver, fs, frm, to, *, info: dict, protect: bool) -> None:
        crypto = sender.crypto(fs)  # before send: a remote sender's connection then carries the stream
        reader, finish = sender.send(fs, frm, to, protect)

        class Counting:
            def read(self, n):
                data = reader.read(n)
                with MU:
                    info["BytesReplicated"] += len(data)
                return data

        try:
            receiver.receive(fs, to, crypto, Counting())
        finally:
            try:
                while reader.read(1 << 16):
                    pass
            except (OSError, ValueError):
                pass
            try:
                finish()
            except ZError:
                if not self.cancel.is_set():
                    raise
        sender.send_completed(fs, to)


# ---- daemon ----------------------------------------------------------------------------------


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class Control(http.server.BaseHTTPRequestHandler):
    daemon: Daemon

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        d = self.daemon
        code, out = 200, None
        if self.path == "/status":
            out = d.status_json()
        elif self.path == "/version":
            out = json.dumps(version_info()) + "\n"
        elif self.path == "/signal":
            req = json.loads(body or b"{}")
            job = d.jobs.get(req.get("Name")) if req.get("Name") != "_control" else None
            if req.get("Op") not in ("wakeup", "reset"):
                code, out = 500, f'operation "{req.get("Op")}" is invalid'
            elif job is None and req.get("Name") != "_control":
                code, out = 500, f"Job {req.get('Name')} does not exist"
            else:
                err = job.signal(req["Op"]) if job else None
                code, out = (500, err) if err else (200, "{}\n")
        else:
            code, out = 404, "404 page not found\n"
        data = out.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def version_info() -> dict:
    return {
        "Version": "v0.7.0-lab",
        "RuntimeGo": "go1.21.13",
        "RuntimeGOOS": "freebsd",
        "RuntimeGOARCH": "amd64",
        "RUNTIMECompiler": "gc",
    }


def gojson(obj) -> str:
    """encoding/json output: compact, HTML-escaped, trailing newline (json.Encoder)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"


class Daemon:
    def __init__(self, cfg: dict):
        self.cfg, self.stop = cfg, threading.Event()
        self.jobs = {j["name"]: Job(j, self) for j in cfg["jobs"]}
        self.stdin_idents: dict = {}

    def status_json(self) -> str:
        with MU:
            jobs = {"_control": {"internal": None, "type": "internal"}}
            if self.cfg["global"].get("monitoring"):
                jobs["_prometheus"] = {"internal": None, "type": "internal"}
            for name, job in self.jobs.items():
                jobs[name] = {job.type: job.status(), "type": job.type}
            env = [{"Var": "ZREPL_REPLICATION_MAX_ATTEMPTS", "Value": "3", "ValueGoType": "int"}]
            glob = {
                "ZFSCmds": {"Active": list(ACTIVE_CMDS.values()) or None},
                "Envconst": {"Entries": env},
                "OsEnviron": [f"{k}={v}" for k, v in os.environ.items()],
            }
            return gojson({"Jobs": dict(sorted(jobs.items())), "Global": glob})

    def listen_unix(self, path: str) -> socket.socket:
        os.makedirs(os.path.dirname(lab.root(path)), mode=0o700, exist_ok=True)
        try:
            os.unlink(lab.root(path))
        except OSError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(lab.root(path))
        sock.listen(16)
        return sock

    def serve_passive(self, job: dict) -> None:
        serve_cfg = job["serve"]

        def endpoint(identity):
            return Receiver(job, identity) if job["type"] == "sink" else Sender(job)

        def handle(rfile, wfile, identity, done):
            try:
                serve(rfile, wfile, endpoint(identity))
            except (OSError, ValueError) as exc:
                log(job["name"], "ERROR", f"connection error: {exc}")
            finally:
                done()

        if serve_cfg["type"] == "local":
            LISTENERS[serve_cfg["listener_name"]] = endpoint
        elif serve_cfg["type"] == "stdinserver":
            sockdir = self.cfg["global"]["serve"]["stdinserver"]["sockdir"]
            for ident in serve_cfg["client_identities"]:
                if ident in self.stdin_idents:
                    log(
                        job["name"],
                        "ERROR",
                        f"cannot listen: stdinserver client identity {ident!r} is already "
                        f"served by job {self.stdin_idents[ident]!r}",
                    )
                    continue
                self.stdin_idents[ident] = job["name"]
                sock = self.listen_unix(f"{sockdir}/{ident}")
                threading.Thread(target=self.accept_stdinserver, args=(sock, ident, handle), daemon=True).start()
        elif serve_cfg["type"] == "tcp":
            host, _, port = serve_cfg["listen"].rpartition(":")
            sock = socket.create_server((host.strip("[]"), int(port)), reuse_port=False)
            threading.Thread(target=self.accept_tcp, args=(sock, serve_cfg["clients"], handle), daemon=True).start()
        else:
            log(job["name"], "ERROR", f"lab stand-in: serve type {serve_cfg['type']!r} is not emulated")

    def accept_stdinserver(self, sock, ident, handle) -> None:
        while True:
            conn, _ = sock.accept()
            try:
                _msg, fds, _flags, _addr = socket.recv_fds(conn, 1, 2)
                rfile, wfile = os.fdopen(fds[0], "rb"), os.fdopen(fds[1], "wb")
            except (OSError, IndexError):
                conn.close()
                continue

            def done(conn=conn, rfile=rfile, wfile=wfile):
                for f in (rfile, wfile, conn):
                    try:
                        f.close()
                    except OSError:
                        pass

            threading.Thread(target=handle, args=(rfile, wfile, ident, done), daemon=True).start()

    def accept_tcp(self, sock, clients, handle) -> None:
        while True:
            conn, addr = sock.accept()
            ident = zc.client_identity(clients, addr[0])
            if ident is None:
                log("tcp", "ERROR", f"client IP {addr[0]} not in client map")
                conn.close()
                continue
            rfile, wfile, closer = sockfiles(conn)
            threading.Thread(target=handle, args=(rfile, wfile, ident, closer), daemon=True).start()

    def run(self) -> int:
        sockpath = self.cfg["global"]["control"]["sockpath"]
        control = UnixHTTPServer(lab.root(sockpath), type("Handler", (Control,), {"daemon": self}), False)
        control.socket.close()
        control.socket = self.listen_unix(sockpath)
        threading.Thread(target=control.serve_forever, daemon=True).start()
        for job in self.cfg["jobs"]:
            if job["type"] in ("sink", "source"):
                self.serve_passive(job)
        for job in self.jobs.values():
            job.start()
        log("_control", "INFO", "starting daemon (freebsd_ha.storage lab stand-in)")
        faulthandler.register(signal.SIGUSR1, all_threads=True)  # thread dump into the daemon log
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        signal.signal(signal.SIGINT, lambda *_: self.stop.set())
        while not self.stop.wait(1):
            pass
        for job in self.jobs.values():
            job.trigger.set()
        try:
            os.unlink(lab.root(self.cfg["global"]["control"]["sockpath"]))
        except OSError:
            pass
        log("_control", "INFO", "daemon exiting")
        return 0


# ---- control client --------------------------------------------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("unix", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(lab.root(self.path))


def control_request(sockpath: str, endpoint: str, payload: dict) -> str:
    """POST to the daemon's control socket; return the body or raise ZError as the Go client words it."""
    conn = UnixHTTPConnection(sockpath)
    try:
        conn.request("POST", endpoint, json.dumps(payload) + "\n", {"Content-Type": "application/json"})
        resp = conn.getresponse()
        body = resp.read().decode()
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        reason = "no such file or directory" if isinstance(exc, FileNotFoundError) else "connection refused"
        raise ZError(f'Post "http://unix{endpoint}": dial unix {sockpath}: connect: {reason}') from None
    except (http.client.HTTPException, OSError):
        raise ZError(f'Post "http://unix{endpoint}": EOF') from None
    finally:
        conn.close()
    if resp.status != 200:
        raise ZError(body[:4096])
    return body


def stdinserver(sockdir: str, identity: str) -> int:
    """`zrepl stdinserver IDENTITY` (ssh side): hand stdin/stdout to the daemon and wait."""
    path = f"{sockdir}/{identity}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(lab.root(path))
    except OSError as exc:
        sys.stderr.write(
            f"error: cannot connect to serve socket for client identity {identity!r}: "
            f"dial unix {path}: connect: {(exc.strerror or str(exc)).lower()}\n"
        )
        return 1
    socket.send_fds(sock, [b"\0"], [0, 1])
    while sock.recv(1):
        pass
    return 0
