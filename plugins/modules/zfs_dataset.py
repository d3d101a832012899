#!/usr/bin/python
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: zfs_dataset
short_description: Create, rename, set properties of, mount and destroy a ZFS filesystem
version_added: 0.1.0
description:
  - Manages one ZFS filesystem or volume named O(name) - its existence, its locally set properties, whether it is
    mounted and whether its encryption key is loaded.
  - Reads the current state with one C(zfs get all) call, plans, and runs only the C(zfs) commands the plan needs.
  - Never touches properties not given in O(properties), never destroys children or snapshots unless
    O(destroy_dependents=true), and never uses forced flags.
author: freebsd_ha.storage contributors (@freebsd-ha)
extends_documentation_fragment:
  - freebsd_ha.storage._attributes
attributes:
  check_mode:
    support: full
    details: Every read runs; a planned destroy is validated with C(zfs destroy -n -v) where zfs has it.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  name:
    description: Dataset name, for example C(tank/nfs).
    type: str
    required: true
  state:
    description: Whether the dataset should exist.
    type: str
    choices: [present, absent]
    default: present
  properties:
    description:
      - Properties to set locally, for example C(compression), C(readonly), C(mountpoint), C(canmount) or user
        properties such as C(com.example:role).
      - Each is compared with the value zfs reports when its source is C(local); an inherited or default value
        equal to the wanted one is still set locally, so the setting survives a change of the parent.
      - Booleans become C(on)/C(off). Other values are compared as text, so give them as zfs prints them
        (C(10G), not C(10240M); C(lz4), not C(LZ4)), or every run reports a change.
      - Used as C(-o) options when the dataset is created.
    type: dict
    default: {}
  create_parents:
    description: Create missing parent datasets (C(zfs create -p), C(zfs rename -p)).
    type: bool
    default: false
  mounted:
    description:
      - V(true) mounts the dataset (C(zfs mount)), V(false) unmounts it (C(zfs unmount)); omit to leave it as it is.
      - Mounting is refused while the encryption key is not loaded; set O(key_loaded=true) to load it first.
    type: bool
  key_loaded:
    description:
      - V(true) loads the encryption key (C(zfs load-key)), V(false) unloads it (C(zfs unload-key)).
      - Only for an encrypted dataset that is its own encryption root, on a zfs with native encryption (detected
        from the C(keystatus) property, not from the platform); refused otherwise.
    type: bool
  key_location:
    description: Where to load the key from (C(zfs load-key -L)), for example C(file:///root/keys/nfs.key).
    type: str
  rename_from:
    description:
      - Rename this existing dataset to O(name). Nothing happens when O(name) exists and O(rename_from) does not;
        the task is refused when both exist or neither does.
    type: str
  destroy_dependents:
    description:
      - With O(state=absent), also destroy the children and snapshots of the dataset (C(zfs destroy -r)).
      - Without it a dataset that has any is not destroyed and the task fails naming them.
    type: bool
    default: false
notes:
  - ZFS cannot keep a snapshot of a dataset it destroys, so there is no rescue snapshot on O(state=absent);
    a dataset with snapshots is protected by the O(destroy_dependents) refusal instead.
  - zfs-fuse (pool v23, the lab) has no C(zfs destroy -n), no encryption and no C(load-key); check mode then
    skips the dry run with a warning. It also reports C(readonly) of a mounted dataset as C(off)/C(temporary).
  - A dataset created by the task is mounted by C(zfs create) as ZFS does; O(mounted) and O(key_loaded) are then
    applied after re-reading it (not predicted in check mode).
"""

EXAMPLES = r"""
- name: NFS export dataset, compressed, mounted
  freebsd_ha.storage.zfs_dataset:
    name: tank/nfs
    properties:
      compression: lz4
      mountpoint: /export/nfs
      com.example:role: primary
    mounted: true

- name: Make the replicated copy usable after failover (load key, mount)
  freebsd_ha.storage.zfs_dataset:
    name: zdata/sink/f0/nfsdata
    key_loaded: true
    key_location: file:///keys/f0.key
    mounted: true

- name: Rename the old dataset into place
  freebsd_ha.storage.zfs_dataset:
    name: tank/nfs
    rename_from: tank/nfs-old

- name: Destroy a scratch dataset and its snapshots
  freebsd_ha.storage.zfs_dataset:
    name: tank/scratch
    state: absent
    destroy_dependents: true
"""

RETURN = r"""
dataset:
  description: The dataset name and the state the task left (or would leave) it in.
  returned: always
  type: dict
  sample: {name: tank/nfs, state: present}
commands:
  description: Every command run (reads) or planned (writes in check mode), as argv lists.
  returned: always
  type: list
  elements: list
  sample: [["zfs", "get", "-H", "-o", "name,property,value,source", "all", "tank/nfs"], ["zfs", "set", "compression=lz4", "tank/nfs"]]
diff:
  description: The changed keys only (C(state), C(name), C(properties), C(mounted), C(key_loaded)) before and after.
  returned: when changed
  type: dict
  sample: {before: {properties: {compression: "off"}}, after: {properties: {compression: lz4}}, before_header: tank/nfs, after_header: tank/nfs}
rc:
  description: Exit status of the failed command.
  returned: when a command failed
  type: int
  sample: 1
stderr:
  description: Standard error of the failed command.
  returned: when a command failed
  type: str
  sample: "cannot create 'tank/x/y': parent does not exist"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _dataset
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError, Runner, StateError
from ansible_collections.freebsd_ha.storage.plugins.module_utils._zfs import (
    ParseError,
    validate_dataset_name,
)

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    properties=dict(type="dict", default={}),
    create_parents=dict(type="bool", default=False),
    mounted=dict(type="bool"),
    key_loaded=dict(type="bool"),
    key_location=dict(type="str", no_log=False),  # a file:// URI naming the key, never the key itself
    rename_from=dict(type="str"),
    destroy_dependents=dict(type="bool", default=False),
)


