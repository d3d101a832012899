# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures of the zfs drills (the helpers live in zfs_pair_lab.py: a unique module name, since every drill
directory has a conftest of its own)."""

from __future__ import annotations

import os

import pytest
from zfs_pair_lab import SEED, Pair, labctl


@pytest.fixture
def pair():
    """A fresh pair: f0 writes zdata/enc/nfsdata (epoch 1), f1 holds its read-only replica."""
    labctl("destroy", check=False)
    labctl("up", "--nodes", "2")
    labctl("inventory")
    lab = Pair()
    lab.sh("f0", SEED)
    yield lab
    if os.environ.get("FBSD_HA_E2E_KEEP") != "1":
        labctl("down", check=False)
        labctl("destroy", check=False)
