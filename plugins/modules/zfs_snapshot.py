#!/usr/bin/python
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: zfs_snapshot
short_description: Create, destroy, hold/release or roll back to one ZFS snapshot
version_added: 0.1.0
description:
  - Makes sure the snapshot O(name) exists (V(present)), does not exist (V(absent)), or that its
    dataset is rolled back to it (V(rolled_back)); and that the user holds O(holds) are on or off it.
  - Never destroys a held snapshot, never destroys child snapshots unless O(recursive=true), and never
    destroys newer snapshots in a rollback unless O(destroy_newer=true). Never touches filesystems.
author:
  - freebsd_ha.storage contributors (@freebsd-ha)
extends_documentation_fragment:
  - freebsd_ha.storage._attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: partial
    details: On zfs without C(written) (zfs-fuse) V(rolled_back) always rolls back and reports a change.
options:
  name:
    description: Full snapshot name, V(<dataset>@<snapshot>).
    type: str
    required: true
  state:
    description: What to ensure.
    type: str
    choices: [present, absent, rolled_back]
    default: present
  recursive:
    description:
      - With V(present), create the same snapshot of all descendants atomically (C(zfs snapshot -r)).
      - With V(absent), also destroy same-named snapshots of descendants (C(zfs destroy -r)).
      - With O(holds), hold or release recursively.
    type: bool
    default: false
  properties:
    description: User properties set when the snapshot is created (not changed on an existing one).
    type: dict
    default: {}
  holds:
    description: Hold tags to put on (O(hold_state=present)) or take off (O(hold_state=absent)) the snapshot.
    type: list
    elements: str
    default: []
  hold_state:
    description: Whether the O(holds) tags must be on or off the snapshot.
    type: str
    choices: [present, absent]
    default: present
  destroy_newer:
    description: Allow V(rolled_back) to destroy snapshots newer than O(name) (C(zfs rollback -r)).
    type: bool
    default: false
  rescue:
    description:
      - With V(rolled_back), keep the current state instead of destroying it. The dataset is snapshotted
        (C(@rescue-<UTC>)) and renamed to C(<dataset>_rescue_<UTC>) with C(canmount=noauto); a clone of
        O(name) takes the dataset's name and its locally set properties and is promoted, so it owns the
        snapshots up to O(name) with their guids (replication continues from them). Nothing is copied.
      - The rescue keeps every newer snapshot and the unsnapshotted writes; its snapshot is returned in RV(rescue).
        It pins O(name) until the rescue dataset is destroyed.
      - Refused for a dataset with child datasets (the rename would move them).
      - V(false) runs a plain C(zfs rollback), which destroys the writes since the latest snapshot (and, with
        O(destroy_newer=true), the newer snapshots).
    type: bool
    default: true
notes:
  - Where zfs cannot list holds (zfs-fuse), tags are applied or released one by one and the errors
    "tag already exists" / "no such tag" count as already done; in check mode such runs report a change.
  - V(absent) on a held snapshot fails naming the holds (or the count, without a holds listing).
seealso:
  - module: freebsd_ha.storage.zfs_info
"""

EXAMPLES = r"""
- name: Snapshot the NFS tree before failover
  freebsd_ha.storage.zfs_snapshot:
    name: tank/nfs@pre-failover
    recursive: true
    properties: {"freebsd_ha:reason": failover}
    holds: [freebsd_ha_failover]

- name: Release the failover hold, then destroy the snapshot
  freebsd_ha.storage.zfs_snapshot:
    name: tank/nfs@pre-failover
    holds: [freebsd_ha_failover]
    hold_state: absent
- freebsd_ha.storage.zfs_snapshot:
    name: tank/nfs@pre-failover
    state: absent

- name: Return tank/nfs to the last replicated snapshot, discarding newer ones
  freebsd_ha.storage.zfs_snapshot:
    name: tank/nfs@zrepl_20250701_193148_000
    state: rolled_back
    destroy_newer: true
"""

RETURN = r"""
commands:
  description: argv lists run (reads) or planned (writes in check mode), in order.
  type: list
  elements: list
  returned: always
  sample: [["/sbin/zfs", "list", "-H", "-o", "name,createtxg,userrefs", "-t", "snapshot", "-d", "1", "tank/nfs"]]
plan:
  description: The write commands (argv tails) the module ran or would run; empty when nothing changed.
  type: list
  elements: list
  returned: always
  sample: [["snapshot", "tank/nfs@pre-failover"]]
rescue:
  description: The rescue snapshot that keeps the state a V(rolled_back) replaced (see O(rescue)); null otherwise.
  type: str
  returned: always
  sample: tank/nfs_rescue_20261121T134000Z@rescue-20261121T134000Z
diff:
  description: Before/after of the snapshot's existence and hold tags.
  type: dict
  returned: when changed and diff mode
  sample: {"before": {"exists": false}, "after": {"exists": true}}
