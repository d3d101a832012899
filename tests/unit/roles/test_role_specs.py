# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role contracts: argument specs complete, defaults naming exactly the spec's options, docs generated from them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ansible_collections
from ansible_collections.freebsd_ha.storage.tests.unit.roles.role_helpers import (
    ROOT,
    entry_point,
    role_defaults,
    walk_options,
)

ROLES = ["carp", "ggated", "hast", "zfs_push", "zfskeys", "zrepl"]
# ggated's page keeps a hand-written table, checked against its spec by its own unit test.
GENERATED_DOCS = [role for role in ROLES if role != "ggated"]


@pytest.mark.parametrize("role", ROLES)
def test_defaults_name_exactly_the_options_of_the_argument_spec(role):
    assert sorted(role_defaults(role)) == sorted(entry_point(role)["options"])


@pytest.mark.parametrize("role", ROLES)
def test_defaults_equal_the_spec_defaults(role):
    defaults = role_defaults(role)
    for name, spec in entry_point(role)["options"].items():
        assert defaults[name] == spec.get("default"), name


@pytest.mark.parametrize("role", ROLES)
def test_every_option_has_a_type_and_a_description_and_lists_say_their_elements(role):
    for path, spec in walk_options(entry_point(role)["options"]):
        assert spec.get("type") and spec.get("description"), path
        assert spec["type"] != "list" or spec.get("elements"), path
        assert not (spec.get("required") and "default" in spec), path


@pytest.mark.parametrize("role", ROLES)
def test_required_if_rules_name_existing_suboptions_and_choices(role):
    for path, spec in walk_options(entry_point(role)["options"]):
        suboptions = spec.get("options", {})
        for key, value, needed in spec.get("required_if", []):
            assert key in suboptions and value in suboptions[key].get("choices", [value]), path
            assert set(needed) <= set(suboptions), path


def test_role_docs_are_generated_from_the_argument_specs():
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "role-docs"), "--check", *GENERATED_DOCS],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def collections_root():
    """The directory holding the ansible_collections/ this test was imported from (symlinked or copied tree)."""
    return Path(next(iter(ansible_collections.__path__))).parent


@pytest.mark.parametrize(
    "playbook", ["roles_zrepl_zfskeys.yml", "roles_zrepl_config_change.yml", "roles_zfskeys_copy.yml"]
)
def test_playbooks_using_the_roles_pass_the_syntax_check(playbook):
    # ansible.cli.playbook as a module: ansible-test runs units where ansible is importable but not installed.
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections_root()))
    # The playbooks name the lab hosts; ansible-test makes an unmatched host pattern an error.
    argv = [sys.executable, "-m", "ansible.cli.playbook", "-i", "localhost,f0,f1,", "--syntax-check"]
    argv.append(str(ROOT / "tests/e2e/playbooks" / playbook))
    result = subprocess.run(argv, check=False, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
