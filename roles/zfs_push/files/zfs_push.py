#!/usr/bin/env python3
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""freebsd-ha-zfs-push: one round of periodic replication of a resource from its writer to every follower.

Installed by the freebsd_ha.storage.zfs_push role as /usr/local/sbin/freebsd-ha-zfs-push and run from cron:

    freebsd-ha-zfs-push --config /usr/local/etc/freebsd_ha/zfs_push/<resource>.json [--dry-run] [--verbose]
    freebsd-ha-zfs-push --config FILE --validate     # check the configuration only (the role's validate step)

On a node that is not the recorded writer of every dataset (freebsd-ha:writer = this node and readonly=off) it
does nothing at all and exits 0, so a fenced or follower node never pushes. On the writer: snapshot every dataset
as <prefix><UTC time>, send the increment from the newest snapshot each follower shares (by guid) to every
follower in parallel (zfs send -I | ssh zfs recv -u, never -F), then keep the last N of its own snapshots on each
side. A follower that is writable, records a newer epoch, lacks a dataset, shares no snapshot or holds snapshots
the writer lacks is skipped with an error naming the fix; nothing of it is changed.

Quiet on success (cron mails any output); errors go to stderr with exit status 1. Every run writes its summary
as JSON to <state_dir>/<resource>.json. Python 3.9+ standard library only. See docs/role_zfs_push.md.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

WRITER_PROPERTIES = ("readonly", "freebsd-ha:writer", "freebsd-ha:epoch")
SNAPSHOT_PROPERTIES = ("guid", "createtxg")
CONFIG_KEYS = {
    "comment": str,
    "resource": str,
    "node": str,
    "datasets": dict,
    "followers": dict,
    "prefix": str,
    "keep": int,
    "keep_followers": int,
    "zfs": str,
    "ssh_command": str,
    "ssh_options": list,
    "state_dir": str,
}
CHUNK = 1 << 17


class PushError(Exception):
    """A state or command problem that stops the round (or one follower), with a message naming the fix."""


# ---------------------------------------------------------------- configuration (pure)


def _name_ok(name):
    return isinstance(name, str) and name and "@" not in name and not name.startswith("/") and " " not in name


def validate_config(config):
    """Return the configuration if it has every key with the right type and sane values; raise PushError."""
    if not isinstance(config, dict):
        raise PushError("configuration must be a JSON object")
    missing = sorted(set(CONFIG_KEYS) - {"comment"} - set(config))
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    if missing or unknown:
        raise PushError(f"configuration: missing keys {missing}, unknown keys {unknown}")
    for key, kind in CONFIG_KEYS.items():
        if key in config and (not isinstance(config[key], kind) or isinstance(config[key], bool)):
            raise PushError(f"configuration: {key} must be a {kind.__name__}")
    if not config["datasets"] or not all(_name_ok(v) for v in config["datasets"].values()):
        raise PushError("configuration: datasets must map each logical dataset to its dataset name on this node")
    if config["keep"] < 1 or config["keep_followers"] < 1:
        raise PushError("configuration: keep and keep_followers must be at least 1 (the newest snapshot is the base)")
    if not config["prefix"] or not all(c.isalnum() or c in "_-.:" for c in config["prefix"]):
        raise PushError("configuration: prefix must be letters, digits and _ - . : only")
    if config["node"] in config["followers"]:
        raise PushError(f"configuration: this node {config['node']} is listed among its own followers")
    for node, follower in config["followers"].items():
        if not isinstance(follower, dict) or not isinstance(follower.get("address"), str) or not follower["address"]:
            raise PushError(f"configuration: follower {node} needs an address")
        names = follower.get("datasets")
        if (
            not isinstance(names, dict)
            or set(names) != set(config["datasets"])
            or not all(map(_name_ok, names.values()))
        ):
            raise PushError(f"configuration: follower {node} must name every dataset of the resource")
    if not all(isinstance(option, str) for option in config["ssh_options"]):
        raise PushError("configuration: ssh_options must be a list of strings")
    return config


# ---------------------------------------------------------------- zfs output and judgement (pure)


def build_get_args(properties, datasets, depth=0):
    """Return the zfs arguments `get -H -p -d DEPTH -o name,property,value PROPS DATASETS` (-p: exact guids, which
    zfs-fuse gives with get but not with list)."""
    return ["get", "-H", "-p", "-d", str(depth), "-o", "name,property,value", ",".join(properties), *datasets]


def parse_get(text):
    """Return {name: {property: value}} from `zfs get -H -o name,property,value`; raise PushError on other lines."""
    result = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise PushError(f"unexpected zfs get line: {line!r}")
        result.setdefault(fields[0], {})[fields[1]] = fields[2]
    return result


