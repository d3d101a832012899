# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# PRIVATE: internal to freebsd_ha.storage, not a public API; it may change without notice.

from __future__ import annotations


class ModuleDocFragment:
    # The options of module_utils._replication.send_options_spec() but discard_target_changes, which each module
    # words for its own targets.
    DOCUMENTATION = r"""
options:
  ssh_command:
    description: ssh client binary on this host.
    type: str
    default: ssh
  ssh_options:
    description: Options put before the peer on every ssh call. Keep C(BatchMode=yes) so a missing key fails instead of prompting.
    type: list
    elements: str
    default: ["-o", "BatchMode=yes"]
  raw:
    description: Send raw encrypted blocks (C(zfs send -w)); OpenZFS with native encryption only.
    type: bool
    default: false
  properties:
    description: Include the dataset's properties in the stream (C(zfs send -p)).
    type: bool
    default: false
  unmount_target:
    description: Leave the received file system unmounted (C(zfs recv -u)).
    type: bool
    default: true
  target_readonly:
    description:
      - Keep the target C(readonly=on). Set with C(zfs set) after the receive, because zfs-fuse has no C(zfs recv -o).
    type: bool
    default: true
  create_target_parent:
    description: Create a missing parent of the target on the peer with C(zfs create -p) before a full receive.
    type: bool
    default: false
"""
