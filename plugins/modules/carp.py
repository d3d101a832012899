#!/usr/bin/python
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: carp
short_description: Read or force the CARP state, advskew and demotion of one vhid on a FreeBSD node
version_added: 0.1.0
description:
  - Reads one CARP vhid of one interface (C(ifconfig <interface>)) and the node's C(net.inet.carp) sysctls, and
    returns its state (V(MASTER), V(BACKUP) or V(INIT)), advskew, advbase, addresses, and the node's demotion and
    preempt settings. Without O(state), O(advskew) or O(demotion) it only reads.
  - With O(state) it forces the vhid to MASTER or BACKUP (C(ifconfig <if> vhid <N> state master|backup)); with
    O(method=advskew) it first sets the vhid's advskew low (master) or high (backup) so the new role sticks.
  - With O(demotion) it brings the node's global demotion counter to that value. The kernel ADDS a written value to the
    counter (carp(4)), so the module writes the difference C(sysctl net.inet.carp.demotion=<wanted - current>).
  - Refuses, before any change, when the interface or the vhid does not exist, when carp(4) is not loaded, and when
    the vhid is INIT (interface down or no address). Never creates or removes vhids or addresses, never changes the
    pass or advbase, and never writes rc.conf (the runtime change is lost at reboot; see the C(carp) role).
author: freebsd_ha.storage contributors (@freebsd-ha)
extends_documentation_fragment:
  - freebsd_ha.storage._attributes
attributes:
  check_mode:
    support: full
    details: Reads run; the planned C(ifconfig)/C(sysctl) writes are returned in RV(commands) and not run.
  diff_mode:
    support: full
  idempotent:
    support: full
    details: >-
      O(method=state) is idempotent per call, but with C(net.inet.carp.preempt=1) a better-placed peer takes a forced
      MASTER back at its next advertisement; see the notes.
options:
  interface:
    description: The interface that carries the vhid (C(em0), C(vlan316), C(lagg0)).
    type: str
    required: true
  vhid:
    description: The CARP virtual host id (1-255). It must already exist on O(interface).
    type: int
    required: true
  state:
    description:
      - V(master) or V(backup). Omitted, the state is only read.
      - After a change the module reads the vhid again (after O(settle_time)) and fails if it is not in this state.
    type: str
    choices: [master, backup]
  method:
    description:
      - How O(state) is forced.
      - V(state) runs C(ifconfig <if> vhid <N> state <state>) only; the advertisement values stay as they are.
      - V(advskew) first sets the vhid's advskew (O(advskew) if given, else V(0) for master and V(240), the kernel's
        CARP_MAXSKEW, for backup), then forces the state, so that no peer takes the role back by preemption.
    type: str
    choices: [state, advskew]
    default: state
  advskew:
    description:
      - The advskew the vhid should have (0-254; lower wins the election). With O(method=advskew) it replaces the
        default low/high value. Runtime only (C(ifconfig <if> vhid <N> advskew <S>)).
    type: int
  demotion:
    description:
      - The value the node's global C(net.inet.carp.demotion) counter should have. The counter is added to the
        advskew of every vhid on the node, and the kernel also raises it itself (C(ifdown_demotion_factor),
        C(senderr_demotion_factor)); setting an absolute value cancels such automatic demotion, so use it to undo
        your own adjustments.
    type: int
  settle_time:
    description:
      - Seconds to wait after a change before reading the vhid back. CARP decides at advertisement time (every
        advbase seconds plus advskew/256; a backup declares the master down after three missed advertisements), so
        on real hosts use about 3 x advbase + 1 to catch a peer taking the role back; V(0) reads at once.
    type: int
    default: 0
notes:
  - "carp(4) semantics: a MASTER that hears an advertisement from a master that advertises at least as often (lower
    or equal advbase+advskew, demotion included) steps down to BACKUP. A BACKUP with C(net.inet.carp.preempt=1) takes
    over from a master that advertises less often. Forcing MASTER on one node while another is MASTER is therefore
    normal CARP behaviour: the worse of the two drops to BACKUP at the next advertisement - which may be the node you
    forced, if its advskew is higher. O(method=advskew) avoids that by making the forced node the better one."
  - "Hand-over order for a pair: first O(state=backup) on the current master (it stops advertising as master; the
    peer takes over after three missed advertisements, or at once with preempt), then O(state=master) on the new one."
  - "A node forced to BACKUP with nobody else alive to take the vhid becomes MASTER again after the master-down timeout;
    with O(settle_time) set the module reports this as a failure."
  - "During a network partition both nodes are MASTER; the module reports what each node believes and never treats
    two MASTERs as an error (the caller decides)."
  - "Runtime changes are not persistent: after a reboot the rc.conf advskew applies again, and with preempt on, a
    rebooted former master takes the address back. Update the C(carp) role's variables after a permanent move."
  - "Lab: the freebsd_ha.storage lab's ifconfig stand-in runs the election at every read, so transitions appear at once
    and ties go to the node with the lower index."
