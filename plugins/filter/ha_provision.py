# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side planning of provision_pair.yml for ZFS based resources: what each node serves (keys, encryption
roots, zrepl jobs, guarded resources, computed over every resource of ha_resources) and the judgement of one
resource's gathered state (refusals before any change, the seed, the epoch).

Pure functions, so the whole decision of a provisioning run is tested without a node.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.freebsd_ha.storage.plugins.filter.ha import ha_assess, ha_resource

DEFAULT_IDENTITY = "/usr/local/etc/zrepl/ssh/identity"
ZREPL_PREFIX = "zrepl_"
# Keep every snapshot zrepl did not take (the seed of a zfs backend, runbook and rescue snapshots).
KEEP_OTHERS = {"type": "regex", "negate": True, "regex": f"^{ZREPL_PREFIX}"}


def _fail(message):
    raise AnsibleFilterError(f"freebsd_ha.storage: {message}")


def _pool(dataset):
    return dataset.split("/", 1)[0]


def _encryption_root(resource, node):
    """Return this node's encryption root of the resource, or None when the resource is not encrypted."""
    root = resource.get("encryption_root")
    if not root:
        return None
    for item in resource["datasets"]:
        if item["name"] != root and not item["name"].startswith(f"{root}/"):
            _fail(f"resource {resource['name']}: encryption_root {root} must contain every dataset, not {item['name']}")
    if node == resource["origin"] or resource["backend"] != "zrepl":
        return root
    # A zrepl replica (send.encrypted false) lives under the sink root, which is the node's own encryption root.
    return resource["zrepl"]["sink_root"]


def _push_job(resource, address, identity):
    zrepl = resource["zrepl"]
    return {
        "name": zrepl["job"],
        "type": "push",
        "connect": {"type": "ssh+stdinserver", "host": address, "user": "root", "port": 22, "identity_file": identity},
        "filesystems": {item["name"]: True for item in resource["datasets"]},
        "send": {"encrypted": False},
        "snapshotting": {"type": "periodic", "prefix": ZREPL_PREFIX, "interval": zrepl.get("snapshot_interval", "10m")},
        "pruning": {
            "keep_sender": [
                {"type": "not_replicated"},
                {"type": "last_n", "count": int(zrepl.get("keep_sender", 10)), "regex": f"^{ZREPL_PREFIX}"},
                KEEP_OTHERS,
            ],
            "keep_receiver": [
                {"type": "last_n", "count": int(zrepl.get("keep_receiver", 60)), "regex": f"^{ZREPL_PREFIX}"},
                KEEP_OTHERS,
            ],
        },
    }


def _guard_entry(resource, node, addresses):
    carp = resource.get("carp")
    return {
        "name": resource["name"],
        "datasets": list(resource["node_datasets"][node].values()),
        "services": resource["services"],
        "origin": resource["backend"] == "zrepl" and resource["origin"] == node,
        "carp": f"{carp['interface']} {carp['vhid']}" if carp else "",
        "peers": [f"{peer}@{addresses[peer]}" for peer in resource["nodes"] if peer != node],
    }


def ha_node_provision(resources, node, inventory_hosts, addresses, identity=None):
    """Return what node serves over every ZFS based resource of ha_resources.

    {key_files, encryption_roots, zrepl_jobs, zrepl_clients, zrepl_identity, guard, guard_before}; addresses: {node: the
    address its peers reach it at}. Sinks of one root are one job (zrepl refuses overlapping receiving root_fs).
    """
    identity = identity or DEFAULT_IDENTITY
    served = [ha_resource(resources, name, inventory_hosts) for name in sorted(resources or {})]
    served = [r for r in served if r["family"] == "zfs" and node in r["nodes"]]
    roots, pushes, sinks, clients, guard = {}, [], {}, [], []
    directions = {}
    for r in served:
        root = _encryption_root(r, node)
        if root:
            roots.setdefault(root, f"{node}:{_pool(root)}")
        guard.append(_guard_entry(r, node, addresses))
        if r["backend"] != "zrepl":
            continue
        origin, other = r["origin"], next(n for n in r["nodes"] if n != r["origin"])
        if (origin, other) in directions:
            _fail(
                f"resources {directions[(origin, other)]} and {r['name']} both replicate {origin} -> {other} with zrepl; "
                "put their datasets into one resource (one push job per direction)"
            )
        directions[(origin, other)] = r["name"]
        if node == origin:
            pushes.append(_push_job(r, addresses[other], identity))
            continue
        sink_root = r["zrepl"]["sink_root"]
        job = sinks.setdefault(
            sink_root,
            {
                "name": r["zrepl"]["sink_job"],
                "type": "sink",
                "root_fs": sink_root,
                "serve": {"type": "stdinserver", "client_identities": []},
                "recv": {"properties": {"override": {"readonly": "on"}}, "placeholder": {"encryption": "inherit"}},
            },
        )
        if origin not in job["serve"]["client_identities"]:
            job["serve"]["client_identities"].append(origin)
            clients.append({"client_identity": origin, "from_host": origin})
    before = []
    for entry in guard:
        for service in [*entry["services"], *(["zrepl"] if entry["origin"] else [])]:
            if service not in before:
                before.append(service)
    return {
        "key_files": [{"name": key} for key in sorted(set(roots.values()))],
        "encryption_roots": [{"name": root, "key": key} for root, key in sorted(roots.items())],
        "zrepl_jobs": pushes + [sinks[root] for root in sorted(sinks)],
        "zrepl_clients": clients,
        "zrepl_identity": identity if pushes else None,
        "guard": guard,
        "guard_before": before + (["zrepl"] if sinks and "zrepl" not in before else []),
    }


