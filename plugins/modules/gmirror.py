#!/usr/bin/python
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: gmirror
short_description: Label, change, rebuild or stop a GEOM mirror, refusing to overwrite its newest copy
version_added: 0.1.0
description:
  - Runs one gmirror(8) O(action) on the mirror O(name) after reading C(gmirror list), and only when the mirror is
    not already in the wanted state.
  - V(rebuild) refuses to rewrite a component that holds newer data than the others, judged by the mirror's own
    metadata (GenID, SyncID and in-sync state of each component); V(insert) refuses a provider whose on-disk
    metadata (C(gmirror dump)) says it is a newer copy of this mirror. O(allow_overwrite_newer) overrides both.
  - Never uses C(gmirror clear), C(destroy), C(deactivate) or C(resize), and never adds C(-f) unless O(force=true).
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
    support: full
    details: V(rebuild) of a component that is ACTIVE and as new as the others runs only with O(force=true), and then every time.
options:
  name:
    description: Mirror name (C(gm0)); its provider is C(/dev/mirror/<name>).
    type: str
    required: true
  action:
    description:
      - V(label) creates the mirror from O(components) (their order gives priorities 0, 1, ...), with C(-n) (no
        autosync) and balance V(prefer) unless O(autosync)/O(balance) say otherwise, then waits for it to appear
        and sets O(priority) on the components. Unchanged when the mirror exists with these components (and maybe
        others inserted later, such as the ggate component).
      - V(insert) adds the O(components) not yet in the mirror (C(insert -p O(priority))), and sets O(priority) on
        those already in it.
      - V(remove) removes the O(components) still in the mirror (gmirror clears their metadata).
      - V(rebuild) rewrites the O(components) from the other, ACTIVE ones. Skips components already
        SYNCHRONIZING, and ACTIVE ones as new as the rest unless O(force=true).
      - V(configure) sets O(balance), O(slice), O(autosync), O(failsync), and O(priority) on O(components).
      - V(stop) stops the mirror (C(-f) with O(force=true)). V(forget) drops components that are no longer
        connected. V(activate) reconnects components that were marked inactive.
    type: str
    required: true
    choices: [label, insert, remove, rebuild, configure, stop, forget, activate]
  components:
    description: Providers, as C(ada1), C(/dev/ada1) or C(ggate0). Required for label, insert, remove, rebuild, activate.
    type: list
    elements: str
  priority:
    description:
      - Priority (0-255) for O(components). With balance V(prefer), reads go to the ACTIVE component with the
        biggest priority, so give the local disk a bigger one than the ggate component to keep reads local.
      - gmirror re-sorts components by priority only when they (re)connect, so a changed priority steers reads
        after the next reconnect.
    type: int
  balance:
    description: Read balancing (C(-b)). V(label) uses V(prefer) when not set; V(configure) changes it only when set.
    type: str
    choices: [load, prefer, round-robin, split]
  slice:
    description: Slice size for balance V(split) (C(-s)).
    type: int
  autosync:
    description:
      - Whether gmirror synchronises stale components by itself. V(label) uses V(false) (C(-n)) unless this is
        V(true), so that a reconnecting stale side waits for an explicit, checked V(rebuild).
    type: bool
  failsync:
    description: Whether to resynchronise after a crash with the mirror open for writing (V(false) is C(-F)).
    type: bool
  hardcode:
    description: Hardcode provider names in the metadata (C(-h)) for V(label) and V(insert).
    type: bool
    default: false
  inactive:
    description: Insert the components as inactive (C(insert -i)).
    type: bool
    default: false
  force:
    description:
      - V(label) and V(insert) - use providers that carry metadata of another (or a stopped) mirror, erasing it.
      - V(rebuild) - rebuild a component that is ACTIVE and as new as the others.
      - V(stop) - stop an open mirror (C(stop -f)).
    type: bool
    default: false
  allow_overwrite_newer:
    description:
      - Let V(rebuild) or V(insert) overwrite a component that holds newer data than the rest of the mirror.
        Those writes are lost. Only for when the other side was chosen as the survivor.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait, after V(label), for the kernel to taste the new mirror.
    type: int
    default: 30
