#!/usr/bin/python
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: zfs_info
short_description: Read ZFS datasets, their snapshots and snapshot holds under given roots
version_added: 0.1.0
description:
  - Lists the filesystems and volumes under O(roots) with the chosen properties, their snapshots
    (name, guid, createtxg, creation, userrefs) and, optionally, the user holds on those snapshots.
  - Runs one C(zfs list) per kind of object for all roots together and one C(zfs holds) call for
    every snapshot that has holds, so it stays cheap on pools with many thousands of snapshots.
  - Changes nothing.
author:
  - freebsd_ha.storage contributors (@freebsd-ha)
extends_documentation_fragment:
  - freebsd_ha.storage._attributes
  - freebsd_ha.storage._attributes.INFO_MODULE
options:
  roots:
    description:
      - Datasets to start from, for example V(tank/nfs). All must exist.
      - The capability probe runs against the pool of the first root.
    type: list
    elements: str
    required: true
  recursive:
    description:
      - Include descendants of the roots (C(zfs list -r)). When V(false), only the roots themselves
        and the roots' own snapshots are returned.
    type: bool
    default: true
  types:
    description: Dataset types to list in RV(datasets).
    type: list
    elements: str
    choices: [filesystem, volume]
    default: [filesystem, volume]
  properties:
    description:
      - Properties returned for each dataset, as strings exactly as zfs prints them
        (exact numbers with C(-p) where the zfs supports C(list -p), human units otherwise).
      - User properties such as V(freebsd_ha:role) are allowed.
    type: list
    elements: str
    default: []
  snapshots:
    description: Return the snapshots of the listed datasets in RV(snapshots).
    type: bool
    default: true
  written:
    description:
      - Add to each dataset of RV(datasets) the key C(written), the bytes it changed after its newest snapshot
        (null when it has none), and return RV(written_exact). A read-only replica with C(written) above zero was
        written to behind replication's back, and an incremental receive into it would fail.
      - Needs O(snapshots=true). One more C(zfs get) call for all the datasets.
      - Where zfs has the C(written) property it is read as is; elsewhere (zfs-fuse) it is the difference of
        C(referenced) between the dataset and its newest snapshot, which misses an overwrite in place of as many bytes.
    type: bool
    default: false
  holds:
    description:
      - Return the user holds of snapshots whose C(userrefs) is above zero in RV(holds).
      - Needs O(snapshots=true). Skipped with a warning where zfs has no C(zfs holds) listing (zfs-fuse).
    type: bool
    default: false
notes:
  - Capabilities are probed once per run with at most two read-only commands (see RV(capabilities)).
  - On zfs without C(zfs list -p) (zfs-fuse, pool version 23) snapshot numbers are read with
    C(zfs get -p) instead, because its C(zfs list) prints guid humanised (V(3.84E)).
  - Snapshot C(creation) is Unix epoch seconds (int) in both paths.
seealso:
  - module: freebsd_ha.storage.zfs_snapshot
"""

EXAMPLES = r"""
- name: Read the NFS datasets, their snapshots and holds
  freebsd_ha.storage.zfs_info:
    roots: [tank/nfs]
    properties: [mountpoint, readonly, "freebsd_ha:role"]
    holds: true
  register: nfs

- name: Refuse to continue when the standby copy is writable
  ansible.builtin.assert:
    that: nfs.datasets | selectattr('readonly', 'equalto', 'off') | list | length == 0
    fail_msg: tank/nfs is writable on the standby; set readonly=on before failover.

- name: Only the snapshots of one dataset, not its children
  freebsd_ha.storage.zfs_info:
    roots: [zroot/var/mail]
    recursive: false
"""

RETURN = r"""
datasets:
  description: One entry per dataset in zfs order, with C(name) and one key per requested property.
  type: list
  elements: dict
  returned: always
  sample: [{"name": "tank/nfs", "mountpoint": "/tank/nfs", "readonly": "off"}]
snapshots:
  description:
    - Snapshots in zfs order (grouped by dataset, then by creation).
    - C(guid), C(createtxg), C(creation) (epoch seconds) and C(userrefs) are integers.
  type: list
  elements: dict
  returned: always (empty when O(snapshots=false))
  sample: [{"name": "tank/nfs@a", "dataset": "tank/nfs", "snapshot": "a", "guid": 13775173096266525445,
            "createtxg": 18, "creation": 1795267783, "userrefs": 1}]
holds:
  description:
    - User holds, tags verbatim (trailing spaces kept). C(timestamp) is the text zfs prints
      (V(%a %b %e %H:%M %Y), local time of the host).
  type: list
  elements: dict
  returned: always (empty when not requested or not supported)
  sample: [{"snapshot": "tank/nfs@a", "tag": "zrepl_last_received_J_nfs", "timestamp": "Sat Nov 21 13:29 2026"}]