def _refusals(resource, assessment, states, overrides):
    primary = resource["primary"]
    nodes = assessment["nodes"]
    reasons = []
    for node in resource["nodes"]:
        info = states.get(node) or {}
        if not nodes[node]["reachable"] or info.get("failed"):
            reasons.append(f"{node}: its pool cannot be read ({info.get('msg', 'no answer')}); fix the node and re-run")
        for path in overrides.get(node) or []:
            reasons.append(
                f"{node}: {path} exists and was not written by the boot guard, which keeps writer services from "
                "starting with that file; move its settings to rc.conf and remove it"
            )
    for node, view in nodes.items():
        for dataset in view.get("datasets", {}).values():
            if dataset["writer"] not in (None, primary):
                reasons.append(
                    f"{node}: {dataset['name']} records writer {dataset['writer']} (epoch {dataset['epoch']}): the "
                    "resource was failed over, so provisioning would undo it; read status.yml and use failback.yml"
                )
            elif node != primary and not dataset["readonly"]:
                reasons.append(
                    f"{node}: {dataset['name']} exists and is writable, so it is not a replica of {primary}; "
                    "move it away (zfs rename) or make it read-only if it really is one"
                )
    primary_view = nodes[primary].get("datasets", {})
    for node, view in nodes.items():
        if node == primary:
            continue
        for logical, dataset in view.get("datasets", {}).items():
            if logical not in primary_view:
                reasons.append(
                    f"{node} holds {dataset['name']} but {primary} lacks {logical}: a primary that lost its data is "
                    "not provisioned over its replica; fail over to it or re-seed by hand"
                )
                continue
            lag = assessment["lag"].get(node, {}).get(logical)
            if lag and (lag["common"] is None or lag["diverged"]):
                reasons.append(
                    f"{node}: {dataset['name']} shares no snapshot with {primary}'s {logical}, or has snapshots after "
                    "the last common one; run resync.yml (or failback.yml) instead"
                )
    return reasons


def ha_provision_plan(states, resource, overrides, seed_snapshot):
    """Return the judgement of one resource's provisioning from every node's zfs_info read of its pools.

    {safe, reasons, fresh, epoch, seed: [{name, node, target}], seed_snapshot, existing: {node: [datasets]},
    records: {node: {dataset: "writer@epoch"}}, steps: [text]}. overrides: {node: [foreign override files]}.
    """
    assessment = ha_assess(states, resource, "status", source=resource["primary"])
    nodes = assessment["nodes"]
    primary = resource["primary"]
    reasons = _refusals(resource, assessment, states, overrides)
    epoch = max(nodes[primary].get("epoch", 0), 1)
    fresh = not any(view.get("datasets") for view in nodes.values())
    seed = [
        {"name": item["name"], "node": node, "target": resource["node_datasets"][node][item["name"]]}
        for node in resource["nodes"]
        if node != primary
        for item in resource["datasets"]
        if item["name"] not in nodes[node].get("datasets", {})
    ]
    existing = {
        node: sorted({row["name"] for row in (states.get(node) or {}).get("datasets", [])})
        for node in resource["nodes"]
    }
    records = {
        node: {d["name"]: f"{d['writer'] or ''}@{d['epoch']}" for d in view.get("datasets", {}).values()}
        for node, view in nodes.items()
    }
    missing_primary = [i["name"] for i in resource["datasets"] if i["name"] not in nodes[primary].get("datasets", {})]
    steps = [
        f"{primary}: create {', '.join(missing_primary) or 'nothing (datasets exist)'}; writer {primary}, epoch {epoch}",
        *(f"{s['node']}: seed {s['target']} from {primary}:{s['name']}@{seed_snapshot}" for s in seed),
        "every node: keys, zrepl, CARP and the boot guard as configured; services on the primary only",
    ]
    return {
        "safe": not reasons,
        "reasons": reasons,
        "fresh": fresh,
        "epoch": epoch,
        "seed": seed,
        "seed_snapshot": seed_snapshot,
        "existing": existing,
        "records": records,
        "steps": steps,
    }


def ha_resource_named(name, resources, inventory_hosts=None):
    """Return ha_resource(resources, name, inventory_hosts): the name first, so a list of names can be mapped."""
    return ha_resource(resources, name, inventory_hosts)


class FilterModule:
    """freebsd_ha.storage provisioning filters."""

    def filters(self):
        return {
            "ha_provision_plan": ha_provision_plan,
            "ha_node_provision": ha_node_provision,
            "ha_resource_named": ha_resource_named,
        }