notes:
  - >-
    gmirror prints kernel errors as C(gmirror: <message>) and exits 1, for example C(No such device: gm0.) or
    C(Provider ada1 is the last active provider in gm0.); the module fails with that message, C(rc) and C(stderr).
  - V(label) needs the MIRROR class loaded (C(kldload geom_mirror), which the C(freebsd_ha.storage.ggated) role
    does); without it gmirror writes the metadata but no mirror appears, so the module refuses first.
seealso:
  - module: freebsd_ha.storage.gmirror_info
  - module: freebsd_ha.storage.ggate
"""

EXAMPLES = r"""
- name: Label the mirror on the primary's local disk and make it the preferred reader
  freebsd_ha.storage.gmirror:
    name: gm0
    action: label
    components: [ada1]
    balance: prefer
    priority: 1

- name: Add the standby's disk, attached as ggate0, with a lower priority
  freebsd_ha.storage.gmirror:
    name: gm0
    action: insert
    components: [ggate0]
    priority: 0

- name: Resynchronise the stale remote side after failback (refused if ggate0 holds the newest data)
  freebsd_ha.storage.gmirror:
    name: gm0
    action: rebuild
    components: [ggate0]
"""

RETURN = r"""
mirror:
  description:
    - The mirror as C(gmirror list) shows it after the run (before it in check mode); null when it does not exist.
    - The same keys as one entry of RV(freebsd_ha.storage.gmirror_info#module:mirrors), without C(newest) and the
      components' C(in_sync).
  returned: always
  type: dict
  sample: {name: gm0, state: COMPLETE, geom_state: COMPLETE, components_configured: 2, balance: prefer, slice: 4096,
           flags: [NOAUTOSYNC], genid: 0, syncid: 1, id: 1234567890, type: AUTOMATIC, provider: mirror/gm0,
           mediasize: 1000204820480, mode: r0w0e0, sync_progress: null,
           components: [{name: ada1, state: ACTIVE, priority: 1, syncid: 1, genid: 0, flags: [], synchronized: null,
                         bytes_synced: null, id: 2345678901, mediasize: 1000204821504}]}
commands:
  description: Every command run (reads) or planned (writes in check mode), as argv lists.
  returned: always
  type: list
  elements: list
  sample: [["gmirror", "list"], ["gmirror", "rebuild", "-v", "gm0", "ggate0"], ["gmirror", "list"]]
diff:
  description: The changed parts of the mirror (existence, state, balance, flags, component states and priorities).
  returned: when changed
  type: dict
  sample:
    before: {components: {ada1: {state: ACTIVE, priority: 1}, ggate0: {state: STALE, priority: 0}}}
    after: {components: {ada1: {state: ACTIVE, priority: 1}, ggate0: {state: SYNCHRONIZING, priority: 0}}}
    before_header: gm0
    after_header: gm0
rc:
  description: Exit status of the failed command.
  returned: when a command failed
  type: int
  sample: 1
stderr:
  description: Standard error of the failed command.
  returned: when a command failed
  type: str
  sample: "gmirror: Provider ada1 is the last active provider in gm0."
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _geom
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError, Runner, StateError

ACTIONS = ["label", "insert", "remove", "rebuild", "configure", "stop", "forget", "activate"]
ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    action=dict(type="str", required=True, choices=ACTIONS),
    components=dict(type="list", elements="str"),
    priority=dict(type="int"),
    balance=dict(type="str", choices=list(_geom.BALANCES)),
    slice=dict(type="int"),
    autosync=dict(type="bool"),
    failsync=dict(type="bool"),
    hardcode=dict(type="bool", default=False),
    inactive=dict(type="bool", default=False),
    force=dict(type="bool", default=False),
    allow_overwrite_newer=dict(type="bool", default=False),
    wait_timeout=dict(type="int", default=30),
)
REQUIRED_IF = [("action", action, ("components",)) for action in ("label", "insert", "remove", "rebuild", "activate")]
OPTIONS = ("balance", "slice", "autosync", "failsync", "hardcode", "inactive", "priority")
NOT_LOADED = (
    "the MIRROR class is not loaded: kldload geom_mirror (the freebsd_ha.storage.ggated role loads it now and at boot) "
    "and run again"
)