"""

from datetime import datetime, timezone

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _zfs
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError, Runner, StateError
from ansible_collections.freebsd_ha.storage.plugins.module_utils._safety import local_properties, plan_rescue


def read_state(runner, params):
    """Return the snapshot rows of the dataset (and descendants when recursive), the held tags and capabilities."""
    name = _zfs.validate_snapshot_name(params["name"])
    dataset, _short = _zfs.split_snapshot_name(name)
    columns = ("name", "createtxg", "userrefs")
    argv = _zfs.build_list_argv(
        [dataset], columns, ("snapshot",), recursive=True, depth=None if params["recursive"] else 1
    )
    try:
        rows = _zfs.parse_list(runner.read(argv).stdout, columns)
    except CommandError as err:
        if _zfs.is_missing_dataset_error(err.stderr or ""):
            raise StateError(f"dataset '{dataset}' of snapshot {name} does not exist") from err
        raise
    for row in rows:
        row["createtxg"], row["userrefs"] = int(row["createtxg"]), int(row["userrefs"])
        row["dataset"], row["snapshot"] = _zfs.split_snapshot_name(row["name"])
    state = {"rows": rows, "caps": None, "holds": None}
    this = next((row for row in rows if row["name"] == name), None)
    needs_holds = this and this["userrefs"] and (params["holds"] or params["state"] == "absent")
    if needs_holds or params["state"] == "rolled_back":
        state["caps"] = _zfs.detect_capabilities(runner, _zfs.pool_of(name))
    if needs_holds and state["caps"].holds_listing:
        held = [row["name"] for row in rows if row["userrefs"] and (row["name"] == name or params["recursive"])]
        state["holds"] = _zfs.parse_holds(runner.read(_zfs.build_holds_argv(held)).stdout)
    if params["state"] == "rolled_back" and state["caps"].written:
        # The probe infers `written` from the zfs generation; a zfs that still lacks it means "unknown".
        result = runner.read(_zfs.build_get_argv([dataset], ["written"], parsable=True), check_rc=False)
        if result.rc == 0:
            state["written"] = int(_zfs.parse_get(result.stdout)[dataset]["written"]["value"])
        elif not _zfs.is_bad_property_error(result.stderr):
            raise runner.failure(result)
    if params["state"] == "rolled_back" and params["rescue"]:
        props = _zfs.parse_get(runner.read(_zfs.build_get_argv([dataset], ["all"], parsable=True)).stdout)[dataset]
        state["mounted"] = props.get("mounted", {}).get("value") == "yes"
        state["local"] = local_properties(props)
        listed = runner.read(_zfs.build_list_argv([dataset], ("name",), recursive=True, depth=1)).stdout
        state["children"] = [row["name"] for row in _zfs.parse_list(listed, ("name",)) if row["name"] != dataset]
    return state


def plan_changes(params, state):
    name, rows = params["name"], state["rows"]
    exists = any(row["name"] == name for row in rows)
    if params["state"] == "absent":
        if params["holds"]:
            raise StateError("holds cannot be managed with state: absent; release them with state: present first")
        return _zfs.plan_snapshot_absent(name, rows, state["holds"], params["recursive"])
    if params["state"] == "rolled_back":
        plan = _zfs.plan_rollback(name, rows, state.get("written"), params["destroy_newer"])
        if plan and params["rescue"]:
            dataset, short = _zfs.split_snapshot_name(name)
            plan, state["rescue"] = plan_rescue(
                dataset,
                short,
                datetime.now(timezone.utc),
                mounted=state["mounted"],
                local_properties=state["local"],
                children=state["children"],
            )
        return plan
    plan = _zfs.plan_snapshot_present(name, {row["name"] for row in rows}, params["recursive"], params["properties"])
    if state["holds"] is not None or not exists:
        tags = {hold["tag"] for hold in state["holds"] or [] if hold["snapshot"] == name}
    else:
        this = next(row for row in rows if row["name"] == name)
        tags = set() if this["userrefs"] == 0 else None
    return plan + _zfs.plan_holds(name, params["holds"], params["hold_state"], tags, params["recursive"])


def apply(runner, plan):
    """Run the plan; a hold/release that zfs reports as already done is not a failure."""
    for argv in plan:
        result = runner.change(argv, check_rc=False)
        if result is None or result.rc == 0:
            continue
        if (argv[0] == "hold" and _zfs.is_hold_exists_error(result.stderr)) or (
            argv[0] == "release" and _zfs.is_no_such_tag_error(result.stderr)
        ):
            continue
        raise runner.failure(result)


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "state": {"type": "str", "choices": ["present", "absent", "rolled_back"], "default": "present"},
            "recursive": {"type": "bool", "default": False},
            "properties": {"type": "dict", "default": {}},
            "holds": {"type": "list", "elements": "str", "default": []},
            "hold_state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "destroy_newer": {"type": "bool", "default": False},
            "rescue": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    runner = Runner(module, "zfs")
    try:
        state = read_state(runner, module.params)
        plan = plan_changes(module.params, state)
        apply(runner, plan)
    except (CommandError, StateError) as err:
        extra = err.to_result() if isinstance(err, CommandError) else {}
        module.fail_json(msg=str(err), commands=runner.commands, **extra)
    result = {"changed": bool(plan), "plan": plan, "commands": runner.commands, "rescue": state.get("rescue")}
    if plan and module._diff:
        name = module.params["name"]
        verbs = [argv[0] for argv in plan]
        before, after = {}, {}
        if "snapshot" in verbs or "destroy" in verbs:
            before["exists"], after["exists"] = "snapshot" not in verbs, "destroy" not in verbs
        for argv in plan:
            if argv[0] in ("hold", "release"):
                before.setdefault("holds", []).append(f"{'-' if argv[0] == 'hold' else '+'}{argv[-2]}")
                after.setdefault("holds", []).append(f"{'+' if argv[0] == 'hold' else '-'}{argv[-2]}")
        if "rollback" in verbs or "promote" in verbs:
            before["rolled_back_to"], after["rolled_back_to"] = None, name
        result["diff"] = {"before": before, "after": after, "before_header": name, "after_header": name}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
