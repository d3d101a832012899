# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ggate against scripted ggatec commands (cases in test_ggate.yml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.freebsd_ha.storage.plugins.modules import ggate
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import load_cases
from ansible_collections.freebsd_ha.storage.tests.unit.plugins.modules.test_gmirror_render import run_cases

IDS, CASES = load_cases(Path(__file__).with_suffix(".yml"))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_ggate(run_module, case):
    run_cases(run_module, ggate, case)