def read_mirrors(runner):
    """Return {name: mirror} from `gmirror list`, or None when the MIRROR class is not loaded."""
    result = runner.read(_geom.build_list_argv(), check_rc=False)
    if result.rc != 0:
        if _geom.is_not_loaded_error(result.stderr):
            return None
        raise runner.failure(result)
    return _geom.parse_mirrors(result.stdout)


def read_metadata(runner, components):
    """Return {provider: metadata} from `gmirror dump` for the providers that carry gmirror metadata."""
    if not components:
        return {}
    result = runner.read(_geom.build_dump_argv(components), check_rc=False)
    found, errors = _geom.parse_dump(result.stdout, result.stderr)
    unreadable = {p: why for p, why in errors.items() if not _geom.is_no_metadata_error(why)}
    if unreadable:
        raise StateError(
            "cannot read gmirror metadata from " + ", ".join(f"{p} ({why})" for p, why in unreadable.items())
        )
    if result.rc != 0 and not errors:
        raise runner.failure(result)
    return found


def plan(runner, params, seen):
    """Return the argv tails of the action after reading the mirrors (and, for label/insert, the disks' metadata)."""
    name = _geom.validate_mirror_name(params["name"])
    action = params["action"]
    mirrors = read_mirrors(runner)
    if mirrors is None and action in ("label", "insert"):
        raise StateError(NOT_LOADED)
    mirrors = mirrors or {}
    mirror = seen["mirror"] = mirrors.get(name)
    components = params["components"] or []
    options = {key: params[key] for key in OPTIONS}
    if action == "label":
        unowned = [] if mirror else [c for c in components if _geom.find_owner(mirrors, c) is None]
        metadata = read_metadata(runner, unowned)
        return _geom.plan_label(name, components, mirrors, metadata, options, force=params["force"])
    if action == "insert":
        new = [c for c in components if mirror and _geom.find_component(mirror, c) is None]
        new = [c for c in new if _geom.find_owner(mirrors, c) is None]
        metadata = read_metadata(runner, new)
        return _geom.plan_insert(
            mirror,
            components,
            mirrors,
            metadata,
            options,
            allow_overwrite_newer=params["allow_overwrite_newer"],
            force=params["force"],
        )
    if action == "rebuild":
        return _geom.plan_rebuild(mirror, components, params["allow_overwrite_newer"], params["force"])
    if action == "remove":
        return _geom.plan_remove(mirror, components)
    if action == "configure":
        return _geom.plan_configure(mirror, options, components)
    if action == "stop":
        return _geom.plan_stop(mirror, params["force"])
    if action == "forget":
        return _geom.plan_forget(mirror)
    return _geom.plan_activate(mirror, name, components)


def apply(runner, params, steps):
    """Run the steps; after a label, wait until the kernel has tasted the new mirror."""
    for argv in steps:
        runner.change(argv)
        if argv[0] == "label" and not runner.check_mode:
            wait_for_mirror(runner, params["name"], params["wait_timeout"])


def wait_for_mirror(runner, name, timeout):
    """Poll `gmirror list` until mirror name exists; raise StateError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if name in (read_mirrors(runner) or {}):
            return
        if time.monotonic() >= deadline:
            raise StateError(
                f"gmirror label stored the metadata, but mirror {name} did not appear within {timeout} s; check "
                "`gmirror status`, dmesg, and that geom_mirror is loaded"
            )
        time.sleep(1)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, required_if=REQUIRED_IF, supports_check_mode=True)
    params = module.params
    runner = Runner(module, "gmirror")
    seen = {"mirror": None}
    try:
        steps = plan(runner, params, seen)
        apply(runner, params, steps)
        mirror = seen["mirror"]
        if steps and not module.check_mode:
            mirror = (read_mirrors(runner) or {}).get(params["name"])
    except CommandError as error:
        module.fail_json(msg=error.msg, commands=runner.commands, mirror=seen["mirror"], **error.to_result())
    except (StateError, _geom.ParseError) as error:
        module.fail_json(msg=str(error), commands=runner.commands, mirror=seen["mirror"])
    result = dict(changed=bool(steps), commands=runner.commands, mirror=mirror)
    if steps:
        before = _geom.mirror_view(seen["mirror"])
        after = _geom.predict_view(before, steps) if module.check_mode else _geom.mirror_view(mirror)
        result["diff"] = _geom.view_diff(before, after, params["name"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
