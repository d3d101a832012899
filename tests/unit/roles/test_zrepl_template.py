# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The zrepl role: its template against real zrepl.yml samples, its argument spec, and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.freebsd_ha.storage.tests.unit.conftest import RESEARCH_CORPUS, load_cases
from ansible_collections.freebsd_ha.storage.tests.unit.roles.role_helpers import (
    ANSIBLE_MANAGED,
    ROOT,
    doc_block,
    doc_example,
    failed_asserts,
    render_template,
    role_defaults,
    spec_errors,
)

IDS, CASES = load_cases(Path(__file__).with_suffix(".yml"))
SAMPLE_DIRS = {
    "research": RESEARCH_CORPUS / "samples" / "zrepl",
    "reference": ROOT.parent / "shared" / "reference" / "samples" / "zrepl",
}


def sample_path(ref):
    """Path of research/<file> or reference/<file>; the test is skipped when that sample tree is absent."""
    tree, name = ref.split("/", 1)
    directory = SAMPLE_DIRS[tree]
    if not directory.is_dir():
        pytest.skip(f"{directory} not found (samples are read in place, never copied)")
    path = directory / name
    assert path.is_file(), f"{path} is missing"
    return path


def all_sample_refs():
    return [f"{tree}/{p.name}" for tree, d in SAMPLE_DIRS.items() if d.is_dir() for p in sorted(d.glob("*.yml"))]


def render(variables):
    """Render zrepl.yml for variables (role defaults underneath) and return (text, parsed YAML)."""
    text = render_template("zrepl", "zrepl.yml.j2", {"zrepl_global": {}, **variables})
    return text, yaml.safe_load(text)


def as_role_vars(config):
    return {"zrepl_global": config.get("global") or {}, "zrepl_jobs": config.get("jobs") or []}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_role_variables_render_the_sample(case):
    expected = yaml.safe_load(sample_path(case["sample"]).read_text())
    assert spec_errors("zrepl", case["vars"]) == []
    _text, rendered = render(case["vars"])
    assert rendered == expected


@pytest.mark.parametrize("ref", all_sample_refs())
def test_every_real_sample_fits_the_argument_spec_and_renders_unchanged(ref):
    config = yaml.safe_load(sample_path(ref).read_text())
    variables = as_role_vars(config)
    assert spec_errors("zrepl", variables) == []
    _text, rendered = render(variables)
    assert rendered == config


def test_file_starts_with_the_managed_header_and_marker():
    text, _rendered = render({"zrepl_jobs": []})
    lines = text.splitlines()
    assert lines[:4] == ["#", f"# {ANSIBLE_MANAGED}", "#", "# freebsd_ha.storage:zrepl"]


def test_empty_global_is_left_out_and_defaults_give_a_syslog_outlet():
    assert "global" not in render({"zrepl_jobs": []})[1]
    defaults = yaml.safe_load((ROOT / "roles/zrepl/defaults/main.yml").read_text())
    _text, rendered = render({"zrepl_global": defaults["zrepl_global"], "zrepl_jobs": []})
    assert rendered == {"global": {"logging": [{"type": "syslog", "level": "info", "format": "human"}]}, "jobs": []}


def test_recv_overrides_become_zfs_property_strings():
    job = {
        "type": "sink",
        "name": "sink",
        "root_fs": "zdata/sink",
        "serve": {"type": "local", "listener_name": "l"},
        "recv": {
            "properties": {"override": {"readonly": True, "atime": False, "copies": 2}, "inherit": ["mountpoint"]}
        },
    }
    text, rendered = render({"zrepl_jobs": [job]})
    assert rendered["jobs"][0]["recv"]["properties"] == {
        "override": {"readonly": "on", "atime": "off", "copies": "2"},
        "inherit": ["mountpoint"],
    }
    assert "readonly: 'on'" in text  # quoted: YAML 1.1 would read a bare on as a boolean


