#!/usr/bin/python
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: hast_info
short_description: Report every HAST resource of a node - role, sync status, metadata, split-brain evidence
description:
  - Reads, in one call per node, what a runbook needs about each HAST resource of this host - its role and
    sync status (C(hastctl list), or C(hastctl status) where C(list) does not exist), dirty bytes, local provider,
    remote address, replication mode, whether its metadata was really initialised (C(hastctl dump) per resource,
    because C(hastctl list) answers also for a provider C(hastctl create) never touched), whether
    C(/dev/hast/<name>) exists, and evidence of a split brain or of FreeBSD bug 292322 in the hastd log.
  - Works while hastd is stopped - roles are then null and the resources come from O(config).
  - Never changes anything.
version_added: 0.1.0
author: freebsd_ha.storage contributors (@freebsd-ha)
extends_documentation_fragment:
  - freebsd_ha.storage._attributes
  - freebsd_ha.storage._attributes.INFO_MODULE
options:
  config:
    description: The hast.conf(5) file hastctl reads (passed as C(-c) when it is not the default).
    type: path
    default: /etc/hast.conf
  node:
    description:
      - The name this host has in the C(on <node>) sections of O(config).
      - Default - the full host name, else its first component (hastd also accepts kern.hostuuid, which this
        module does not try).
    type: str
  log_files:
    description: Syslog files scanned (their last 4 MiB) for hastd and kernel messages; missing files are skipped.
    type: list
    elements: path
    default: [/var/log/messages]
  log_window:
    description: Only log lines at most this many seconds old count as evidence.
    type: int
    default: 3600
notes:
  - Split-brain evidence is a recent C(Split-brain detected, exiting.) or C(Split-brain condition!) line (hastd's
    own detection from its generation counters) or a C(Remote node acts as primary) line (both nodes primary).
    Comparing the C(localcnt)/C(remotecnt) counters of both nodes, which hast_role does with the peer's
    hast_info, finds a split brain before hastd reconnects.
  - >-
    FreeBSD bug 292322 (FreeBSD 15.0 and later, fix under review as D57511) keeps the primary degraded; the
    secondary logs C(Unable to receive header from <peer>: Operation timed out.). It is reported as suspected
    when such lines are recent, the resource does not replicate and kern.osrelease is 15 or later (or unknown).
seealso:
  - module: freebsd_ha.storage.hast_role
"""

EXAMPLES = r"""
- name: Read the HAST state of both nodes
  freebsd_ha.storage.hast_info:
  register: hast

- name: Stop when the resource is not in sync
  ansible.builtin.assert:
    that: hast.resources.storage.complete
    fail_msg: "storage is {{ hast.resources.storage.status }} with {{ hast.resources.storage.dirty_bytes }} dirty bytes"
"""

RETURN = r"""
hastd_running:
  description: Whether hastctl could reach hastd over its control socket.
  returned: always
  type: bool
  sample: true
node:
  description: The name of this host in hast.conf (null when no resource names it).
  returned: always
  type: str
  sample: f0
os_release:
  description: kern.osrelease (null when it could not be read).
  returned: always
  type: str
  sample: 15.0-RELEASE
config:
  description: The hast.conf read - its path, whether it exists, and the parsed file (global, nodes, resources).
  returned: always
  type: dict
  sample: {path: /etc/hast.conf, present: true, parsed: {global: {}, nodes: {}, resources: [{name: storage,
           nodes: {f0: {local: /dev/ada1, remote: 10.0.0.2}, f1: {local: /dev/ada1, remote: 10.0.0.1}}}]}}
