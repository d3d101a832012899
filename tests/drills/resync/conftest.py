# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the resync drills: a fresh replicating pair per drill on the resync lab (see resync_lab.py)."""

from __future__ import annotations

import os

import pytest
from resync_lab import SEED, Pair, labctl


@pytest.fixture
def pair():
    """f0 writes zdata/enc/nfsdata (epoch 1); f1 holds its read-only replica; zrepl pushes f0 -> f1."""
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    labctl("destroy", check=False)
    labctl("up", "--nodes", "2")
    labctl("inventory")
    lab = Pair()
    lab.sh("f0", SEED)
    lab.start_zrepl()
    yield lab
    if os.environ.get("FBSD_HA_E2E_KEEP") != "1":
        labctl("down", check=False)
        labctl("destroy", check=False)
