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
import sys

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
    import re
    import shlex

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
