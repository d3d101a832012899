# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HAST drills' fixture: one lab pair for the module (see hast_drill_lab.py)."""

from __future__ import annotations

import os

import pytest
from hast_drill_lab import NODES, PROVIDER, HastPair, labctl


@pytest.fixture(scope="module")
def hast():
    """A provisioned pair: f0 primary with hpool imported at /data/vol (epoch 1), f1 secondary in sync."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    labctl("destroy", check=False)
    labctl("up", "--nodes", "2")
    labctl("inventory")
    pair = HastPair()
    for node in NODES:
        pair.sh(node, f"mkdir -p {os.path.dirname(PROVIDER)} && truncate -s 128M {PROVIDER}")
    yield pair
    if os.environ.get("FBSD_HA_E2E_KEEP") != "1":
        for node in NODES:
            if pair.answers(node):
                pair.sh(node, "zpool export -f hpool", check=False)
        labctl("down", check=False)
        labctl("destroy", check=False)
