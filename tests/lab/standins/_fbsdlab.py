"""Shared helpers for the freebsd_ha.storage lab stand-ins (Python 3 standard library only).

Every path a stand-in touches goes through root(): inside a lab node FBSD_LAB_ROOT is unset and
paths are the node's own (/etc, /var, /run are private overlays or tmpfs there); contract tests
set FBSD_LAB_ROOT to a temporary directory so that the stand-ins run as plain subprocesses.

State layout (all relative to root()):
  /var/db/fbsd-lab/<tool>/...    persistent per-node state (survives a node crash, like a disk)
  /var/run/fbsd-lab/...          "kernel" state (sysctl values, loaded modules); /var/run is the
                                 node's tmpfs /run, so a crash or restart resets it like a reboot
  /run/fbsd-lab/shared/          one directory shared by all nodes (CARP registry)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shlex
import subprocess
import sys
import time

LIB_DIR = "/usr/local/libexec/fbsd-lab"


def root(path: str = "") -> str:
    """Return path inside the node (or inside FBSD_LAB_ROOT when emulating one)."""
    base = os.environ.get("FBSD_LAB_ROOT", "").rstrip("/")
    return base + path


def lab_version(tool: str, emulates: str) -> str:
    """Return the --lab-version line of a stand-in."""
    return f"{tool}: freebsd_ha.storage lab stand-in; emulates {emulates}"


def handle_lab_version(argv: list[str], tool: str, emulates: str) -> None:
    """Print the identification line and exit when --lab-version is the first argument."""
    if argv[1:2] == ["--lab-version"]:
        print(lab_version(tool, emulates))
        sys.exit(0)


def err(msg: str) -> None:
    sys.stderr.write(msg + "\n")


def node_info() -> dict:
    """Return /run/fbsd-lab/node.json, or a single-node default outside a lab."""
    try:
        with open(root("/run/fbsd-lab/node.json")) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {"name": "f0", "address": "127.0.10.1", "index": 0, "nodes": {"f0": "127.0.10.1"}}


def load_json(path: str, default):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return default


def save_json(path: str, data) -> None:
    """Write JSON atomically (rename), creating parent directories."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(path: str):
    """Hold an exclusive flock on path + '.lock' for the duration of the block."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def proc_start_time(pid: int) -> str | None:
    """Return field 22 of /proc/<pid>/stat (start time in ticks), None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def pid_alive(pid: int, start: str | None = None) -> bool:
    """True when pid runs (not a zombie) and, if given, has the recorded start time."""
    if pid <= 0:
        return False
    now = proc_start_time(pid)
    if now is None:
        return False
    return start is None or now == start


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return []


# ---- rc.conf -------------------------------------------------------------------------------

RC_CONF_FILES = ["/etc/rc.conf", "/etc/rc.conf.local"]


def parse_assignment(line: str):
    """Parse one rc.conf line `name=value` (sh quoting) into (name, value), or None."""
    stripped = line.strip()
    m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", stripped)
    if not m:
        return None
    try:
        words = shlex.split(m.group(2), comments=True)
    except ValueError:
        return None
    return m.group(1), " ".join(words)


def read_rc_file(path: str) -> dict:
    """Return the variables assigned in one rc.conf-style file (later lines win)."""
    result: dict = {}
    try:
        with open(path) as fh:
            for line in fh:
                parsed = parse_assignment(line)
                if parsed:
                    result[parsed[0]] = parsed[1]
    except OSError:
        pass
    return result


def rc_conf(service: str | None = None) -> dict:
    """Return rc.conf variables as load_rc_config sees them (rc.conf, rc.conf.local, rc.conf.d)."""
    values: dict = {}
    for f in RC_CONF_FILES:
        values.update(read_rc_file(root(f)))
    if service:
        for d in ("/etc/rc.conf.d", "/usr/local/etc/rc.conf.d"):
            p = root(f"{d}/{service}")
            if os.path.isdir(p):
                for name in sorted(os.listdir(p)):
                    values.update(read_rc_file(os.path.join(p, name)))
            else:
                values.update(read_rc_file(p))
    return values