def test_name_and_type_come_first_and_nulls_are_dropped():
    job = {
        "filesystems": {"tank<": True},
        "pruning": {"keep": [{"count": 3, "type": "last_n", "regex": None}]},
        "snapshotting": {"interval": "5m", "prefix": "zrepl_", "type": "periodic", "hooks": None},
        "type": "snap",
        "name": "snapjob",
    }
    text, rendered = render({"zrepl_jobs": [job]})
    assert text.split("jobs:\n", 1)[1].splitlines()[:2] == ["- name: snapjob", "  type: snap"]
    assert rendered["jobs"][0]["pruning"]["keep"] == [{"type": "last_n", "count": 3}]
    assert "hooks" not in rendered["jobs"][0]["snapshotting"]


def test_standard_pair_example_renders_push_on_f0_and_sink_on_f1():
    f0, f1 = doc_example("zrepl", "standard-pair-f0"), doc_example("zrepl", "standard-pair-f1")
    assert spec_errors("zrepl", f0) == [] and spec_errors("zrepl", f1) == []
    (push,) = render(f0)[1]["jobs"]
    (sink,) = render(f1)[1]["jobs"]
    assert (push["name"], push["type"], push["filesystems"]) == ("f0_to_f1", "push", {"zdata/enc/nfsdata": True})
    assert push["connect"] == {
        "type": "ssh+stdinserver",
        "host": "f1",
        "user": "root",
        "port": 22,
        "identity_file": f0["zrepl_ssh_identity_file"],
    }
    assert push["snapshotting"] == {"type": "periodic", "prefix": "zrepl_", "interval": "1m"}
    assert push["send"] == {"encrypted": False}
    assert [rule["type"] for rule in push["pruning"]["keep_sender"]][:2] == ["not_replicated", "last_n"]
    assert "last_n" in [rule["type"] for rule in push["pruning"]["keep_receiver"]]
    assert (sink["name"], sink["type"], sink["root_fs"]) == ("f1_sink", "sink", "zdata/sink")
    assert sink["serve"] == {"type": "stdinserver", "client_identities": ["f0"]}
    assert sink["recv"]["properties"]["override"] == {"readonly": "on"}
    assert f1["zrepl_stdinserver_authorized_keys"] == [{"client_identity": "f0", "from_host": "f0"}]
    # The example passes the role's own checks, safe mode included.
    assert failed_asserts("zrepl", "validate.yml", f0) == []
    assert failed_asserts("zrepl", "validate.yml", {**f1, "hostvars": {"f0": f0}}) == []


@pytest.mark.parametrize("host", ["f0", "f1"])
def test_rendered_files_in_the_docs_are_what_the_template_writes(host):
    variables = {
        "zrepl_global": role_defaults("zrepl")["zrepl_global"],
        **doc_example("zrepl", f"standard-pair-{host}"),
    }
    text, _rendered = render(variables)
    assert text[text.index("# freebsd_ha.storage:zrepl") :] == doc_block("zrepl", "rendered", f"standard-pair-{host}")


GOOD_SINK = {"name": "s", "type": "sink", "root_fs": "tank/sink", "serve": {"type": "local", "listener_name": "l"}}
PUSH = {
    "name": "p",
    "type": "push",
    "connect": {"type": "local", "listener_name": "l", "client_identity": "me"},
    "filesystems": {"tank<": True},
    "snapshotting": {"type": "manual"},
    "pruning": {
        "keep_sender": [{"type": "last_n", "count": 3}, {"type": "regex", "negate": True, "regex": "^zrepl_"}],
        "keep_receiver": [{"type": "last_n", "count": 3}, {"type": "regex", "negate": True, "regex": "^zrepl_"}],
    },
}


