#!/usr/bin/python
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: zfs_role
short_description: Make a node the single writer of a resource's ZFS datasets, or fence it read-only
version_added: 0.1.0
description:
  - Puts every dataset of a resource on this node in one role with one module call, whatever the number of datasets.
  - V(primary) loads the encryption key where it is not loaded, sets the mountpoint asked for, sets C(readonly=off),
    records the writer node and the authority epoch in the user properties C(freebsd-ha:writer) and
    C(freebsd-ha:epoch), and mounts the datasets.
  - V(secondary) fences the node, sets C(readonly=on) (replication receives still work), optionally takes one atomic
    snapshot of all the datasets (the final snapshot of a planned failover) and mounts or unmounts them as asked.
    The authority record is left as it is, so a stale node keeps showing the epoch it last held.
  - Refuses, before any change, datasets that do not exist and a primary epoch lower than one already recorded.
  - Never creates, destroys, renames or rolls back datasets and never touches snapshots other than the one it is asked
    to take.
author: freebsd_ha.storage contributors (@freebsd-ha)
extends_documentation_fragment:
  - freebsd_ha.storage._attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  datasets:
    description: The resource's datasets on this node.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Dataset name on this node, for example C(zdata/sink/f0/zdata/enc/nfsdata) on a zrepl replica.
        type: str
        required: true
      mountpoint:
        description: The service path the dataset must be mounted at (set as a local C(mountpoint) property).
        type: path
  role:
    description: V(primary) makes this node the writer; V(secondary) fences it read-only.
    type: str
    required: true
    choices: [primary, secondary]
  node:
    description: The writer's name recorded in C(freebsd-ha:writer). Required with O(role=primary).
    type: str
  epoch:
    description:
      - The authority epoch recorded in C(freebsd-ha:epoch); one more than the highest epoch any node of the resource
        carries. Required with O(role=primary).
    type: int
  mounted:
    description:
      - With O(role=secondary), V(true) keeps the replica mounted read-only at its service path, V(false) unmounts it,
        and leaving it unset does not touch mounts. A primary is always mounted.
    type: bool
  snapshot:
    description:
      - With O(role=secondary), the short name of a snapshot to take of every dataset after it is read-only
        (one atomic C(zfs snapshot) call), for example C(ha_failover_e7). Skipped where it exists.
    type: str
notes:
  - Reads every dataset with one C(zfs get all) and every snapshot with one C(zfs get -d 1), so the cost does not grow
    with round trips per dataset.
  - C(readonly) is set as a local property even where it is already inherited or received with the wanted value, so
    that a later change of the parent or a received property cannot flip it.
seealso:
  - module: freebsd_ha.storage.zfs_info
  - module: freebsd_ha.storage.zfs_replicate
"""

EXAMPLES = r"""
- name: Fence the old primary and take the final snapshot
  freebsd_ha.storage.zfs_role:
    datasets:
      - name: zdata/enc/nfsdata
        mountpoint: /data/nfs
    role: secondary
    mounted: true
    snapshot: ha_failover_e8

- name: Promote the replica on the standby as writer of epoch 8
  freebsd_ha.storage.zfs_role:
    datasets:
      - name: zdata/sink/f0/zdata/enc/nfsdata
        mountpoint: /data/nfs
    role: primary
    node: f1
    epoch: 8
"""

RETURN = r"""
datasets:
  description: The state of each dataset after the call (predicted in check mode), in the order given.
  returned: success
  type: list
  elements: dict
  sample:
    - name: zdata/sink/f0/zdata/enc/nfsdata
      readonly: false
      mounted: true
      mountpoint: /data/nfs
      keystatus: available
      writer: f1
      epoch: 8
      snapshot_count: 12
      newest_snapshot: {name: zdata/sink/f0/zdata/enc/nfsdata@ha_failover_e8, guid: 8113547261531207041,
                        createtxg: 4711, creation: 1795269600}
snapshot:
  description: The snapshots taken by this call (empty when none).
  returned: success
  type: list
  elements: str
  sample: [zdata/enc/nfsdata@ha_failover_e8]
commands:
  description: Every zfs command run, or planned in check mode.
  returned: always
  type: list
  elements: list
  sample: [[/sbin/zfs, set, readonly=on, zdata/enc/nfsdata]]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _dataset, _role, _zfs
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError, Runner, StateError

ARGUMENT_SPEC = dict(
    datasets=dict(
        type="list",
        elements="dict",
        required=True,
        options=dict(name=dict(type="str", required=True), mountpoint=dict(type="path")),
    ),
    role=dict(type="str", required=True, choices=list(_role.ROLES)),
    node=dict(type="str"),
    epoch=dict(type="int"),
    mounted=dict(type="bool"),
    snapshot=dict(type="str"),
)


def read_state(runner, names):
    """Return ({name: properties or None}, [snapshot dicts]): the datasets, then all their snapshots in one read."""
    current = _dataset.read_datasets(runner, names)
    present = [name for name in names if current[name] is not None]
    snapshots = []
    if present:
        snapshots = _zfs.parse_snapshot_properties(runner.read(_role.build_snapshots_argv(present)).stdout)
    return current, snapshots


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
        required_if=[("role", "primary", ("node", "epoch"))],
    )
    params = module.params
    runner = Runner(module, "zfs")
    names = [item["name"] for item in params["datasets"]]
    try:
        current, snapshots = read_state(runner, [_zfs.validate_dataset_name(name) for name in names])
        steps, before, after = _role.plan_role(
            params["datasets"],
            current,
            params["role"],
            node=params["node"],
            epoch=params["epoch"],
            mounted=params["mounted"],
            snapshot=params["snapshot"],
            snapshots={snap["name"] for snap in snapshots},
        )
        for argv in steps:
            runner.change(argv)
        if steps and not module.check_mode:
            current, snapshots = read_state(runner, names)
    except CommandError as error:
        module.fail_json(msg=error.msg, commands=runner.commands, **error.to_result())
    except (StateError, _zfs.ParseError) as error:
        module.fail_json(msg=str(error), commands=runner.commands)
    if module.check_mode:
        current = {name: _role.predict(current[name], after.get(name, {})) for name in names}
    views = [_role.summarise(name, current[name], snapshots) for name in names]
    result = dict(
        changed=bool(steps),
        commands=runner.commands,
        datasets=views,
        snapshot=after.get("snapshots", {}).get("created", []),
    )
    if steps:
        result["diff"] = dict(before=before, after=after, before_header=params["role"], after_header=params["role"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
