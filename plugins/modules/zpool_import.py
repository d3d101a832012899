#!/usr/bin/python
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: zpool_import
short_description: Import or export a ZFS pool, refusing pools the import listing says cannot be imported
version_added: 0.1.0
description:
  - Imports (C(zpool import)) or exports (C(zpool export)) one pool, for example the pool on C(/dev/hast/<resource>)
    during a HAST failover.
  - Before importing it reads C(zpool list) (already imported means nothing to do) and the C(zpool import) listing,
    and refuses, quoting the listing, when the pool is absent, ambiguous, UNAVAIL/FAULTED or needs O(force).
  - Never creates, destroys or upgrades pools, and never imports all pools (C(-a)).
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
  name:
    description: Pool name, or the numeric pool id the import listing shows (C(zpool list -o guid) once imported).
    type: str
    required: true
  state:
    description: V(imported) or V(exported).
    type: str
    choices: [imported, exported]
    default: imported
  force:
    description:
      - Import a pool last used by another system (C(zpool import -f)), or export a pool with busy mounts
        (C(zpool export -f)). Only when the other node no longer writes to it (HAST - after it was demoted).
    type: bool
    default: false
  search_dirs:
    description: Directories to search for devices (C(-d DIR) each), for example C(/dev/hast).
    type: list
    elements: path
    default: []
  altroot:
    description: Import under this alternate root (C(-R)).
    type: path
  no_mount:
    description: Import without mounting the datasets (C(-N); OpenZFS only, zfs-fuse lacks it).
    type: bool
    default: false
  readonly:
    description: Import read-only (C(-o readonly=on); OpenZFS only).
    type: bool
    default: false
notes:
  - zfs-fuse (the lab) prints nothing and exits 1 when no pool is found; OpenZFS prints C(no pools available to import).
    Both count as an empty listing.
"""

EXAMPLES = r"""
- name: Import the HAST-backed pool on the new primary
  freebsd_ha.storage.zpool_import:
    name: zhast
    search_dirs: [/dev/hast]
    force: true

- name: Export the pool before demoting this node
  freebsd_ha.storage.zpool_import:
    name: zhast
    state: exported
"""

RETURN = r"""
pool:
  description: The pool as C(zpool list) shows it after the run (C(name), C(health), C(guid)); null when not imported.
  returned: always
  type: dict
  sample: {name: zhast, health: ONLINE, guid: "15619661451235056610"}
importable:
  description: The parsed C(zpool import) listing (read only when an import was considered).
  returned: always
  type: list
  elements: dict
  sample: [{name: zhast, id: "15619661451235056610", state: ONLINE, status: null,
            action: "The pool can be imported using its name or numeric identifier.", see: null,
            config: "\tzhast  ONLINE\n\t  hast/storage  ONLINE"}]
commands:
  description: Every command run (reads) or planned (writes in check mode), as argv lists.
  returned: always
  type: list
  elements: list
  sample: [["zpool", "list", "-H", "-o", "name,health,guid"], ["zpool", "import", "-d", "/dev/hast"], ["zpool", "import", "-f", "-d", "/dev/hast", "zhast"]]
diff:
  description: The pool state before and after.
  returned: when changed
  type: dict
  sample: {before: {state: exported}, after: {state: imported}, before_header: zhast, after_header: zhast}
rc:
  description: Exit status of the failed command.
  returned: when a command failed
  type: int
  sample: 1
stderr:
  description: Standard error of the failed command.
  returned: when a command failed
  type: str
  sample: "cannot import 'stripe': one or more devices is currently unavailable"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _zpool
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError, Runner, StateError

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", choices=["imported", "exported"], default="imported"),
    force=dict(type="bool", default=False),
    search_dirs=dict(type="list", elements="path", default=[]),
    altroot=dict(type="path"),
    no_mount=dict(type="bool", default=False),
    readonly=dict(type="bool", default=False),
)


def read_imported(runner, name):
    """Return the `zpool list` row of the pool, or None when it is not imported."""
    pools = _zpool.parse_zpool_list(runner.read(_zpool.build_list_argv()).stdout)
    return _zpool.find_imported(pools, name)


def read_listing(runner, search_dirs):
    """Return the parsed `zpool import` listing ([] when no pool is found)."""
    result = runner.read(_zpool.build_import_listing_argv(search_dirs), check_rc=False)
    if _zpool.is_listing_empty_error(result.rc, result.stdout, result.stderr):
        return []
    if result.rc != 0:
        raise runner.failure(result)
    return _zpool.parse_import_listing(result.stdout)


def plan(runner, params, seen):
    """Return (steps, imported row, listing) after reading the current state; seen keeps the listing for failures."""
    _zpool.validate_pool_name(params["name"])
    imported = read_imported(runner, params["name"])
    if params["state"] == "exported":
        return _zpool.plan_export(params["name"], imported, params["force"]), imported, []
    if imported is not None:
        return [], imported, []
    listing = seen["listing"] = read_listing(runner, params["search_dirs"])
    steps = _zpool.plan_import(
        params["name"],
        imported,
        listing,
        params["search_dirs"],
        params["force"],
        params["altroot"],
        params["no_mount"],
        params["readonly"],
    )
    return steps, imported, listing


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    runner = Runner(module, "zpool")
    seen = {"listing": []}
    try:
        steps, pool, listing = plan(runner, params, seen)
        for argv in steps:
            runner.change(argv)
        if steps and not module.check_mode:
            pool = read_imported(runner, params["name"])
        elif steps:
            pool = None if params["state"] == "exported" else _predicted(params["name"], listing)
    except CommandError as error:
        module.fail_json(msg=error.msg, commands=runner.commands, importable=seen["listing"], **error.to_result())
    except (StateError, _zpool.ParseError) as error:
        module.fail_json(msg=str(error), commands=runner.commands, importable=seen["listing"])
    result = dict(changed=bool(steps), commands=runner.commands, pool=pool, importable=listing)
    if steps:
        before, after = ("imported", "exported") if params["state"] == "exported" else ("exported", "imported")
        result["diff"] = dict(
            before=dict(state=before),
            after=dict(state=after),
            before_header=params["name"],
            after_header=params["name"],
        )
    module.exit_json(**result)


def _predicted(name, listing):
    entry = _zpool.find_importable(listing, name)[0]
    return dict(name=entry["name"], health=entry["state"], guid=entry["id"])


if __name__ == "__main__":
    main()