def checkyesno(value: str | None) -> bool:
    return (value or "").strip().lower() in ("yes", "true", "on", "1")


# ---- kernel state (sysctl, modules) ----------------------------------------------------------


def kernel_state_path(name: str) -> str:
    return root(f"/var/run/fbsd-lab/{name}.json")


def loaded_modules() -> list[str]:
    """Return loaded kernel module file names (kernel and zfs.ko are always there)."""
    return load_json(kernel_state_path("kld"), ["kernel", "zfs.ko"])


def module_loaded(name: str) -> bool:
    return name.removesuffix(".ko") + ".ko" in loaded_modules()


# File name -> (module name as `kldstat -m` knows it, size in bytes for the table). The kernel
# and zfs.ko are loaded at boot; the others load with kldload. The sizes are plausible constants.
KLD_CATALOG = {
    "kernel": ("kernel", 0x1F3E2D8),
    "zfs.ko": ("zfs", 0x5E98F8),
    "carp.ko": ("carp", 0xB220),
    "geom_gate.ko": ("g_gate", 0x5BE8),
    "geom_mirror.ko": ("g_mirror", 0x1D4F8),
    "if_bridge.ko": ("if_bridge", 0xA2E8),
    "pf.ko": ("pf", 0x6B7A8),
    "nullfs.ko": ("nullfs", 0x7058),
    "cryptodev.ko": ("cryptodev", 0x6A18),
}


def kld_file(name: str) -> str | None:
    """Map a kldload/kldstat -n argument (carp, carp.ko, /boot/kernel/carp.ko) to a file name."""
    base = os.path.basename(name)
    if base == "kernel":
        return base
    base = base if base.endswith(".ko") else base + ".ko"
    return base if base in KLD_CATALOG else None


def kld_load(file: str) -> None:
    with locked(kernel_state_path("kld")):
        mods = loaded_modules()
        if file not in mods:
            mods.append(file)
        save_json(kernel_state_path("kld"), mods)


# ---- CARP ------------------------------------------------------------------------------------
# The registry in the shared directory holds every node's CARP vhids and the sysctls that drive
# elections (demotion, preempt, allow). Each query re-runs the election under the registry lock.

CARP_MAXSKEW = 240


def shared(path: str) -> str:
    return root(f"/run/fbsd-lab/shared/{path}")


def carp_registry_path() -> str:
    return shared("carp.json")


def local_sysctl(name: str, default: str) -> str:
    return load_json(kernel_state_path("sysctl"), {}).get(name, default)


def ensure_anchor() -> dict:
    """Return this node's liveness anchor {pid, start}, starting one if needed.

    The anchor is a sleeping process of the node: a crash kills it with the rest of the node,
    so other nodes see this node's vhids go silent, as they would stop hearing advertisements.
    """
    path = kernel_state_path("carp-anchor")
    rec = load_json(path, {})
    if rec and pid_alive(rec.get("pid", 0), rec.get("start")):
        return rec
    with open(os.devnull, "rb") as null, open(os.devnull, "wb") as out:
        proc = subprocess.Popen(
            ["fbsd-lab-carp-anchor", "infinity"],
            executable="/bin/sleep",
            stdin=null,
            stdout=out,
            stderr=out,
            start_new_session=True,
            cwd="/",
            close_fds=True,
        )
    rec = {"pid": proc.pid, "start": proc_start_time(proc.pid)}
    save_json(path, rec)
    return rec


def carp_node_record(reg: dict) -> dict:
    """Refresh and return this node's record in the registry (caller holds the lock)."""
    info = node_info()
    anchor = ensure_anchor()
    rec = reg.setdefault("nodes", {}).setdefault(info["name"], {})
    rec.update(
        {
            "index": info.get("index", 0),
            "anchor": anchor["pid"],
            "start": anchor["start"],
            "demotion": int(local_sysctl("net.inet.carp.demotion", "0")),
            "preempt": int(local_sysctl("net.inet.carp.preempt", "0")),
            "allow": int(local_sysctl("net.inet.carp.allow", "1")),
        }
    )
    return rec