def snapshots_of(rows, dataset):
    """Return [{name, guid, createtxg}] of dataset's own snapshots (short names) from parse_get rows, oldest first."""
    found = []
    for name, props in rows.items():
        owner, _sep, short = name.partition("@")
        if owner != dataset or not short:
            continue
        values = [props.get(prop, "") for prop in SNAPSHOT_PROPERTIES]
        if not all(value.isdigit() for value in values):
            raise PushError(f"{name}: guid/createtxg not exact numbers ({values}); does this zfs take get -p?")
        found.append({"name": short, "guid": int(values[0]), "createtxg": int(values[1])})
    return sorted(found, key=lambda snap: snap["createtxg"])


def _epoch(props):
    value = props.get("freebsd-ha:epoch", "-")
    return int(value) if value.isdigit() else 0


def writer_state(rows, node, datasets):
    """Return ("writer", epoch) when node is the recorded writer of every dataset, ("follower", writers) when of
    none; raise PushError when only of some (a switch is half done) or a dataset is missing."""
    mine, others = [], {}
    for dataset in datasets:
        props = rows.get(dataset)
        if props is None:
            raise PushError(f"dataset {dataset} is missing on {node}: provision the resource first")
        if props.get("freebsd-ha:writer") == node and props.get("readonly") == "off":
            mine.append(dataset)
        else:
            others[dataset] = f"{props.get('freebsd-ha:writer', '-')}/readonly={props.get('readonly', '?')}"
    if not others:
        return "writer", max(_epoch(rows[d]) for d in datasets)
    if not mine:
        return "follower", sorted(set(others.values()))
    raise PushError(
        f"{node} is the writable recorded writer of {', '.join(mine)} but not of {', '.join(sorted(others))}: a switch "
        "is half done; finish it with the runbook (move_leader/failover) before replication resumes"
    )


def plan_follower(node, local_snaps, remote_rows, names, epoch):
    """Return [{dataset, target, base, to}] of increments node needs (base None: up to date), checked for safety.

    local_snaps: {local dataset: snapshots}; remote_rows: parse_get rows of the follower; names: {local dataset:
    dataset on the follower}. Raises PushError naming the fix when the follower must not receive.
    """
    plan = []
    for dataset, target in names.items():
        props = remote_rows.get(target)
        if props is None:
            raise PushError(f"{node} lacks {target}: provision the follower (or resync it) first")
        if props.get("readonly") != "on":
            raise PushError(
                f"{node}:{target} is writable (readonly={props.get('readonly', '?')}); a follower must be read-only. "
                "Two writers? Check with status.yml and fence or rejoin it"
            )
        if _epoch(props) > epoch:
            raise PushError(
                f"{node}:{target} records epoch {_epoch(props)}, newer than this writer's {epoch}: this node is a "
                "stale writer; it must be fenced, not push"
            )
        ours = local_snaps[dataset]
        theirs = snapshots_of(remote_rows, target)
        by_guid = {snap["guid"]: snap for snap in ours}
        common = next((snap for snap in reversed(theirs) if snap["guid"] in by_guid), None)
        if common is None:
            raise PushError(f"{node}:{target} shares no snapshot with {dataset}: resync the follower")
        later = [snap["name"] for snap in theirs if snap["createtxg"] > common["createtxg"]]
        if later:
            raise PushError(
                f"{node}:{target} holds snapshots this writer lacks ({', '.join(later)}) after the common "
                f"{common['name']}: it followed another writer; rejoin it"
            )
        newest = ours[-1]
        # The base is named as this node names it (the follower may have renamed its copy).
        base = None if newest["guid"] == common["guid"] else by_guid[common["guid"]]["name"]
        plan.append({"dataset": dataset, "target": target, "base": base, "to": newest["name"]})
    return plan


def plan_prune(snaps, prefix, keep, protect_from_txg=None):
    """Return the short names of prefix snapshots to destroy: all but the newest `keep`, never one whose createtxg is
    at or after protect_from_txg (the base a lagging follower still needs)."""
    own = [snap for snap in snaps if snap["name"].startswith(prefix)]
    doomed = own[:-keep] if len(own) > keep else []
    return [snap["name"] for snap in doomed if protect_from_txg is None or snap["createtxg"] < protect_from_txg]


def snapshot_name(prefix, now):
    """Return <prefix><UTC YYYYmmdd_HHMMSS> for the epoch time now."""
    return prefix + time.strftime("%Y%m%d_%H%M%S", time.gmtime(now))


# ---------------------------------------------------------------- commands (I/O)


def run(argv):
    """Run argv; return (rc, stdout, stderr)."""
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=dict(os.environ, LC_ALL="C"))
    return done.returncode, done.stdout, done.stderr.strip()


