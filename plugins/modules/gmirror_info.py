#!/usr/bin/python
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: gmirror_info
short_description: Read the state, components, priorities, sync ids and sync progress of GEOM mirrors
version_added: 0.1.0
description:
  - Reads C(gmirror list) once and returns every mirror (or the ones named in O(name)) with its state and, per
    component, the state, priority, GenID, SyncID, flags and synchronisation progress.
  - The per-component GenID/SyncID and in-sync state are what M(freebsd_ha.storage.gmirror) uses to decide which
    copy is newest; C(newest) names the components that hold it.
  - Changes nothing.
author:
  - freebsd_ha.storage contributors (@freebsd-ha)
extends_documentation_fragment:
  - freebsd_ha.storage._attributes
  - freebsd_ha.storage._attributes.INFO_MODULE
options:
  name:
    description: Mirror names to report; every mirror when empty. Names that do not exist are listed in RV(missing).
    type: list
    elements: str
    default: []
notes:
  - C(gmirror list) without names shows only mirrors that have a provider, so a mirror still in the kernel's
    STARTING phase (waiting, 4 seconds by default, for its components) appears once it has started.
  - Without the MIRROR class loaded gmirror says C(Command 'list' not available; try 'load' first.); the module
    then returns no mirrors and RV(loaded=false).
seealso:
  - module: freebsd_ha.storage.gmirror
"""

EXAMPLES = r"""
- name: Read the mirror before a failover
  freebsd_ha.storage.gmirror_info:
    name: [gm0]
  register: gm

- name: Refuse to go on while the mirror is synchronising
  ansible.builtin.assert:
    that: gm.mirrors.gm0.state == 'COMPLETE'
    fail_msg: "gm0 is {{ gm.mirrors.gm0.state }} ({{ gm.mirrors.gm0.sync_progress }}% synchronised); wait for COMPLETE"
"""

RETURN = r"""
mirrors:
  description:
    - The mirrors by name. C(state) is V(COMPLETE), V(DEGRADED), V(SYNCHRONIZING) (degraded while a
      component synchronises) or V(STARTING); C(geom_state) is the kernel's own C(State).
    - C(sync_progress) is the lowest C(Synchronized) percentage of the synchronising components (null when
      none synchronises); C(newest) lists the components whose (GenID, SyncID, in sync) is the biggest.
  returned: always
  type: dict
  sample:
    gm0:
      name: gm0
      state: SYNCHRONIZING
      geom_state: DEGRADED
      components_configured: 2
      balance: prefer
      slice: 4096
      flags: [NOAUTOSYNC]
      genid: 0
      syncid: 2
      id: 1234567890
      type: AUTOMATIC
      provider: mirror/gm0
      mediasize: 1000204820480
      mode: r1w1e1
      sync_progress: 64
      newest: [ada1]
      components:
        - {name: ada1, state: ACTIVE, priority: 1, syncid: 2, genid: 0, flags: [], synchronized: null,
           bytes_synced: null, id: 2345678901, mediasize: 1000204821504, in_sync: true}
        - {name: ggate0, state: SYNCHRONIZING, priority: 0, syncid: 2, genid: 0, flags: [DIRTY, SYNCHRONIZING],
           synchronized: 64, bytes_synced: 640131072000, id: 3456789012, mediasize: 1000204821504, in_sync: false}
missing:
  description: Names given in O(name) that are not mirrors on this host.
  returned: always
  type: list
  elements: str
  sample: []
loaded:
  description: Whether the MIRROR class (geom_mirror) is loaded.
  returned: always
  type: bool
  sample: true
commands:
  description: The command run, as an argv list.
  returned: always
  type: list
  elements: list
  sample: [["gmirror", "list"]]
rc:
  description: Exit status of the failed command.
  returned: when a command failed
  type: int
  sample: 1
stderr:
  description: Standard error of the failed command.
  returned: when a command failed
  type: str
  sample: "gmirror: Cannot get GEOM tree: Operation not permitted"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _geom
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError, Runner


def describe(mirror):
    """Return the mirror with `in_sync` per component and the names of the components holding the newest data."""
    components = [dict(c, in_sync=_geom.is_in_sync(c)) for c in mirror["components"]]
    newest = max((_geom.freshness(c) for c in components), default=None)
    return dict(mirror, components=components, newest=[c["name"] for c in components if _geom.freshness(c) == newest])


def main():
    module = AnsibleModule(
        argument_spec=dict(name=dict(type="list", elements="str", default=[])),
        supports_check_mode=True,
    )
    runner = Runner(module, "gmirror")
    try:
        result = runner.read(_geom.build_list_argv(), check_rc=False)
        loaded = not (result.rc != 0 and _geom.is_not_loaded_error(result.stderr))
        if result.rc != 0 and loaded:
            raise runner.failure(result)
        mirrors = _geom.parse_mirrors(result.stdout) if loaded else {}
    except CommandError as error:
        module.fail_json(msg=error.msg, commands=runner.commands, **error.to_result())
    except _geom.ParseError as error:
        module.fail_json(msg=f"cannot read `gmirror list`: {error}", commands=runner.commands)
    wanted = module.params["name"] or list(mirrors)
    module.exit_json(
        changed=False,
        mirrors={name: describe(mirrors[name]) for name in wanted if name in mirrors},
        missing=[name for name in wanted if name not in mirrors],
        loaded=loaded,
        commands=runner.commands,
    )


if __name__ == "__main__":
    main()