def carp_log(line: str) -> None:
    os.makedirs(shared(""), exist_ok=True)
    with open(shared("carp-events.log"), "a") as fh:
        fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")


def carp_evaluate(reg: dict) -> None:
    """Run the election for every vhid and store each entry's state (caller holds the lock).

    Rules (per vhid, among entries whose node is alive and whose interface is up):
    * e hears p when they are on different nodes, not cut by shared/partitions.json, e's node
      has net.inet.carp.allow=1 and both use the same pass.
    * A MASTER that hears a MASTER advertising more often (lower advbase, then lower
      advskew + demotion, capped at 240) becomes BACKUP; an exact tie keeps the lower node index.
    * A BACKUP whose node has net.inet.carp.preempt=1 takes over from slower MASTERs it hears.
    * A non-MASTER that hears no MASTER times out and becomes MASTER, shortest timer first
      (same order as above); an entry forced to BACKUP with `state backup` goes last.
    """
    nodes = reg.get("nodes", {})
    cut = {frozenset(p) for p in load_json(shared("partitions.json"), []) if len(p) == 2}
    alive = {n: pid_alive(r.get("anchor", 0), r.get("start")) for n, r in nodes.items()}
    entries = reg.get("vhids", {})
    by_vhid: dict = {}
    for e in entries.values():
        by_vhid.setdefault(e["vhid"], []).append(e)

    def rank(e):
        rec = nodes.get(e["node"], {})
        skew = min(e["advskew"] + rec.get("demotion", 0), CARP_MAXSKEW)
        return (e["advbase"] * 256 + skew, rec.get("index", 0))

    for vhid, group in by_vhid.items():
        before = {id(e): e.get("state", "INIT") for e in group}
        active = [e for e in group if alive.get(e["node"]) and not e.get("down") and e.get("addrs")]
        for e in group:
            if e not in active:
                e["state"] = "INIT"

        def heard(e, active=active):
            if not nodes.get(e["node"], {}).get("allow", 1):
                return []
            return [
                p
                for p in active
                if p["node"] != e["node"]
                and frozenset((e["node"], p["node"])) not in cut
                and p.get("pass", "") == e.get("pass", "")
            ]

        for _ in range(4 * len(active) + 4):
            changed = False
            for e in sorted(active, key=rank):
                if e.get("state") == "MASTER" and any(
                    h.get("state") == "MASTER" and rank(h) < rank(e) for h in heard(e)
                ):
                    e["state"], changed = "BACKUP", True
            for e in sorted(active, key=rank):
                masters = [h for h in heard(e) if h.get("state") == "MASTER"]
                if (
                    e.get("state") != "MASTER"
                    and masters
                    and not e.get("yield")
                    and nodes.get(e["node"], {}).get("preempt", 0)
                    and all(rank(e) < rank(h) for h in masters)
                ):
                    e["state"], changed = "MASTER", True
            idle = [
                e
                for e in active
                if e.get("state") != "MASTER" and not any(h.get("state") == "MASTER" for h in heard(e))
            ]
            if idle:
                best = min(idle, key=lambda e: (bool(e.get("yield")), rank(e)))
                best["state"], changed = "MASTER", True
            if not changed:
                break
        for e in active:
            if e.get("state") != "MASTER":
                e["state"] = "BACKUP"
            if any(h.get("state") == "MASTER" for h in heard(e)):
                e.pop("yield", None)
        for e in group:
            if before[id(e)] != e["state"]:
                carp_log(f"{e['node']}: carp: {vhid}@{e['ifname']}: {before[id(e)]} -> {e['state']}")


@contextlib.contextmanager
def carp_registry():
    """Yield the registry (with this node's record refreshed); elect and save on exit."""
    path = carp_registry_path()
    with locked(path):
        reg = load_json(path, {"nodes": {}, "vhids": {}})
        reg.setdefault("vhids", {})
        carp_node_record(reg)
        yield reg
        carp_evaluate(reg)
        save_json(path, reg)


def carp_sysctl_changed() -> None:
    with carp_registry():
        pass
