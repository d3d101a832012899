# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The execution environment files agree with each other and with what the collection uses.

execution-environment.yml is ansible-builder's version 3 schema and `ansible-builder create` turns it into a build
context; requirements.txt names every Python package the plugins import beyond the standard library and Ansible;
requirements.yml names every collection the playbooks and roles use (and galaxy.yml declares it); bindep.txt parses.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml
from ansible_builder.ee_schema import validate_schema
from bindep.depends import Depends

ROOT = Path(__file__).resolve().parents[2]
SELF = "freebsd_ha.storage"
# Collections that ship with ansible-core and need no install.
BUILTIN = {"ansible.builtin", "ansible.legacy"}
FQCN = re.compile(r"^([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\.[a-z_][a-z0-9_]*$")
# A filter by FQCN in Jinja (`| ns.coll.name`) or a lookup (`lookup('ns.coll.name'`).
JINJA_FQCN = re.compile(
    r"(?:\|\s*|\b(?:lookup|query|q)\(\s*['\"])([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\.[a-z_][a-z0-9_]*\b"
)


def load(name):
    return yaml.safe_load((ROOT / name).read_text())


def requirement_names(text):
    """Return the distribution names of a pip requirements file (comments and blank lines skipped)."""
    names = set()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            names.add(re.split(r"[\s\[<>=!~;@]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def third_party_imports(paths):
    """Return {top-level module: [files]} for imports that are not stdlib, Ansible or this collection."""
    found = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in {"__future__", "ansible", "ansible_collections"}:
                    continue
                found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


def collections_used(paths):
    """Return the collections (namespace.name) that the YAML files reference by FQCN.

    Modules and actions are task keys; roles are the `name` of include_role/import_role or a play's `roles`;
    filters and lookups are found in Jinja text. Other strings (file names such as zrepl.yml.j2) are not names.
    """
    used = set()

    def role(value):
        name = value.get("name", value.get("role")) if isinstance(value, dict) else value
        if isinstance(name, str) and (match := FQCN.match(name.strip())):
            used.add(match.group(1))

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and (match := FQCN.match(key)):
                    used.add(match.group(1))
                if key in {
                    "include_role",
                    "import_role",
                    "ansible.builtin.include_role",
                    "ansible.builtin.import_role",
                }:
                    role(value)
                elif key == "roles" and isinstance(value, list):
                    for item in value:
                        role(item)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
        elif isinstance(node, str):
            used.update(JINJA_FQCN.findall(node))

    for path in paths:
        for document in yaml.safe_load_all(path.read_text()):
            walk(document)
    return used


def content_yaml():
    files = [*sorted((ROOT / "playbooks").glob("*.yml")), *sorted((ROOT / "roles").glob("*/*/*.yml"))]
    return [path for path in files if path.parent.name not in {"vars", "defaults", "meta"}] + sorted(
        (ROOT / "roles").glob("*/meta/main.yml")
    )


def test_execution_environment_is_ansible_builder_version_3():
    definition = load("execution-environment.yml")
    assert definition["version"] == 3
    validate_schema(definition)
    dependencies = definition["dependencies"]
    assert (dependencies["galaxy"], dependencies["python"], dependencies["system"]) == (
        "requirements.yml",
        "requirements.txt",
        "bindep.txt",
    )


def test_ansible_builder_creates_the_build_context(tmp_path):
    done = subprocess.run(
        [Path(sys.executable).with_name("ansible-builder"), "create", "-c", str(tmp_path / "context"),
         "--output-filename", "Containerfile"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    containerfile = (tmp_path / "context" / "Containerfile").read_text()
    assert "quay.io/fedora/fedora-minimal:41" in containerfile
    build = tmp_path / "context" / "_build"
    assert (build / "requirements.yml").read_text() == (ROOT / "requirements.yml").read_text()
    assert (build / "bindep.txt").read_text() == (ROOT / "bindep.txt").read_text()


def test_scanners_see_what_the_collection_uses():
    # The checks below are only as good as these scanners: they must find what is certainly there.
    assert {"ansible.builtin", SELF} <= collections_used(content_yaml())
    this_file = ROOT / "tests" / "packaging" / "test_execution_environment.py"
    assert set(third_party_imports([this_file])) == {"pytest", "yaml", "ansible_builder", "bindep"}


def test_every_python_package_the_plugins_import_is_in_requirements_txt():
    listed = requirement_names((ROOT / "requirements.txt").read_text())
    distributions = packages_distributions()
    missing = {}
    for module, files in third_party_imports(sorted((ROOT / "plugins").rglob("*.py"))).items():
        names = {name.lower().replace("_", "-") for name in distributions.get(module, [module])}
        if not names & listed:
            missing[module] = files
    assert not missing, f"add these imports' packages to requirements.txt: {missing}"


def test_every_collection_the_content_uses_is_required():
    required = {entry["name"] for entry in load("requirements.yml")["collections"]}
    galaxy = load("galaxy.yml")
    dependencies = set(galaxy.get("dependencies") or {})
    used = collections_used(content_yaml()) - BUILTIN - {SELF}
    assert used <= dependencies, f"declare in galaxy.yml dependencies: {sorted(used - dependencies)}"
    assert dependencies <= required, f"add to requirements.yml: {sorted(dependencies - required)}"
    # The environment exists to run this collection: it installs it from its repository.
    assert galaxy["repository"] + ".git" in required


def test_bindep_txt_parses_and_names_an_ssh_client():
    text = (ROOT / "bindep.txt").read_text()
    depends = Depends(text)
    assert {rule[0] for rule in depends._rules} >= {"openssh-clients", "openssh-client"}


@pytest.mark.parametrize("path", [".github", "molecule", "scripts", "benchmarks", "*.tar.gz", ".ci"])
def test_galaxy_build_ignores_what_is_not_collection_content(path):
    assert path in load("galaxy.yml")["build_ignore"]