def read_present(runner, wanted):
    """Return {name: props or None} for name (and rename_from), adding encryption properties when needed."""
    names = [wanted["name"]] + ([wanted["rename_from"]] if wanted.get("rename_from") else [])
    datasets = _dataset.read_datasets(runner, names)
    target = wanted["name"] if datasets[wanted["name"]] is not None else names[-1]
    props = datasets[target]
    if _dataset.needs_encryption_read(wanted, props):
        extra = runner.read(_dataset.build_encryption_argv(target), check_rc=False)
        if extra.rc == 0:
            props.update(_dataset.datasets_from_get(extra.stdout, [target], set())[target])
        elif "invalid property" not in extra.stderr:
            raise runner.failure(extra)
    return datasets


def read_absent(runner, name):
    """Return (exists, dependents) from one `zfs get -r ... type` read."""
    result = runner.read(_dataset.build_dependents_argv(name), check_rc=False)
    missing, other = _dataset.split_get_errors(result.stderr)
    if result.rc != 0 and (other or name not in missing):
        raise runner.failure(result)
    if name in missing:
        return False, []
    return True, _dataset.dependents_from_get(result.stdout, name)


def plan(runner, wanted):
    """Return (plan, before, after) after reading the current state."""
    validate_dataset_name(wanted["name"])
    if wanted["state"] == "absent":
        exists, dependents = read_absent(runner, wanted["name"])
        return _dataset.plan_absent(wanted, exists, dependents)
    if wanted.get("rename_from"):
        validate_dataset_name(wanted["rename_from"])
    datasets = read_present(runner, wanted)
    return _dataset.plan_present(wanted, datasets[wanted["name"]], datasets.get(wanted.get("rename_from")))


def apply(module, runner, wanted, steps):
    """Run the plan (recorded only in check mode); return the steps run, follow-ups after a create included."""
    for argv in steps:
        if runner.check_mode and argv[0] == "destroy":
            dry = runner.read(_dataset.build_dry_run_argv(argv), check_rc=False)
            if dry.rc != 0 and "invalid option" in dry.stderr:
                module.warn("this zfs has no 'zfs destroy -n'; the destroy was planned but not dry-run validated")
            elif dry.rc != 0:
                raise runner.failure(dry)
        try:
            runner.change(argv)
        except CommandError as error:
            dependents = _dataset.parse_destroy_dependents(error.stderr)
            if argv[0] == "destroy" and dependents:
                error.msg = (
                    f"{wanted['name']} has dependents zfs would not destroy: "
                    f"{_dataset.describe_dependents(dependents)}; set destroy_dependents: true to destroy them"
                )
            raise
    created = any(argv[0] == "create" for argv in steps)
    if created and not runner.check_mode and (wanted["mounted"] is not None or wanted["key_loaded"] is not None):
        props = read_present(runner, dict(wanted, rename_from=None))[wanted["name"]]
        follow, _before, _after = _dataset.plan_mount_and_key(wanted, props)
        for argv in follow:
            runner.change(argv)
        steps = steps + follow
    return steps


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    wanted = dict(module.params)
    runner = Runner(module, "zfs")
    try:
        steps, before, after = plan(runner, wanted)
        steps = apply(module, runner, wanted, steps)
    except CommandError as error:
        module.fail_json(msg=error.msg, commands=runner.commands, **error.to_result())
    except (StateError, ParseError) as error:
        module.fail_json(msg=str(error), commands=runner.commands)
    result = dict(
        changed=bool(steps), commands=runner.commands, dataset=dict(name=wanted["name"], state=wanted["state"])
    )
    if steps:
        result["diff"] = dict(before=before, after=after, before_header=wanted["name"], after_header=wanted["name"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