@pytest.mark.parametrize(
    ("job", "message"),
    [
        pytest.param({**GOOD_SINK, "type": "replicate"}, "value of type must be one of", id="unknown job type"),
        pytest.param(
            {k: v for k, v in GOOD_SINK.items() if k != "name"}, "missing required arguments: name", id="missing name"
        ),
        pytest.param(
            {k: v for k, v in PUSH.items() if k != "connect"},
            "type is push but all of the following are missing: connect",
            id="push without connect",
        ),
        pytest.param(
            {**GOOD_SINK, "serve": {"type": "tcp", "listen": ":8888"}},
            "type is tcp but all of the following are missing: clients",
            id="tcp serve without clients",
        ),
        pytest.param(
            {**GOOD_SINK, "serve": {"type": "local", "listener_name": "l", "adress": "x"}},
            "zrepl_jobs.serve.adress. Supported parameters include",
            id="misspelt serve field",
        ),
        pytest.param(
            {**PUSH, "pruning": {"keep_sender": [{"type": "last_n"}], "keep_receiver": []}},
            "type is last_n but all of the following are missing: count",
            id="last_n without count",
        ),
        pytest.param(
            {**PUSH, "snapshotting": {"type": "periodic", "prefix": "zrepl_"}},
            "type is periodic but all of the following are missing: interval",
            id="periodic without interval",
        ),
        pytest.param(
            {**GOOD_SINK, "recv": {"placeholder": {"encryption": "yes"}}},
            "value of encryption must be one of",
            id="bad placeholder encryption",
        ),
    ],
)
def test_argument_spec_rejects_bad_jobs(job, message):
    errors = spec_errors("zrepl", {"zrepl_jobs": [job]})
    assert any(message in error for error in errors), errors


def test_argument_spec_rejects_a_bad_log_level():
    errors = spec_errors(
        "zrepl", {"zrepl_global": {"logging": [{"type": "stdout", "level": "loud", "format": "human"}]}}
    )
    assert any("value of level must be one of" in error for error in errors), errors


@pytest.mark.parametrize(
    ("variables", "task", "message"),
    [
        pytest.param(
            {"zrepl_jobs": [GOOD_SINK, PUSH | {"name": "s"}]},
            "Job names are unique and not reserved",
            "used twice",
            id="duplicate names",
        ),
        pytest.param(
            {"zrepl_jobs": [GOOD_SINK | {"name": "_control"}]},
            "Job names are unique and not reserved",
            "reserved",
            id="reserved name",
        ),
        pytest.param(
            {"zrepl_jobs": [GOOD_SINK | {"filesystems": {"<": True}}]},
            "Each job has only the fields of its type",
            "filesystems",
            id="sink with filesystems",
        ),
        pytest.param(
            {"zrepl_jobs": [PUSH | {"pruning": {"keep": PUSH["pruning"]["keep_sender"]}}]},
            "Pruning has the keep lists of the job type",
            "keep_receiver and keep_sender",
            id="push with snap pruning",
        ),
        pytest.param(
            {"zrepl_jobs": [PUSH | {"filesystems": {"tank<": "yes"}}]},
            "Filesystem filters map patterns to booleans",
            "true or false",
            id="string in filesystems",
        ),
        pytest.param(
            {"zrepl_jobs": [PUSH | {"pruning": PUSH["pruning"] | {"keep_receiver": [{"type": "last_n", "count": 3}]}}]},
            "Pruning keeps the snapshots zrepl did not take (zrepl_safe_mode)",
            "pruning.keep_receiver",
            id="receiver pruning destroys foreign snapshots",
        ),
        pytest.param(
            {"zrepl_stdinserver_authorized_keys": [{"client_identity": "f0 x", "public_key": "ssh-ed25519 AAAA"}]},
            "Forced ssh commands get a plain identity and a one-line key or a host that has one",
            "client identity 'f0 x'",
            id="identity with a space",
        ),
        pytest.param(
            {
                "zrepl_stdinserver_authorized_keys": [
                    {"client_identity": "f0", "public_key": "ssh-ed25519 AAAA\nssh-rsa BBBB"}
                ]
            },
            "Forced ssh commands get a plain identity and a one-line key or a host that has one",
            "one line",
            id="two keys in one entry",
        ),
    ],
)
def test_role_refuses_before_writing(variables, task, message):
    failures = failed_asserts("zrepl", "validate.yml", variables)
    assert {name for name, _message in failures} == {task}
    assert message in failures[0][1]


def test_safe_mode_off_allows_pruning_that_keeps_only_zrepl_snapshots():
    job = PUSH | {
        "pruning": {"keep_sender": [{"type": "last_n", "count": 3}], "keep_receiver": [{"type": "last_n", "count": 3}]}
    }
    assert len(failed_asserts("zrepl", "validate.yml", {"zrepl_jobs": [job]})) == 2
    assert failed_asserts("zrepl", "validate.yml", {"zrepl_jobs": [job], "zrepl_safe_mode": False}) == []
