# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures: run a module against a scripted sequence of commands, load fixtures and YAML cases."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _command

FIXTURES = Path(__file__).parent / "fixtures"


def _find_research_corpus():
    """The research corpus: FBSD_HA_RESEARCH_CORPUS, else shared/research-corpus beside the checkout or one of
    its parents (ansible-test runs the tests from a copy below .build/, which passes no environment through)."""
    if os.environ.get("FBSD_HA_RESEARCH_CORPUS"):
        return Path(os.environ["FBSD_HA_RESEARCH_CORPUS"])
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "shared" / "research-corpus"
        if candidate.is_dir():
            return candidate
    return Path(__file__).resolve().parents[3] / "shared" / "research-corpus"


# Research-corpus samples may be read in place but never copied into the repository.
RESEARCH_CORPUS = _find_research_corpus()
PIPE = _command.PIPE_SEPARATOR


def read_fixture(relative):
    """Return the text of tests/unit/fixtures/<relative>; every fixture has a .source sidecar."""
    path = FIXTURES / relative
    assert path.with_suffix(".source").exists(), f"{relative} has no .source sidecar"
    return path.read_text()


def research_corpus_file(relative):
    """Path of a research-corpus sample; skips the test when the whole corpus is absent, fails when one file is."""
    if not RESEARCH_CORPUS.is_dir():
        pytest.skip(f"research corpus not found at {RESEARCH_CORPUS} (set FBSD_HA_RESEARCH_CORPUS)")
    path = RESEARCH_CORPUS / relative
    assert path.is_file(), f"{path} is missing from the research corpus"
    return path


def load_cases(yaml_path):
    """Return (ids, cases) from a module's YAML case file, for pytest.mark.parametrize."""
    cases = yaml.safe_load(Path(yaml_path).read_text())
    return [case["id"] for case in cases], cases


class FrozenClock(datetime):
    """The UTC time every rescue name in the module cases is built from: 2026-11-21 13:40:00Z."""

    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 11, 21, 13, 40, tzinfo=timezone.utc)


@pytest.fixture
def freeze_clock(monkeypatch):
    """Make a module's datetime.now() return FrozenClock's time."""
    return lambda module_obj: monkeypatch.setattr(module_obj, "datetime", FrozenClock)


class ModuleExit(Exception):
    def __init__(self, result):
        super().__init__(result)
        self.result = result


class CommandScript:
    """The exact commands a test expects, in order, with their canned rc/stdout/stderr."""

    def __init__(self, steps):
        self.steps = list(steps)
        self.ran = []

    def next(self, argv):
        assert self.steps, f"unexpected command (script exhausted): {argv}"
        step = self.steps.pop(0)
        expected = [str(arg) for arg in step["argv"]]
        assert argv == expected, f"command mismatch:\n  ran:      {argv}\n  expected: {expected}"
        self.ran.append(argv)
        stdout = read_fixture(step["stdout_fixture"]) if "stdout_fixture" in step else step.get("stdout", "")
        stderr = read_fixture(step["stderr_fixture"]) if "stderr_fixture" in step else step.get("stderr", "")
        return step.get("rc", 0), stdout, stderr


def _normalise(argv):
    # The runner prefixes the binary path found by get_bin_path; scripts name tools by their bare name.
    return [Path(arg).name if arg.startswith("/fake/bin/") else arg for arg in argv]


@pytest.fixture
def run_module(monkeypatch):
    """Run module_obj.main() with params and a command script; return (result, script)."""

    def runner(module_obj, params, commands=(), check_mode=False, diff=False):
        script = CommandScript(commands)
        args = dict(params, _ansible_check_mode=check_mode, _ansible_diff=diff)
        monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args})))
        monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)

        def fake_run_command(self, argv, **kwargs):
            return script.next(_normalise([str(arg) for arg in argv]))

        def fake_pipeline(stages):
            flat = []
            for stage in stages:
                flat.extend(([PIPE] if flat else []) + _normalise(stage))
            rc, stdout, stderr = script.next(flat)
            # A scripted pipeline fails in its first stage, the usual place (zfs send).
            return [rc] + [0] * (len(stages) - 1), stdout, stderr

        def fake_exit(self, **result):
            raise ModuleExit(dict(result, failed=False))

        def fake_fail(self, msg, **result):
            raise ModuleExit(dict(result, failed=True, msg=msg))

        monkeypatch.setattr(basic.AnsibleModule, "run_command", fake_run_command)
        monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, tool, *a, **k: f"/fake/bin/{tool}")
        monkeypatch.setattr(basic.AnsibleModule, "exit_json", fake_exit)
        monkeypatch.setattr(basic.AnsibleModule, "fail_json", fake_fail)
        monkeypatch.setattr(_command, "run_pipeline", fake_pipeline)
        with pytest.raises(ModuleExit) as exited:
            module_obj.main()
        assert not script.steps, f"commands expected but never run: {script.steps}"
        return exited.value.result, script

    return runner


def strip_binary(argv):
    """Return argv with the runner's binary path reduced to the tool name, as the case files write it."""
    return [Path(arg).name if index == 0 else arg for index, arg in enumerate(argv)]


def check_case(result, script, expect, keys=()):
    """Assert the expectations every scripted-command case file shares; keys names result keys compared whole.

    expect: failed, changed (a diff exactly when changed), msg_contains, stderr_contains, rc, and
    planned (check mode: the last commands are planned writes that were never run).
    """
    assert result["failed"] == expect.get("failed", False), result.get("msg")
    if "changed" in expect:
        assert result["changed"] == expect["changed"]
        assert ("diff" in result) == expect["changed"]
    for text in expect.get("msg_contains", []):
        assert text in result["msg"]
    if "stderr_contains" in expect:
        assert expect["stderr_contains"] in result["stderr"]
    for key in ("rc", *keys):
        if key in expect:
            assert result[key] == expect[key]
    if "planned" in expect:
        planned = [strip_binary(argv) for argv in result["commands"]]
        assert planned[-len(expect["planned"]) :] == expect["planned"]
        assert len(script.ran) == len(result["commands"]) - len(expect["planned"])
