#!/usr/bin/python
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: ggate
short_description: Attach or detach a remote disk exported by ggated as a local /dev/ggateN
version_added: 0.1.0
description:
  - V(present) makes sure a GEOM Gate unit attaches O(path) exported by ggated(8) on O(host):O(port)
    (C(ggatec create)). An existing unit for the same host, port and path is reused, so the task is idempotent;
    the unit and its device are returned.
  - V(absent) destroys the unit (C(ggatec destroy -u N)) found by O(unit), or by O(host)/O(port)/O(path).
    An open unit (typically a gmirror component) is refused unless O(force=true) (C(ggatec destroy -f)).
  - Reads C(ggatec list -v) first. Never touches ggated, the exports file or the remote disk.
author:
  - freebsd_ha.storage contributors (@freebsd-ha)
extends_documentation_fragment:
  - freebsd_ha.storage._attributes
attributes:
  check_mode:
    support: full
    details: A unit that would be created without O(unit) has no number yet, so RV(unit) and RV(device) are null.
  diff_mode:
    support: full
  idempotent:
    support: full
options:
  state:
    description: Whether the unit must exist.
    type: str
    choices: [present, absent]
    default: present
  host:
    description: Address of the node running ggated (the peer's replication-link address). Required for V(present).
    type: str
  path:
    description: Path of the exported disk on that node, exactly as in its C(gg.exports) (C(/dev/ada1)).
    type: str
  port:
    description: ggated's port.
    type: int
    default: 3080
  unit:
    description: Unit number (C(ggate<unit>)); with V(present) and no O(unit), ggatec picks the first free one.
    type: int
  access:
    description: Access to request (C(-o)); ggated refuses more than the export allows.
    type: str
    choices: [ro, wo, rw]
    default: rw
  timeout:
    description: I/O timeout in seconds (C(-t)); ggatec's default 0 waits for ever for a reconnect.
    type: int
  queue_size:
    description: Request queue size (C(-q)).
    type: int
  force:
    description: With V(absent), destroy a unit that is open (C(ggatec destroy -f)); its I/O fails.
    type: bool
    default: false
notes:
  - >-
    Without C(-v), ggatec reports its errors only to syslog (for example C(Can't connect to server) or
    C(Error from server: Operation not permitted.) when the export does not admit this host); C(-v) would keep it in the
    foreground, so the module cannot use it. On failure look in C(/var/log/messages) on both nodes.
  - The unit stores C(host:port path) as given, so use the same spelling of O(host) every time.
seealso:
  - module: freebsd_ha.storage.gmirror
"""

EXAMPLES = r"""
- name: Attach the standby's disk on the primary
  freebsd_ha.storage.ggate:
    host: 10.0.0.2
    path: /dev/ada1
  register: remote

- name: Add it to the mirror
  freebsd_ha.storage.gmirror:
    name: gm0
    action: insert
    components: ["{{ remote.device }}"]
    priority: 0

- name: Detach it, even though gm0 still holds it open
  freebsd_ha.storage.ggate:
    state: absent
    unit: "{{ remote.unit }}"
    force: true
"""

RETURN = r"""
unit:
  description: Number of the unit attached (V(present)) or destroyed (V(absent)); null when there is none.
  returned: always
  type: int
  sample: 0
device:
  description: Device path of that unit.
  returned: always
  type: str
  sample: /dev/ggate0
ggate:
  description: The unit as C(ggatec list -v) shows it after the run (before it with V(absent)); null when none.
  returned: always
  type: dict
  sample: {unit: 0, name: ggate0, device: /dev/ggate0, host: 10.0.0.2, port: 3080, path: /dev/ada1,
           access: read-write, timeout: 0, queue_count: 0, queue_size: 1024, references: 1,
           mediasize: 1000204886016, sectorsize: 512, mode: r1w1e1}
units:
  description: Every unit C(ggatec list -v) showed before the change.
  returned: always
  type: list
  elements: dict
  sample: []
commands:
  description: Every command run (reads) or planned (writes in check mode), as argv lists.
  returned: always
  type: list
  elements: list
  sample: [["ggatec", "list", "-v"], ["ggatec", "create", "-o", "rw", "10.0.0.2", "/dev/ada1"], ["ggatec", "list", "-v"]]
diff:
  description: The unit before and after.
  returned: when changed
  type: dict
  sample: {before: {exists: false}, after: {exists: true, attaches: "10.0.0.2:3080 /dev/ada1"},
           before_header: "10.0.0.2:3080 /dev/ada1", after_header: "10.0.0.2:3080 /dev/ada1"}
rc:
  description: Exit status of the failed command.
  returned: when a command failed
  type: int
  sample: 1
stderr:
  description: Standard error of the failed command.
  returned: when a command failed
  type: str
  sample: ""
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _geom
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError, Runner, StateError

ARGUMENT_SPEC = dict(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    host=dict(type="str"),
    path=dict(type="str"),
    port=dict(type="int", default=_geom.GGATE_DEFAULT_PORT),
    unit=dict(type="int"),
    access=dict(type="str", choices=list(_geom.GGATE_ACCESS), default="rw"),
    timeout=dict(type="int"),
    queue_size=dict(type="int"),
    force=dict(type="bool", default=False),
)
REQUIRED_IF = [("state", "present", ("host", "path")), ("state", "absent", ("unit", "path"), True)]
REQUIRED_TOGETHER = [("host", "path")]
SYSLOG_HINT = (
    "ggatec reports the reason only to syslog without -v: look for 'Can't connect to server' or 'Error from server' "
    "in /var/log/messages here, and for 'Unauthorized connection' or 'Cannot open' in the peer's"
)


def read_units(runner):
    """Return the parsed `ggatec list -v` ([] when the GATE class is not loaded: ggatec then prints nothing)."""
    return _geom.parse_ggatec_list(runner.read(_geom.build_ggatec_list_argv()).stdout)


def create(runner, params, steps):
    """Run the create; return the unit number ggatec printed (or the one asked for)."""
    result = runner.change(steps[0])
    if result is None:
        return params["unit"]
    printed = _geom.parse_ggatec_create(result.stdout)
    return printed if printed is not None else params["unit"]


def attaches(unit):
    """Return `host:port path`, what ggatec stores as a unit's info."""
    return f"{unit.get('host')}:{unit.get('port')} {unit.get('path')}"


def main():
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        required_if=REQUIRED_IF,
        required_together=REQUIRED_TOGETHER,
        supports_check_mode=True,
    )
    params = module.params
    runner = Runner(module, "ggatec")
    units, entry, unit = [], None, None
    try:
        units = read_units(runner)
        if params["state"] == "present":
            steps, entry = _geom.plan_ggate_create(
                units,
                params["host"],
                params["path"],
                params["port"],
                params["access"],
                params["unit"],
                timeout=params["timeout"],
                queue_size=params["queue_size"],
            )
            unit = entry["unit"] if entry else create(runner, params, steps) if steps else None
            if steps and not module.check_mode:
                entry = _geom.find_ggate(read_units(runner), unit=unit)
        else:
            steps, entry = _geom.plan_ggate_destroy(
                units, params["unit"], params["host"], params["path"], params["port"], params["force"]
            )
            unit = entry["unit"] if entry else None
            for argv in steps:
                runner.change(argv)
    except CommandError as error:
        msg = error.msg if (error.stderr or error.stdout).strip() else f"{error.msg.rstrip(': ')}; {SYSLOG_HINT}"
        module.fail_json(msg=msg, commands=runner.commands, units=units, **error.to_result())
    except (StateError, _geom.ParseError) as error:
        module.fail_json(msg=str(error), commands=runner.commands, units=units)
    device = None if unit is None else f"{_geom.DEV_PREFIX}{_geom.GGATE_PREFIX}{unit}"
    result = dict(changed=bool(steps), unit=unit, device=device, ggate=entry, units=units, commands=runner.commands)
    if steps:
        subject = params if params["state"] == "present" else entry
        present, absent = {"exists": True, "attaches": attaches(subject)}, {"exists": False}
        before, after = (absent, present) if params["state"] == "present" else (present, absent)
        header = attaches(subject)
        result["diff"] = dict(before=before, after=after, before_header=header, after_header=header)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