seealso:
  - name: carp(4)
    description: Common Address Redundancy Protocol, sysctls and demotion.
    link: https://man.freebsd.org/carp(4)
  - name: ifconfig(8)
    description: The vhid, advskew, pass and state parameters.
    link: https://man.freebsd.org/ifconfig(8)
"""

EXAMPLES = r"""
- name: Read the CARP state of the NFS address on every node
  freebsd_ha.storage.carp:
    interface: em0
    vhid: 1
  register: nfs_carp

- name: Hand the address over - step 1, on the old master
  freebsd_ha.storage.carp:
    interface: em0
    vhid: 1
    state: backup
    method: advskew
    settle_time: 4
  when: inventory_hostname == 'f0'

- name: Hand the address over - step 2, on the new master
  freebsd_ha.storage.carp:
    interface: em0
    vhid: 1
    state: master
    method: advskew
    settle_time: 4
  when: inventory_hostname == 'f1'

- name: Demote every vhid of this node while its storage is degraded
  freebsd_ha.storage.carp:
    interface: em0
    vhid: 1
    demotion: 240
"""

RETURN = r"""
interface:
  description: The interface read.
  returned: success
  type: str
  sample: em0
vhid:
  description: The vhid read.
  returned: success
  type: int
  sample: 1
state:
  description: The vhid's state after the run (predicted in check mode) - V(MASTER), V(BACKUP) or V(INIT).
  returned: success
  type: str
  sample: MASTER
advskew:
  description: The vhid's advskew after the run (without the node's demotion).
  returned: success
  type: int
  sample: 0
advbase:
  description: The vhid's advbase in seconds.
  returned: success
  type: int
  sample: 1
addresses:
  description: The addresses tagged with this vhid on the interface.
  returned: success
  type: list
  elements: str
  sample: ["127.0.10.100"]
demotion:
  description: The node's C(net.inet.carp.demotion) counter after the run.
  returned: success
  type: int
  sample: 0
preempt:
  description: Whether C(net.inet.carp.preempt) is on for the node.
  returned: success
  type: bool
  sample: true
vhids:
  description: Every CARP vhid on the interface as read before any change (C(vhid), C(state), C(advbase), C(advskew),
    C(addresses), C(peer), C(peer6)).
  returned: success
  type: list
  elements: dict
  sample: [{vhid: 1, state: BACKUP, advbase: 1, advskew: 100, addresses: ["127.0.10.100"], peer: 224.0.0.18,
            peer6: "ff02::12"}]
sysctl:
  description: Every C(net.inet.carp.*) value after the run (predicted in check mode), keyed by the last name component.
  returned: success
  type: dict
  sample: {allow: 1, demotion: 0, dscp: 56, ifdown_demotion_factor: 240, log: 1, preempt: 1, senderr_demotion_factor: 240}
commands:
  description: Every command run (reads) or planned (writes in check mode), as argv lists.
  returned: always
  type: list
  elements: list
  sample: [["ifconfig", "em0"], ["sysctl", "net.inet.carp"], ["ifconfig", "em0", "vhid", "1", "advskew", "0"],
           ["ifconfig", "em0", "vhid", "1", "state", "master"], ["ifconfig", "em0"]]
diff:
  description: The changed keys before and after.
  returned: when changed
  type: dict
  sample: {before: {advskew: 100, state: BACKUP}, after: {advskew: 0, state: MASTER}, before_header: em0 vhid 1,
           after_header: em0 vhid 1}
rc:
  description: Exit status of the failed command.
  returned: when a command failed
  type: int
  sample: 1
stderr:
  description: Standard error of the failed command.
  returned: when a command failed
  type: str
  sample: "ifconfig: SIOCSVH: No such file or directory"
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _carp
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError, Runner, StateError

ARGUMENT_SPEC = dict(
    interface=dict(type="str", required=True),
    vhid=dict(type="int", required=True),
    state=dict(type="str", choices=["master", "backup"]),
    method=dict(type="str", choices=["state", "advskew"], default="state"),
    advskew=dict(type="int"),
    demotion=dict(type="int"),
    settle_time=dict(type="int", default=0),
)


class Tools:
    """The two runners the module needs, sharing one `commands` log in run order."""

    def __init__(self, module):
        self.ifconfig = Runner(module, "ifconfig")
        self.sysctl = Runner(module, "sysctl")
        self.sysctl.commands = self.ifconfig.commands

    @property
    def commands(self):
        return self.ifconfig.commands


