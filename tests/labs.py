# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every lab the tests and benchmarks bring up, with its directory and loopback net, in one table.

A lab is named here once; tests ask ``lab("drills")`` for its dir and net instead of picking them by hand.
``FBSD_HA_LAB_SLOT=S`` (1-254) moves every lab at once to ``/srv/<dir>-sS`` on ``127.S.<octet>``, so several
checkouts or workers run the same labs side by side without sharing a node, a pool or an nftables table.
``python3 tests/labs.py <name>`` prints the two ``FBSD_HA_LAB_*`` variables for a shell (``eval``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

# name: (directory under /srv, third octet of its 127.x.<octet>.<node> net). Octets are unique, so any two labs
# can run at the same time; 10 is the developer's own lab (labctl's default, docs/lab.md).
LABS = {
    "labctl-test": ("fbsd-ha-lab-test", 11),
    "molecule": ("fbsd-ha-lab-molecule", 12),
    "bench-zfs-info": ("fbsd-ha-lab-bench-info", 13),
    "e2e": ("fbsd-ha-lab-e2e", 14),
    "drills": ("fbsd-ha-lab-drills", 15),
    "hast-drills": ("fbsd-ha-lab-hastdrills", 16),
    "gmirror-drills": ("fbsd-ha-lab-gmdrills", 17),
    "leader": ("fbsd-ha-lab-leader", 18),
    "provision": ("fbsd-ha-lab-provision", 19),
    "hast-test": ("fbsd-ha-lab-hast-test", 21),
    "resync": ("fbsd-ha-lab-resync", 22),
    "periodic": ("fbsd-ha-lab-periodic", 23),
    "carp": ("fbsd-ha-lab-carp", 24),
    "package": ("fbsd-ha-lab-pkg", 25),
    "zrepl-roles": ("fbsd-ha-lab-zrepl-roles", 26),
    "bench": ("fbsd-ha-lab-bench", 27),
    "hast-standin": ("fbsd-ha-lab-hast-standin", 28),
    "zrepl-test": ("fbsd-ha-lab-zrepl-test", 30),
    "geom-test": ("fbsd-ha-lab-geom-test", 122),
    "geom-standin": ("fbsd-ha-lab-geom-standin", 123),
}


@dataclass(frozen=True)
class LabPlace:
    """Where one lab lives: its state directory and the first three octets of its nodes' addresses."""

    name: str
    dir: Path
    net: str

    def address(self, index):
        """Address of node f<index> (f0 is .1)."""
        return f"{self.net}.{index + 1}"

    @property
    def env(self):
        """The environment labctl reads, on top of this process's."""
        return dict(os.environ, FBSD_HA_LAB_DIR=str(self.dir), FBSD_HA_LAB_NET=self.net)


def slot():
    """The lab slot of this process (0 when FBSD_HA_LAB_SLOT is unset)."""
    raw = os.environ.get("FBSD_HA_LAB_SLOT", "0").strip() or "0"
    if not raw.isdigit() or not 0 <= int(raw) <= 254:
        raise ValueError(f"FBSD_HA_LAB_SLOT={raw!r}: expected a whole number from 0 to 254")
    return int(raw)


def lab(name):
    """The place of the lab called name in LABS, moved to this process's slot."""
    if name not in LABS:
        raise KeyError(f"no lab {name!r} in tests/labs.py; known: {', '.join(sorted(LABS))}")
    directory, octet = LABS[name]
    current = slot()
    suffix = f"-s{current}" if current else ""
    return LabPlace(name, Path("/srv") / f"{directory}{suffix}", f"127.{current}.{octet}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} <lab name>; known: {', '.join(sorted(LABS))}")
    place = lab(sys.argv[1])
    print(f"FBSD_HA_LAB_DIR={place.dir} FBSD_HA_LAB_NET={place.net}")