def pipe(send_argv, recv_argv):
    """Run send_argv | recv_argv, counting the bytes of the stream; return (ok, bytes, error text)."""
    sender = subprocess.Popen(send_argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    receiver = subprocess.Popen(recv_argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    count = 0
    try:
        while True:
            chunk = sender.stdout.read(CHUNK)
            if not chunk:
                break
            count += len(chunk)
            receiver.stdin.write(chunk)
    except BrokenPipeError:
        sender.kill()
    finally:
        try:
            receiver.stdin.close()
        except BrokenPipeError:
            pass
    sender_err = sender.stderr.read().decode(errors="replace").strip()
    receiver_err = receiver.stderr.read().decode(errors="replace").strip()
    failed = sender.wait() != 0 or receiver.wait() != 0
    return not failed, count, "; ".join(text for text in (sender_err, receiver_err) if text)


class Node:
    """Runs zfs on this node or on a follower over ssh."""

    def __init__(self, config, address=None, runner=run, piper=pipe):
        self.config, self.address, self.runner, self.piper = config, address, runner, piper

    def argv(self, zfs_args):
        zfs = [self.config["zfs"], *zfs_args]
        if self.address is None:
            return zfs
        return [self.config["ssh_command"], *self.config["ssh_options"], self.address, shlex.join(zfs)]

    def call(self, zfs_args, what):
        rc, out, err = self.runner(self.argv(zfs_args))
        if rc != 0:
            where = self.address or "this node"
            raise PushError(f"{what} failed on {where} (exit {rc}): {err or out.strip()}")
        return out

    def read(self, properties, datasets, depth):
        return parse_get(self.call(build_get_args(properties, datasets, depth), "zfs get"))

    def destroy(self, snapshots):
        """Destroy the given dataset@name snapshots; on a follower in one command line (one ssh round trip)."""
        if not snapshots:
            return
        if self.address is None:
            for snapshot in snapshots:
                self.call(["destroy", snapshot], "zfs destroy")
            return
        line = " && ".join(shlex.join([self.config["zfs"], "destroy", snapshot]) for snapshot in snapshots)
        rc, out, err = self.runner([self.config["ssh_command"], *self.config["ssh_options"], self.address, line])
        if rc != 0:
            raise PushError(f"pruning on {self.address} failed (exit {rc}): {err or out.strip()}")


# ---------------------------------------------------------------- one round


def take_snapshots(local, datasets, name):
    """Snapshot every dataset as name: atomically in one call where zfs takes several (OpenZFS), else one by one
    (zfs-fuse takes one snapshot argument)."""
    wanted = [f"{dataset}@{name}" for dataset in datasets]
    rc, _out, err = local.runner([local.config["zfs"], "snapshot", *wanted])
    if rc == 0:
        return
    if len(wanted) == 1 or "too many arguments" not in err:
        raise PushError(f"zfs snapshot failed (exit {rc}): {err}")
    for snapshot in wanted:
        local.call(["snapshot", snapshot], "zfs snapshot")


def push_follower(config, node, local_snaps, epoch, *, dry_run, runner, piper):
    """Check, send to and prune one follower; return its report (never raises)."""
    follower = config["followers"][node]
    remote = Node(config, follower["address"], runner, piper)
    names = {config["datasets"][logical]: follower["datasets"][logical] for logical in config["datasets"]}
    report = {"ok": False, "bytes": 0, "sent": [], "pruned": [], "error": None, "common": {}}
    try:
        rows = remote.read(WRITER_PROPERTIES + SNAPSHOT_PROPERTIES, list(names.values()), 1)
        plan = plan_follower(node, local_snaps, rows, names, epoch)
        report["plan"] = plan
        # What the follower holds now; the writer keeps each of these until the follower has moved past it.
        report["common"] = {step["dataset"]: step["base"] or step["to"] for step in plan}
        for step in plan:
            if step["base"] is None or dry_run:
                continue
            send = [config["zfs"], "send", "-I", f"@{step['base']}", f"{step['dataset']}@{step['to']}"]
            ok, count, err = piper(send, remote.argv(["recv", "-u", step["target"]]))
            report["bytes"] += count
            if not ok:
                raise PushError(f"sending {step['dataset']}@{step['to']} to {node}:{step['target']} failed: {err}")
            report["sent"].append(f"{step['dataset']}@{step['base']}..{step['to']}")
            report["common"][step["dataset"]] = step["to"]
        for step in plan:
            received = snapshots_of(rows, step["target"])
            if step["base"] is not None and not dry_run:
                received.append({"name": step["to"], "guid": 0, "createtxg": float("inf")})
            doomed = plan_prune(received, config["prefix"], config["keep_followers"])
            report["pruned"] += [f"{step['target']}@{name}" for name in doomed]
        if not dry_run:
            remote.destroy(report["pruned"])
        report["ok"] = True
    except PushError as problem:
        report["error"] = str(problem)
    return report


def push_round(config, dry_run=False, now=None, runner=None, piper=None):
    """Run one round; return the summary (role, snapshot, followers, pruned, bytes_sent, errors)."""
    started = time.time() if now is None else now
    runner, piper = runner or run, piper or pipe
    local = Node(config, None, runner, piper)
    datasets = list(config["datasets"].values())
    summary = {"resource": config["resource"], "node": config["node"], "time": int(started), "dry_run": dry_run}
    rows = local.read(WRITER_PROPERTIES, datasets, 0)
    role, detail = writer_state(rows, config["node"], datasets)
    summary["role"] = role
    if role == "follower":
        summary.update(writers=detail, errors=[], bytes_sent=0)
        return summary
    epoch = detail
    name = snapshot_name(config["prefix"], started)
    if not dry_run:
        take_snapshots(local, datasets, name)
    summary["snapshot"] = name
    snap_rows = local.read(SNAPSHOT_PROPERTIES, datasets, 1)
    local_snaps = {dataset: snapshots_of(snap_rows, dataset) for dataset in datasets}
    if dry_run:
        for dataset in datasets:
            local_snaps[dataset].append({"name": name, "guid": 0, "createtxg": float("inf")})
    followers = sorted(config["followers"])
    with ThreadPoolExecutor(max_workers=max(1, len(followers))) as pool:
        reports = dict(
            zip(
                followers,
                pool.map(
                    lambda n: push_follower(config, n, local_snaps, epoch, dry_run=dry_run, runner=runner, piper=piper),
                    followers,
                ),
            )
        )
    summary["followers"] = reports
    summary["bytes_sent"] = sum(report["bytes"] for report in reports.values())
    errors = [f"{node}: {report['error']}" for node, report in reports.items() if report["error"]]
    summary["pruned"] = []
    for dataset in datasets:
        # The oldest snapshot any follower still needs as its base; unknown when a follower could not be read.
        bases = [report["common"].get(dataset) for report in reports.values()]
        if any(base is None for base in bases):
            errors.append(f"{dataset}: not pruned on this node, a follower's common snapshot is unknown")
            continue
        txg = {snap["name"]: snap["createtxg"] for snap in local_snaps[dataset]}
        doomed = plan_prune(local_snaps[dataset], config["prefix"], config["keep"], min(txg[b] for b in bases))
        summary["pruned"] += [f"{dataset}@{name}" for name in doomed]
    if not dry_run:
        local.destroy(summary["pruned"])
    summary["errors"] = errors
    summary["seconds"] = round(time.time() - started, 3) if now is None else 0
    return summary


# ---------------------------------------------------------------- command line


def main(argv=None):
    parser = argparse.ArgumentParser(prog="freebsd-ha-zfs-push", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the resource's JSON configuration (written by the role)")
    parser.add_argument("--dry-run", action="store_true", help="read everything, print the plan, change nothing")
    parser.add_argument("--validate", action="store_true", help="check the configuration only, run nothing")
    parser.add_argument("--verbose", action="store_true", help="print the summary as JSON on success too")
    options = parser.parse_args(argv)
    try:
        with open(options.config, encoding="utf-8") as handle:
            config = validate_config(json.load(handle))
    except (OSError, ValueError, PushError) as problem:
        print(f"freebsd-ha-zfs-push: {options.config}: {problem}", file=sys.stderr)
        return 2
    if options.validate:
        return 0
    os.makedirs(config["state_dir"], mode=0o700, exist_ok=True)
    base = os.path.join(config["state_dir"], config["resource"])
    with open(f"{base}.lock", "w", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # The previous round is still sending; cron starts the next one on the next tick.
            if options.verbose:
                print("freebsd-ha-zfs-push: a previous round is still running", file=sys.stderr)
            return 0
        try:
            summary = push_round(config, dry_run=options.dry_run)
        except PushError as problem:
            summary = {"resource": config["resource"], "node": config["node"], "time": int(time.time()),
                       "role": "error", "errors": [str(problem)], "bytes_sent": 0}  # fmt: skip
        if not options.dry_run:
            with open(f"{base}.json.new", "w", encoding="utf-8") as handle:
                json.dump(summary, handle, indent=1, sort_keys=True)
            os.replace(f"{base}.json.new", f"{base}.json")
    if options.verbose or options.dry_run:
        print(json.dumps(summary, indent=1, sort_keys=True))
    for error in summary["errors"]:
        print(f"freebsd-ha-zfs-push {config['resource']}: {error}", file=sys.stderr)
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