def read_vhid(tools, interface, vhid):
    """Return (carp entry of the vhid, every carp entry on the interface); refuse a missing interface or vhid."""
    result = tools.ifconfig.read(_carp.build_show_argv(interface), check_rc=False)
    if result.rc != 0 and _carp.is_missing_interface_error(result.stderr):
        raise StateError(f"interface {interface} does not exist on this node: {result.stderr.strip()}")
    if result.rc != 0:
        raise tools.ifconfig.failure(result)
    interfaces = _carp.parse_ifconfig(result.stdout)
    return _carp.find_vhid(interfaces, interface, vhid), interfaces[interface]["carp"]


def read_sysctl(tools):
    """Return the net.inet.carp values; refuse when carp(4) is not loaded."""
    result = tools.sysctl.read(_carp.build_sysctl_read_argv(), check_rc=False)
    if result.rc != 0 and _carp.is_carp_missing_error(result.stderr):
        raise StateError(
            "carp(4) is not loaded on this node (no net.inet.carp sysctls): kldload carp, or apply the carp role"
        )
    if result.rc != 0:
        raise tools.sysctl.failure(result)
    return _carp.parse_sysctl_carp(result.stdout)


def wanted(params):
    """Return the planner's keyword options, after checking the ranges the argspec cannot express."""
    _carp.validate_interface(params["interface"])
    _carp.validate_range("vhid", params["vhid"], _carp.VHID_MIN, _carp.VHID_MAX)
    _carp.validate_range("advskew", params["advskew"], _carp.ADVSKEW_MIN, _carp.ADVSKEW_MAX)
    _carp.validate_range("settle_time", params["settle_time"], 0, 600)
    return {key: params[key] for key in ("state", "method", "advskew", "demotion")}


def apply(tools, steps):
    for tool, argv in steps:
        getattr(tools, tool).change(argv)


def verify(tools, params, carp_sysctl, steps):
    """Re-read the vhid after a real change; return (entry, sysctl); fail when the wanted state did not hold."""
    if params["settle_time"]:
        time.sleep(params["settle_time"])
    entry, _all = read_vhid(tools, params["interface"], params["vhid"])
    if any(tool == "sysctl" for tool, _argv in steps):
        carp_sysctl = read_sysctl(tools)
    if params["state"] and entry["state"] != params["state"].upper():
        raise StateError(
            f"vhid {params['vhid']} on {params['interface']} is {entry['state']} after the change, not "
            f"{params['state'].upper()}: "
            + (
                "no other node took the vhid over (is the peer up, and does it hear this node: same pass, no partition?)"
                if params["state"] == "backup"
                else "a peer advertising more often took it back (use method=advskew, or demote the peer first)"
            )
        )
    return entry, carp_sysctl


def predicted(entry, carp_sysctl, after):
    """Return (entry, sysctl) as the planned changes would leave them (check mode, or nothing to do)."""
    vhid_keys = {key: value for key, value in after.items() if key != "demotion"}
    sysctl_keys = {key: value for key, value in after.items() if key == "demotion"}
    return dict(entry, **vhid_keys), dict(carp_sysctl, **sysctl_keys)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    tools = Tools(module)
    try:
        options = wanted(params)
        entry, vhids = read_vhid(tools, params["interface"], params["vhid"])
        carp_sysctl = read_sysctl(tools)
        steps = _carp.plan_carp(params["interface"], entry, carp_sysctl, **options)
        before, after = _carp.plan_diff(entry, carp_sysctl, steps, **options)
        apply(tools, steps)
        if steps and not module.check_mode:
            final, final_sysctl = verify(tools, params, carp_sysctl, steps)
        else:
            final, final_sysctl = predicted(entry, carp_sysctl, after)
    except CommandError as error:
        module.fail_json(msg=error.msg, commands=tools.commands, **error.to_result())
    except (StateError, _carp.ParseError) as error:
        module.fail_json(msg=str(error), commands=tools.commands)
    result = dict(
        changed=bool(steps),
        commands=tools.commands,
        interface=params["interface"],
        vhid=params["vhid"],
        state=final["state"],
        advskew=final["advskew"],
        advbase=final["advbase"],
        addresses=final["addresses"],
        demotion=final_sysctl.get("demotion"),
        preempt=bool(final_sysctl.get("preempt")),
        vhids=[{key: value for key, value in item.items() if key != "key"} for item in vhids],
        sysctl=final_sysctl,
    )
    if steps:
        header = f"{params['interface']} vhid {params['vhid']}"
        result["diff"] = dict(before=before, after=after, before_header=header, after_header=header)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