written_exact:
  description: Whether the C(written) figures of RV(datasets) are zfs's own (true) or estimated from C(referenced).
  type: bool
  returned: when O(written=true)
  sample: false
capabilities:
  description: What the host's zfs supports, from the probe.
  type: dict
  returned: always
  sample: {"list_parsable": true, "holds_listing": true, "encryption": true, "bookmarks": true,
           "raw_send": true, "resumable_receive": true, "written": true, "probe": "openzfs"}
commands:
  description: The argv lists that ran, in order.
  type: list
  elements: list
  returned: always
  sample: [["/sbin/zfs", "get", "-H", "-o", "value", "encryption", "tank"]]
"""

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _zfs
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError, Runner, StateError

_MISSING_RE = re.compile(r"cannot open '(.*)': dataset does not exist")


def read_or_explain(runner, argv):
    """Run a zfs read; turn "dataset does not exist" into a refusal naming the root."""
    try:
        return runner.read(argv).stdout
    except CommandError as err:
        missing = _MISSING_RE.search(err.stderr or "")
        if missing:
            raise StateError(f"root '{missing.group(1)}' does not exist; check roots") from err
        raise


def read_state(runner, params):
    roots = [_zfs.validate_dataset_name(root) for root in params["roots"]]
    caps = _zfs.detect_capabilities(runner, _zfs.pool_of(roots[0]))
    columns = ["name", *params["properties"]]
    argv = _zfs.build_list_argv(roots, columns, params["types"], params["recursive"], caps.list_parsable)
    datasets = _zfs.parse_list(read_or_explain(runner, argv), columns)
    snapshots, warnings = [], []
    if params["snapshots"]:
        depth = None if params["recursive"] else 1
        if caps.list_parsable:
            argv = _zfs.build_list_argv(roots, _zfs.SNAPSHOT_COLUMNS, ("snapshot",), True, True, depth)
            snapshots = _zfs.parse_snapshots(read_or_explain(runner, argv))
        else:
            argv = _zfs.build_get_argv(roots, _zfs.SNAPSHOT_COLUMNS[1:], parsable=True, recursive=True, depth=depth)
            snapshots = [
                row
                for row in _zfs.parse_snapshot_properties(read_or_explain(runner, argv))
                if params["recursive"] or row["dataset"] in roots
            ]
    state = {"datasets": datasets, "snapshots": snapshots, "holds": [], "capabilities": caps.to_dict()}
    if params["written"]:
        state["written_exact"] = read_written(runner, datasets, snapshots, caps.written)
    if params["holds"]:
        held = [row["name"] for row in snapshots if row["userrefs"]]
        if not caps.holds_listing:
            warnings.append("this zfs cannot list holds (no `zfs holds`); holds not returned, see userrefs")
        elif held:
            state["holds"] = _zfs.parse_holds(runner.read(_zfs.build_holds_argv(held)).stdout)
    return state, warnings


def read_written(runner, datasets, snapshots, exact):
    """Add `written` to every dataset row; return whether the figures are zfs's own."""
    if not datasets:
        return exact
    newest = {}
    for row in datasets:
        own = [snap for snap in snapshots if snap["dataset"] == row["name"]]
        newest[row["name"]] = max(own, key=lambda snap: snap["createtxg"])["name"] if own else None
    argv = _zfs.build_written_argv(list(newest), [name for name in newest.values() if name], exact)
    written = _zfs.written_since_newest_snapshot(runner.read(argv).stdout, newest, exact)
    for row in datasets:
        row["written"] = written[row["name"]]
    return exact


def main():
    module = AnsibleModule(
        argument_spec={
            "roots": {"type": "list", "elements": "str", "required": True},
            "recursive": {"type": "bool", "default": True},
            "types": {
                "type": "list",
                "elements": "str",
                "choices": ["filesystem", "volume"],
                "default": ["filesystem", "volume"],
            },
            "properties": {"type": "list", "elements": "str", "default": []},
            "snapshots": {"type": "bool", "default": True},
            "holds": {"type": "bool", "default": False},
            "written": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    runner = Runner(module, "zfs")
    try:
        if module.params["holds"] and not module.params["snapshots"]:
            raise StateError("holds: true needs snapshots: true (holds are read for snapshots with userrefs > 0)")
        if module.params["written"] and not module.params["snapshots"]:
            raise StateError("written: true needs snapshots: true (it is measured against the newest snapshot)")
        if not module.params["roots"]:
            raise StateError("roots must name at least one dataset")
        state, warnings = read_state(runner, module.params)
    except (CommandError, StateError) as err:
        extra = err.to_result() if isinstance(err, CommandError) else {}
        module.fail_json(msg=str(err), commands=runner.commands, **extra)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(changed=False, commands=runner.commands, **state)


if __name__ == "__main__":
    main()
