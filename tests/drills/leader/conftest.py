# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the leader drills: one three-node lab for the module, torn down at the end (see leader_lab.py)."""

from __future__ import annotations

import os

import pytest
from leader_lab import Ring, labctl


@pytest.fixture(scope="module")
def ring():
    """f0 f1 f2 up, with the lab's inventory written; each drill seeds the resource it uses."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    labctl("destroy", check=False)
    labctl("up", "--nodes", "3")
    labctl("inventory")
    yield Ring()
    if os.environ.get("FBSD_HA_E2E_KEEP") != "1":
        labctl("down", check=False)
        labctl("destroy", check=False)