resources:
  description:
    - Every resource hastd reports or hast.conf gives this node, by name.
    - C(role) init, primary or secondary (null while hastd is stopped); C(status) complete or degraded (null
      without a worker - role init, or a secondary no primary is connected to); C(dirty_bytes) from the primary.
    - C(metadata_initialised) true, false, or null when unknown; C(metadata.state) present, absent (never
      created), invalid, foreign (another resource's) or unknown, with the C(hastctl dump) counters when present.
    - C(known_to_hastd) false with C(error) 1 means hast.conf changed after hastd started - reload hastd.
  returned: always
  type: dict
  sample:
    storage:
      name: storage
      role: primary
      status: complete
      complete: true
      dirty_bytes: 0
      local: /dev/ada1
      remote: tcp://10.0.0.2
      source: null
      replication: memsync
      provider: storage
      device: /dev/hast/storage
      device_present: true
      extentsize: 2097152
      keepdirty: 64
      workerpid: 1873
      error: null
      error_text: null
      configured: true
      known_to_hastd: true
      hastd_running: true
      metadata_initialised: true
      metadata: {state: present, error: null, datasize: 10737418240, extentsize: 2097152, keepdirty: 64,
                 localoff: 1052672, resuid: 7214398201146834491, localcnt: 3, remotecnt: 3, prevrole: primary}
      split_brain: {suspected: false, evidence: []}
      resuid_mismatch: []
      bug_292322: {suspected: false, evidence: []}
split_brain_suspected:
  description: Whether any resource shows split-brain evidence.
  returned: always
  type: bool
  sample: false
bug_292322_suspected:
  description: Whether any resource shows the symptoms of FreeBSD bug 292322.
  returned: always
  type: bool
  sample: false
commands:
  description: Every command run, as argv lists.
  returned: always
  type: list
  elements: list
  sample: [["hastctl", "list"], ["hastctl", "dump", "storage"], ["sysctl", "-n", "kern.osrelease"]]
rc:
  description: Exit status of the failed command.
  returned: when a command failed
  type: int
  sample: 78
stderr:
  description: Standard error of the failed command.
  returned: when a command failed
  type: str
  sample: "[ERROR] Unable to parse configuration file at line 3 near 'x': syntax error"
"""

import os
import socket
from datetime import datetime, timezone
from functools import partial

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _hast
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import CommandError, Runner

ARGUMENT_SPEC = dict(
    node=dict(type="str"),
    **_hast.read_argument_spec(),
)


def device_present(path):
    """Return True when the HAST provider exists (hastd creates it on the primary only)."""
    return os.path.exists(path)


def read_text(path, tail=None):
    """Return the text of path (its last tail bytes when given), or None when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            if tail:
                handle.seek(max(0, os.path.getsize(path) - tail))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return None


def read_os_release(module, commands):
    """Return kern.osrelease (None when sysctl is missing or fails), adding the command run to commands."""
    runner = Runner(module, "sysctl", required=False)
    result = runner.read(["-n", "kern.osrelease"], check_rc=False) if runner.binary else None
    commands += runner.commands
    return result.stdout.strip() or None if result is not None and result.rc == 0 else None


def read_config(params):
    """Return (config summary, this node's name, {resource: node_view}) from hast.conf."""
    text = read_text(params["config"])
    summary = dict(path=params["config"], present=text is not None, parsed=None)
    if text is None:
        return summary, params["node"], {}
    conf = summary["parsed"] = _hast.parse_hast_conf(text)
    fqdn = socket.gethostname()
    node = params["node"] or _hast.find_node(conf, [fqdn, fqdn.split(".", 1)[0]])
    views = {res["name"]: _hast.node_view(res, node) for res in conf["resources"]}
    return summary, node, {name: view for name, view in views.items() if view is not None}


def gather(module, runner, params):
    """Return the hast_info result (without changed and the summary flags)."""
    summary, node, conf_views = read_config(params)
    result = dict(hastd_running=None, node=node, os_release=None, config=summary, resources={})
    if not summary["present"]:
        module.warn(f"{params['config']} does not exist, so this host has no HAST resource")
        return result
    result["os_release"] = read_os_release(module, runner.commands)
    result["hastd_running"], result["resources"] = _hast.read_node_state(
        partial(runner.read, check_rc=False),
        runner.failure,
        config=params["config"],
        now=datetime.now(timezone.utc).astimezone(),
        window=params["log_window"],
        conf_views=conf_views,
        log_texts=[text for text in (read_text(path, _hast.LOG_TAIL_BYTES) for path in params["log_files"]) if text],
        os_release=result["os_release"],
    )
    for view in result["resources"].values():
        view["device_present"] = device_present(view["device"])
    return result


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    runner = Runner(module, "hastctl")
    try:
        result = gather(module, runner, module.params)
    except CommandError as error:
        module.fail_json(msg=error.msg, commands=runner.commands, **error.to_result())
    except _hast.ParseError as error:
        module.fail_json(msg=str(error), commands=runner.commands)
    resources = result["resources"].values()
    result.update(
        changed=False,
        commands=runner.commands,
        split_brain_suspected=any(view["split_brain"]["suspected"] for view in resources),
        bug_292322_suspected=any(view["bug_292322"]["suspected"] for view in resources),
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
