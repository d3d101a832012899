# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release artifact: the tarball `ansible-galaxy collection build` makes is what a user installs.

It is installed into a fresh virtualenv (ansible-core at the project's pin, nothing else, pip's own configuration and
cache), where `ansible-doc -l` lists every module and `ansible-playbook freebsd_ha.storage.status` runs against a
lab pair of its own (`package` in tests/labs.py); galaxy-importer, in its own cached virtualenv, accepts the tarball.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from labs import lab

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LABCTL = ROOT / "tests" / "lab" / "labctl"
LAB = lab("package")
LAB_DIR = str(LAB.dir)
LAB_NET = LAB.net
IMPORTER_VENV = ROOT / ".build" / "venv-galaxy-importer"
IMPORTER_REQUIREMENTS = HERE / "requirements-galaxy-importer.txt"
MODULES = sorted(path.stem for path in (ROOT / "plugins" / "modules").glob("*.py") if not path.stem.startswith("_"))


def run(argv, **kwargs):
    done = subprocess.run([str(arg) for arg in argv], capture_output=True, text=True, check=False, **kwargs)
    if done.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, argv))} exited {done.returncode}:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
        )
    return done


def pinned(name):
    """Return the version of `name` pinned in requirements-dev.txt."""
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        if line.lower().startswith(f"{name}=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{name} is not pinned in requirements-dev.txt")


def fresh_env(collections):
    """Environment of a user shell: no project virtualenv, collection path or Ansible settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ANSIBLE_", "VIRTUAL_ENV"))}
    env.pop("PYTHONPATH", None)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if ".venv" not in p)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
    return env


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    run([Path(sys.executable).with_name("ansible-galaxy"), "collection", "build", "--output-path", out, ROOT])
    (built,) = out.glob("freebsd_ha-storage-*.tar.gz")
    return built


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    """(bin dir, collections path) of a fresh virtualenv with ansible-core and the tarball installed."""
    home = tmp_path_factory.mktemp("user")
    venv, collections = home / "venv", home / "collections"
    run(["/usr/bin/python3", "-m", "venv", venv])
    run([venv / "bin" / "pip", "install", "-q", f"ansible-core=={pinned('ansible-core')}"])
    env = fresh_env(collections)
    run([venv / "bin" / "ansible-galaxy", "collection", "install", "-p", collections, tarball], env=env, cwd=home)
    return venv / "bin", collections, home


def test_tarball_holds_no_development_files(tarball):
    names = run(["tar", "-tzf", tarball]).stdout.split()
    leaked = [n for n in names if n.split("/")[0] in {".venv", ".build", ".github", ".ci", "molecule", "scripts"}]
    assert not leaked, leaked
    assert "MANIFEST.json" in names and "FILES.json" in names


def test_ansible_doc_lists_every_module_from_the_installed_tarball(installed):
    bindir, collections, home = installed
    listed = run(
        [bindir / "ansible-doc", "-t", "module", "-l", "freebsd_ha.storage"], env=fresh_env(collections), cwd=home
    )
    names = sorted(line.split()[0].removeprefix("freebsd_ha.storage.") for line in listed.stdout.splitlines() if line)
    assert names == MODULES
    # The docs come from the installed copy, not from the checkout.
    shown = run(
        [bindir / "ansible-doc", "-t", "module", "freebsd_ha.storage.zfs_info"], env=fresh_env(collections), cwd=home
    )
    assert str(collections) in shown.stdout and str(ROOT) not in shown.stdout


def labctl(*args):
    return run([LABCTL, *args], env=dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET))


@pytest.fixture(scope="module")
def lab_pair():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    subprocess.run([str(LABCTL), "destroy"], env=dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET),
                   capture_output=True, check=False)  # fmt: skip
    labctl("up", "--nodes", "2")
    try:
        labctl("inventory")
        labctl("exec", "f0", "--", "sh", "-c", (ROOT / "examples" / "lab_pair_seed.sh").read_text())
        yield Path(LAB_DIR) / "ansible"
    finally:
        if os.environ.get("FBSD_HA_E2E_KEEP") != "1":
            subprocess.run([str(LABCTL), "down"], env=dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET),
                           capture_output=True, check=False)  # fmt: skip
            subprocess.run([str(LABCTL), "destroy"], env=dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET),
                           capture_output=True, check=False)  # fmt: skip


def test_status_playbook_runs_by_fqcn_from_the_installed_tarball(installed, lab_pair, tmp_path):
    bindir, collections, home = installed
    env = dict(fresh_env(collections), ANSIBLE_CONFIG=str(lab_pair / "ansible.cfg"))
    status_json = tmp_path / "status.json"
    done = run(
        [bindir / "ansible-playbook", "-i", lab_pair / "inventory.yml", "-i", ROOT / "examples" / "inventory" / "lab_pair",
         "freebsd_ha.storage.status", "-e", f"ha_status_json={status_json}"],
        env=env, cwd=home,
    )  # fmt: skip
    assert re.search(r"f0 .*ok=\d+ .*failed=0", done.stdout), done.stdout[-3000:]
    document = json.loads(status_json.read_text())
    assert (document["resource"], document["writer"], document["writers"]) == ("nfs", "f0", ["f0"])


@pytest.fixture(scope="module")
def importer():
    """The galaxy-importer virtualenv, kept under .build while its requirements file is unchanged."""
    stamp = IMPORTER_VENV / ".requirements"
    wanted = IMPORTER_REQUIREMENTS.read_text()
    if not stamp.exists() or stamp.read_text() != wanted:
        run(["/usr/bin/python3", "-m", "venv", "--clear", IMPORTER_VENV])
        run([IMPORTER_VENV / "bin" / "pip", "install", "-q", "-r", IMPORTER_REQUIREMENTS])
        stamp.write_text(wanted)
    return IMPORTER_VENV / "bin"


def test_galaxy_importer_accepts_the_tarball(importer, tarball, tmp_path):
    env = fresh_env(tmp_path / "none")
    env["PATH"] = f"{importer}{os.pathsep}{env['PATH']}"  # its ansible-doc
    env["GALAXY_IMPORTER_CONFIG"] = str(HERE / "galaxy-importer.cfg")
    done = subprocess.run(
        [str(importer / "python"), "-m", "galaxy_importer.main", "--print-result", str(tarball)],
        env=env, cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    errors = [line for line in output.splitlines() if line.startswith("ERROR")]
    assert not errors, errors
    result = json.loads(output[output.index("{") :])
    imported = sorted(c["name"] for c in result["contents"] if c["content_type"] == "module")
    assert imported == MODULES
    assert result["docs_blob"]["collection_readme"]["html"]
