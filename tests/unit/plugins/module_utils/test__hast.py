# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_hast parsers (status, list, dump, hast.conf, hastd log) and the role planner."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _hast
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import Result, StateError
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import read_fixture

NOW = datetime(2026, 11, 21, 13, 40, tzinfo=timezone.utc)


def fixture(name):
    return read_fixture(f"hast/{name}")


# ---------------------------------------------------------------- hastctl status / list


def test_parse_status_reads_the_table_of_a_real_primary():
    assert _hast.parse_status(fixture("hastctl-status-primary-foozone.txt")) == [
        {
            "name": "storage",
            "status": "complete",
            "role": "primary",
            "localpath": "/dev/ada1",
            "remoteaddr": "192.168.1.131",
        }
    ]


def test_parse_status_table_maps_dash_to_no_status_and_reads_error_rows():
    rows = _hast.parse_status(fixture("hastctl-status-init-error.constructed.txt"))
    assert rows == [
        {"name": "shared", "status": None, "role": "init", "localpath": "/dev/da1", "remoteaddr": "tcp://10.0.0.2"},
        {"name": "tank", "error": 2},
    ]


def test_parse_status_reads_the_verbose_pre_10_format_as_list_blocks():
    primary, unknown = _hast.parse_status(fixture("hastctl-status-verbose.freebsd-9.constructed.txt"))
    assert primary["role"] == "primary"
    assert primary["status"] == "complete"
    assert primary["replication"] == "fullsync"
    assert "workerpid" not in primary
    assert primary["statistics"] == {"reads": 120, "writes": 4411, "deletes": 0, "flushes": 37, "activemap_updates": 12}
    assert unknown == {"name": "nfs", "error": 1}


def test_parse_status_of_empty_output_is_no_resource():
    assert _hast.parse_status("") == []


def test_parse_status_table_rejects_a_row_of_the_wrong_shape():
    text = "Name\tStatus\t Role\t\tComponents\nstorage\tcomplete primary\n"
    with pytest.raises(_hast.ParseError, match="line 2"):
        _hast.parse_status(text)


def test_parse_list_reads_every_field_of_a_real_secondary():
    (entry,) = _hast.parse_list(fixture("hastctl-list-secondary-foozone.txt"))
    assert entry == {
        "name": "storage",
        "role": "secondary",
        "provname": "storage",
        "localpath": "/dev/ada1",
        "extentsize": 2097152,
        "keepdirty": 0,
        "remoteaddr": "192.168.1.130",
        "replication": "memsync",
        "status": "complete",
        "workerpid": 2546,
        "dirty": 0,
        "statistics": {
            "reads": 0,
            "writes": 26,
            "deletes": 0,
            "flushes": 0,
            "activemap_updates": 0,
            "local_errors": {"read": 0, "write": 0, "delete": 0, "flush": 0},
            "queues": {"local": 0, "send": 0, "recv": 0, "done": 0, "idle": 255},
        },
    }


def test_parse_list_reads_degraded_primary_with_dirty_bytes_and_source_address():
    (entry,) = _hast.parse_list(fixture("hastctl-list-primary-degraded.constructed.txt"))
    assert (entry["status"], entry["dirty"], entry["sourceaddr"]) == ("degraded", 4194304, "tcp://10.0.0.1")


def test_parse_list_of_init_resource_has_no_status_and_no_worker():
    (entry,) = _hast.parse_list(fixture("hastctl-list-init.constructed.txt"))
    assert entry["role"] == "init"
    assert "status" not in entry
    assert "workerpid" not in entry
    assert entry["extentsize"] == 0


def test_parse_list_reads_two_blocks_and_an_error_block():
    names = [entry["name"] for entry in _hast.parse_list(fixture("hastctl-list-two-resources.constructed.txt"))]
    assert names == ["storage", "nfs"]
    assert _hast.parse_list(fixture("hastctl-list-unknown-resource.constructed.txt")) == [{"name": "nfs", "error": 1}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("storage:\n  role: primary\n  surprise line\n", "line 3"),
        ("  role: primary\n", "before the first resource"),
        ("storage:\n  extentsize: 2097152\n  role: init\n", r"extentsize is not '<bytes> \(<size>\)'"),
        ("storage:\n  role: init\n  statistics:\n    queues: local 0\n", "queues is not"),
        ("storage:\n  provname: storage\n", "neither 'role' nor 'error'"),
        ("storage is here\n", "expected '<resource>:'"),
    ],
)
def test_parse_list_rejects_unknown_lines(text, message):
    with pytest.raises(_hast.ParseError, match=message):
        _hast.parse_list(text)


def test_parse_dump_reads_counters_and_sizes():
    assert _hast.parse_dump(fixture("hastctl-dump-storage.constructed.txt")) == {
        "storage": {
            "datasize": 10737418240,
            "extentsize": 2097152,
            "keepdirty": 64,
            "localoff": 1052672,
            "resuid": 7214398201146834491,
            "localcnt": 3,
            "remotecnt": 3,
            "prevrole": "primary",
        }
    }


@pytest.mark.parametrize(
    "text",
    ["resource: storage\n    colour: blue\n", "    localcnt: 3\n", "resource: storage\n    localcnt: 3\n"],
)
def test_parse_dump_rejects_unknown_or_incomplete_blocks(text):
    with pytest.raises(_hast.ParseError):
        _hast.parse_dump(text)


@pytest.mark.parametrize(
    ("rc", "stdout", "stderr", "state"),
    [
        (0, "hastctl-dump-storage.constructed.txt", None, "present"),
        (255, None, "hastctl-dump-error-absent.constructed.txt", "absent"),
        (255, None, "hastctl-dump-error-invalid.constructed.txt", "invalid"),
        (255, None, "hastctl-dump-error-foreign.constructed.txt", "foreign"),
        (255, None, "hastctl-dump-error-open.constructed.txt", "unknown"),
    ],
)
def test_metadata_from_dump_tells_the_metadata_state(rc, stdout, stderr, state):
    meta = _hast.metadata_from_dump("storage", rc, fixture(stdout) if stdout else "", fixture(stderr) if stderr else "")
    assert meta["state"] == state
    assert (meta["error"] is None) == (state == "present")


def test_metadata_from_dump_rejects_a_dump_of_another_resource():
    with pytest.raises(_hast.ParseError, match="no block for nfs"):
        _hast.metadata_from_dump("nfs", 0, fixture("hastctl-dump-storage.constructed.txt"), "")


def test_list_is_unsupported_only_on_the_old_usage_text():
    old = fixture("hastctl-usage-no-list.freebsd-9.constructed.txt")
    assert _hast.is_list_unsupported(64, old)
    assert not _hast.is_list_unsupported(64, old.replace("status [-d]", "list [-d] [-c config] [all | name ...]\n "))
    assert not _hast.is_list_unsupported(1, old)


def test_hastd_unreachable_needs_exit_71_and_the_connect_message():
    down = fixture("hastctl-error-hastd-down.constructed.txt")
    assert _hast.is_hastd_unreachable(71, down)
    assert not _hast.is_hastd_unreachable(1, down)


def _reader(results):
    calls = []

    def read(argv):
        calls.append(argv)
        return results.pop(0)

    return read, calls


def test_read_listing_falls_back_to_verbose_status_on_old_hastctl():
    usage = fixture("hastctl-usage-no-list.freebsd-9.constructed.txt")
    verbose = fixture("hastctl-status-verbose.freebsd-9.constructed.txt")
    read, calls = _reader([Result(64, "", usage), Result(1, verbose, "")])
    entries = _hast.read_listing(read, RuntimeError)
    assert calls == [["list"], ["status"]]
    assert [entry["name"] for entry in entries] == ["storage", "nfs"]


def test_read_listing_returns_none_when_hastd_is_down_and_raises_on_other_failures():
    read, _runner = _reader([Result(71, "", fixture("hastctl-error-hastd-down.constructed.txt"))])
    assert _hast.read_listing(read, RuntimeError, ["storage"], config="/etc/hast.lab.conf") is None
    read, calls = _reader([Result(78, "", "[ERROR] Unable to parse configuration file at line 3 near 'x'")])
    with pytest.raises(RuntimeError):
        _hast.read_listing(read, RuntimeError, config="/etc/hast.lab.conf")
    assert calls == [["list", "-c", "/etc/hast.lab.conf"]]


def test_read_metadata_dumps_each_resource_once():
    read, calls = _reader(
        [Result(0, fixture("hastctl-dump-storage.constructed.txt"), ""), Result(255, "", "[ERROR] surprise")]
    )
    metadata = _hast.read_metadata(read, ["storage", "nfs"])
    assert calls == [["dump", "storage"], ["dump", "nfs"]]
    assert (metadata["storage"]["state"], metadata["nfs"]["state"]) == ("present", "unknown")


def test_argv_builders():
    assert _hast.build_role_argv("primary", ["storage", "nfs"]) == ["role", "primary", "storage", "nfs"]
    assert _hast.build_create_argv("storage", "/tmp/h.conf") == ["create", "-c", "/tmp/h.conf", "storage"]
    assert _hast.build_dump_argv("storage", _hast.DEFAULT_CONFIG) == ["dump", "storage"]
    with pytest.raises(StateError):
        _hast.build_role_argv("master", ["storage"])


# ---------------------------------------------------------------- hast.conf


def test_parse_hast_conf_reads_the_man_page_example():
    conf = _hast.parse_hast_conf(fixture("hast-conf-manpage-example.conf"))
    assert conf["global"] == {"listen": ["tcp://0.0.0.0"]}
    assert conf["nodes"] == {
        "hasta": {"listen": ["tcp://2001:db8::1/64"]},
        "hastb": {"listen": ["tcp://2001:db8::2/64"]},
    }
    shared, tank = conf["resources"]
    assert shared == {
        "name": "shared",
        "local": "/dev/da0",
        "nodes": {"hasta": {"remote": "tcp://10.0.0.2"}, "hastb": {"remote": "tcp://10.0.0.1"}},
    }
    assert tank["nodes"]["hastb"] == {
        "local": "/dev/mirror/tankb",
        "source": "tcp://10.0.0.2",
        "remote": "tcp://10.0.0.1",
    }


def test_node_view_inherits_resource_level_local_and_defaults_provname():
    shared, tank = _hast.parse_hast_conf(fixture("hast-conf-manpage-example.conf"))["resources"]
    assert _hast.node_view(shared, "hastb") == {
        "local": "/dev/da0",
        "remote": "tcp://10.0.0.1",
        "source": None,
        "provname": "shared",
        "metaflush": None,
    }
    assert _hast.node_view(tank, "hasta")["local"] == "/dev/mirror/tanka"
    assert _hast.node_view(tank, "hastc") is None


@pytest.mark.parametrize("name", ["hast-conf-manpage-example.conf", "hast-conf-foozone.conf"])
def test_render_then_parse_gives_back_the_same_configuration(name):
    conf = _hast.parse_hast_conf(fixture(name))
    assert _hast.parse_hast_conf(_hast.render_hast_conf(conf, header=["managed"])) == conf


def test_render_hast_conf_writes_the_man_page_layout():
    conf = {
        "global": {"timeout": 20},
        "nodes": {},
        "resources": [
            {
                "name": "storage",
                "replication": "memsync",
                "metaflush": False,
                "exec": "/usr/local/sbin/hast-hook",
                "nodes": {
                    "f0": {"local": "/dev/ada1", "remote": "tcp://10.0.0.2"},
                    "f1": {"local": "/dev/ada1", "remote": "none"},
                },
            }
        ],
    }
    assert _hast.render_hast_conf(conf, header=["freebsd_ha.storage:hast", ""]) == (
        "# freebsd_ha.storage:hast\n#\ntimeout 20\n\nresource storage {\n\treplication memsync\n"
        "\texec /usr/local/sbin/hast-hook\n\tmetaflush off\n\ton f0 {\n\t\tlocal /dev/ada1\n"
        "\t\tremote tcp://10.0.0.2\n\t}\n\ton f1 {\n\t\tlocal /dev/ada1\n\t\tremote none\n\t}\n}\n"
    )


def test_parse_hast_conf_reads_every_statement_kind_and_comments():
    text = (
        "# global\ncontrol uds:///var/run/hastctl\npidfile /var/run/hastd.pid\nreplication async\n"
        "checksum sha256 # trailing comment\ncompression lzf\ntimeout 30\nexec /sbin/hook\nmetaflush off\n"
        "resource r1 { name prov1\n local /dev/da1 on f0 { remote none source 10.0.0.1 metaflush on name p0 }"
        " on f1 { remote 10.0.0.1 } }\n"
    )
    conf = _hast.parse_hast_conf(text)
    assert conf["global"] == {
        "control": "uds:///var/run/hastctl",
        "pidfile": "/var/run/hastd.pid",
        "replication": "async",
        "checksum": "sha256",
        "compression": "lzf",
        "timeout": 30,
        "exec": "/sbin/hook",
        "metaflush": False,
    }
    (resource,) = conf["resources"]
    assert resource["provname"] == "prov1"
    assert resource["nodes"]["f0"] == {"remote": "none", "source": "10.0.0.1", "metaflush": True, "provname": "p0"}
    assert _hast.node_view(resource, "f1")["provname"] == "prov1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("resource storage {\n\ton f0 {\n\t\tlocal /dev/ada1;\n", "character ';'"),
        ("resource name {\n}\n", "expected word in resource, found 'name'"),
        ("resource storage {\n\tremote 10.0.0.1\n}\n", "'remote' is not a statement allowed in resource storage"),
        ("resource storage {\n\ton f0 {\n\t\tlocal /dev/ada1\n", "not closed"),
        ("timeout 0\n", "Negative or zero timeout"),
        ("replication sync\n", "expected fullsync or memsync or async"),
        ("resource a {\n}\nresource a {\n}\n", "Resource a configured more than once"),
        ("local /dev/ada1\n", "'local' is not a statement allowed in the global section"),
        ("}\n", "without an open section"),
        ("on f0 {\n\tresource x {\n\t}\n}\n", "holds a nested section"),
        ("listen 8457\n", "expected word"),
        ("resource storage\n", "file ends inside resource storage; expected {"),
    ],
)
def test_parse_hast_conf_rejects_what_hastd_would_not_parse(text, message):
    with pytest.raises(_hast.ParseError, match=message):
        _hast.parse_hast_conf(text)


def test_find_node_and_validate_hast_conf():
    conf = _hast.parse_hast_conf(fixture("hast-conf-foozone.conf"))
    assert _hast.find_node(conf, ["f1.lan.buetow.org", "f1"]) == "f1"
    assert _hast.find_node(conf, ["f9"]) is None
    assert _hast.validate_hast_conf(conf, ["f0", "f1"]) == []
    problems = _hast.validate_hast_conf(_hast.parse_hast_conf(fixture("hast-conf-manpage-example.conf")), ["f0", "f1"])
    assert problems[0] == "resource shared has sections for ['hasta', 'hastb'], expected ['f0', 'f1']"


@pytest.mark.parametrize(
    ("word", "plain"),
    [
        ("f0", True),
        ("storage", True),
        ("none", False),
        ("on", False),
        ("123", False),
        ("nfs share", False),
        ("/dev/ada1", True),
    ],
)
def test_is_plain_word_matches_hastd_str_tokens(word, plain):
    assert _hast.is_plain_word(word) is plain


# ---------------------------------------------------------------- hastd log


def test_scan_hastd_log_finds_split_brain_lines_with_times():
    events = _hast.scan_hastd_log(fixture("hastd-log-split-brain-f1.constructed.txt"), NOW)
    assert [(event["kind"], event["resource"]) for event in events] == [("split_brain", "storage")] * 3
    assert events[0]["time"] == datetime(2026, 11, 20, 9, 12, 40, tzinfo=timezone.utc)
    assert [_hast.is_recent(event, NOW, 3600) for event in events] == [False, True, True]


def test_scan_hastd_log_finds_dual_primary_and_bug_292322_lines():
    dual = _hast.scan_hastd_log(fixture("hastd-log-dual-primary-f0.constructed.txt"), NOW)
    assert [event["kind"] for event in dual] == ["dual_primary", "dual_primary"]
    bug = _hast.scan_hastd_log(fixture("hastd-log-bug-292322-f1.constructed.txt"), NOW)
    assert [(event["kind"], event["address"]) for event in bug] == [
        ("header_timeout", "tcp://10.0.0.1:61562"),
        ("header_timeout", "tcp://10.0.0.1:26377"),
        ("g_attach", None),
    ]


def test_scan_hastd_log_reads_rfc5424_lines():
    (event,) = _hast.scan_hastd_log(fixture("hastd-log-iso-f1.constructed.txt"), NOW)
    assert event["kind"] == "split_brain"
    assert event["time"] == datetime(2026, 11, 21, 13, 31, 2, 512341, tzinfo=timezone.utc)


def test_scan_hastd_log_dates_a_december_line_in_january_to_last_year():
    (event,) = _hast.scan_hastd_log(
        "Dec 31 23:59:00 f1 hastd[1]: [r] (secondary) Split-brain detected, exiting.\n",
        datetime(2027, 1, 1, 0, 1, tzinfo=timezone.utc),
    )
    assert event["time"].year == 2026


@pytest.mark.parametrize(
    ("address", "host"),
    [
        ("tcp://10.0.0.1:61562", "10.0.0.1"),
        ("10.0.0.1", "10.0.0.1"),
        ("tcp4://f1.example.org", "f1.example.org"),
        ("tcp6://[2001:db8::2]:8457", "2001:db8::2"),
        ("tcp://2001:db8::1/64", "2001:db8::1"),
        (None, None),
    ],
)
def test_address_host(address, host):
    assert _hast.address_host(address) == host


def test_events_for_picks_prefix_peer_address_and_kernel_lines():
    events = _hast.scan_hastd_log(
        fixture("hastd-log-bug-292322-f1.constructed.txt") + fixture("hastd-log-split-brain-f1.constructed.txt"), NOW
    )
    chosen = _hast.events_for("storage", "tcp://10.0.0.1", events)
    assert len(chosen) == len(events)
    assert [event["kind"] for event in _hast.events_for("nfs", "10.0.0.7", events)] == ["g_attach"]


# ---------------------------------------------------------------- views and planner


def _view(
    role="primary", status="complete", meta_fixture="hastctl-dump-storage.constructed.txt", events=(), os="15.0-RELEASE"
):
    entry = {"name": "storage", "role": role, "localpath": "/dev/ada1", "remoteaddr": "tcp://10.0.0.2"}
    if status:
        entry["status"] = status
    meta = _hast.metadata_from_dump("storage", 0, fixture(meta_fixture), "") if meta_fixture else None
    return _hast.resource_view(
        "storage",
        entry,
        meta=meta,
        conf_view=None,
        events=list(events),
        device_present=role == "primary",
        os_release=os,
    )


def test_resource_view_summarises_role_metadata_and_device():
    view = _view()
    assert (view["device"], view["device_present"], view["metadata_initialised"]) == ("/dev/hast/storage", True, True)
    assert view["known_to_hastd"] and not view["configured"]
    assert view["split_brain"] == {"suspected": False, "evidence": []}


def test_resource_view_flags_bug_292322_only_from_freebsd_15_on_a_node_that_does_not_replicate():
    events = _hast.scan_hastd_log(fixture("hastd-log-bug-292322-f1.constructed.txt"), NOW)
    assert _view("secondary", None, events=events)["bug_292322"]["suspected"]
    assert not _view("secondary", None, events=events, os="14.2-RELEASE")["bug_292322"]["suspected"]
    assert not _view("secondary", "complete", events=events)["bug_292322"]["suspected"]
    assert _view("primary", "degraded", events=events, os=None)["bug_292322"]["suspected"]


def test_resource_view_of_resource_hastd_does_not_know():
    view = _hast.resource_view(
        "nfs",
        {"name": "nfs", "error": 1},
        meta=None,
        conf_view={"local": "/dev/ada2", "provname": "nfs"},
        events=[],
        device_present=False,
        os_release=None,
    )
    assert (view["known_to_hastd"], view["configured"], view["local"]) == (False, True, "/dev/ada2")
    assert "service hastd reload" in view["error_text"]
    assert view["metadata_initialised"] is None


def _local(role="init", state="present", **extra):
    meta = {"state": state, "error": None if state == "present" else "[ERROR] ...", "localcnt": 3, "remotecnt": 3}
    return dict({"role": role, "metadata": meta, "local": "/dev/ada1", "hastd_running": True}, **extra)


def test_is_split_brain_follows_the_hastd_counter_rule():
    ahead = {"state": "present", "localcnt": 4, "remotecnt": 3}
    behind = {"state": "present", "localcnt": 3, "remotecnt": 3}
    assert _hast.is_split_brain(ahead, dict(ahead))
    assert not _hast.is_split_brain(ahead, behind)
    assert not _hast.is_split_brain(ahead, None)


def test_plan_promotes_an_init_resource_when_the_peer_is_secondary():
    plan = _hast.plan_role("storage", _local(), {"role": "secondary"}, "primary")
    assert plan == {
        "steps": [["role", "primary", "storage"]],
        "before": {"role": "init"},
        "after": {"role": "primary"},
        "warnings": [],
        "verify_role": "primary",
    }


def test_plan_is_empty_when_the_role_is_already_set():
    assert _hast.plan_role("storage", _local("primary"), {"role": "secondary"}, "primary")["steps"] == []


def test_refuses_promotion_when_peer_is_primary():
    with pytest.raises(StateError, match="refusing to make storage primary: the peer is primary for it"):
        _hast.plan_role("storage", _local("secondary"), {"role": "primary"}, "primary")


def test_promotion_with_allow_split_brain_warns():
    plan = _hast.plan_role("storage", _local("secondary"), {"role": "primary"}, "primary", allow_split_brain=True)
    assert plan["steps"] == [["role", "primary", "storage"]]
    assert "despite split-brain evidence" in plan["warnings"][0]


def test_refuses_promotion_when_both_copies_were_written():
    peer = {"role": "init", "metadata": {"state": "present", "localcnt": 4, "remotecnt": 3}}
    local = _local("init")
    local["metadata"].update(localcnt=4, remotecnt=3)
    with pytest.raises(StateError, match="both copies were written since the last sync"):
        _hast.plan_role("storage", local, peer, "primary")


def test_refuses_promotion_on_recent_split_brain_log_lines_when_counters_cannot_be_compared():
    local = _local("secondary", split_brain={"suspected": True, "evidence": ["f1 hastd: Split-brain detected"]})
    with pytest.raises(StateError, match=r"1 recent hastd log line\(s\) report a split brain \(the last: f1 hastd"):
        _hast.plan_role("storage", local, {"role": "secondary"}, "primary")


def test_old_log_lines_do_not_block_promotion_when_the_counters_agree():
    local = _local("secondary", split_brain={"suspected": True, "evidence": ["f1 hastd: Split-brain detected"]})
    peer = {"role": "secondary", "metadata": {"state": "present", "localcnt": 3, "remotecnt": 3}}
    assert _hast.plan_role("storage", local, peer, "primary")["steps"] == [["role", "primary", "storage"]]


def test_promotion_without_peer_information_warns():
    plan = _hast.plan_role("storage", _local(), None, "primary")
    assert plan["warnings"] == ["storage: the peer's role was not given, so a primary peer cannot be ruled out"]


def test_create_runs_only_where_metadata_is_absent():
    plan = _hast.plan_role("storage", _local("init", "absent"), {"role": "secondary"}, "primary", create=True)
    assert plan["steps"] == [["create", "storage"], ["role", "primary", "storage"]]
    assert plan["after"] == {"role": "primary", "metadata": "created"}
    assert _hast.plan_role("storage", _local("init"), None, "secondary", create=True)["steps"] == [
        ["role", "secondary", "storage"]
    ]


def test_create_on_an_idle_secondary_goes_through_init():
    plan = _hast.plan_role("storage", _local("secondary", "absent"), None, "secondary", create=True)
    assert plan["steps"] == [["role", "init", "storage"], ["create", "storage"], ["role", "secondary", "storage"]]


def test_create_alone_works_while_hastd_is_down():
    local = _local(None, "absent", hastd_running=False)
    assert _hast.plan_role("storage", local, None, None, create=True)["steps"] == [["create", "storage"]]
    with pytest.raises(StateError, match="hastd is not running"):
        _hast.plan_role("storage", local, None, "secondary", create=True)


def test_refuses_a_role_without_metadata_unless_create():
    with pytest.raises(StateError, match="give create: true"):
        _hast.plan_role("storage", _local("init", "absent"), None, "secondary")
    assert _hast.plan_role("storage", _local("secondary", "absent"), None, "init")["steps"] == [
        ["role", "init", "storage"]
    ]


@pytest.mark.parametrize("state", ["invalid", "foreign"])
def test_refuses_to_overwrite_invalid_or_foreign_metadata_without_discard(state):
    with pytest.raises(StateError, match=f"holds {state} metadata"):
        _hast.plan_role("storage", _local("init", state), None, "secondary", create=True)
    plan = _hast.plan_role("storage", _local("init", state), None, "secondary", discard_local_data=True)
    assert plan["steps"] == [["create", "storage"], ["role", "secondary", "storage"]]


def test_refuses_create_when_the_metadata_state_is_unknown():
    with pytest.raises(StateError, match="cannot tell whether /dev/ada1 holds HAST metadata"):
        _hast.plan_role("storage", _local("init", "unknown"), None, None, create=True)


def test_discard_recreates_the_split_brain_loser_as_secondary():
    local = _local("primary")
    plan = _hast.plan_role("storage", local, {"role": "primary"}, "secondary", discard_local_data=True)
    assert plan["steps"] == [["role", "init", "storage"], ["create", "storage"], ["role", "secondary", "storage"]]
    assert plan["before"] == {"role": "primary", "metadata": "present"}


def test_discard_keeps_a_copy_with_no_sign_of_a_lost_split_brain():
    plan = _hast.plan_role("storage", _local("secondary"), {"role": "primary"}, "secondary", discard_local_data=True)
    assert plan["steps"] == []
    assert "neither the counters nor the roles show that this copy lost" in plan["warnings"][0]


def test_discard_is_a_no_op_once_the_loser_was_re_created():
    local = _local("secondary")
    local["metadata"].update(resuid=0, localcnt=0, remotecnt=0)
    peer = {"role": "primary", "metadata": {"state": "present", "resuid": 71, "localcnt": 1, "remotecnt": 0}}
    assert _hast.plan_role("storage", local, peer, "secondary", discard_local_data=True)["steps"] == []


def test_discard_re_creates_a_copy_with_another_resource_id():
    local = _local("secondary")
    local["metadata"].update(resuid=12)
    peer = {"role": "primary", "metadata": {"state": "present", "resuid": 71, "localcnt": 3, "remotecnt": 3}}
    plan = _hast.plan_role("storage", local, peer, "secondary", discard_local_data=True)
    assert plan["steps"][1] == ["create", "storage"]


def test_refuses_discard_unless_the_peer_is_known_primary():
    local = _local("secondary")
    local["metadata"].update(localcnt=4, remotecnt=3)
    peer = {"role": "secondary", "metadata": {"state": "present", "localcnt": 4, "remotecnt": 3}}
    with pytest.raises(StateError, match="may hold the only good copy"):
        _hast.plan_role("storage", local, peer, "secondary", discard_local_data=True)


def test_refuses_discard_that_would_promote():
    local = _local("primary")
    with pytest.raises(StateError, match="can only resynchronise as secondary"):
        _hast.plan_role(
            "storage", local, {"role": "primary"}, "primary", discard_local_data=True, allow_split_brain=True
        )


def test_refuses_discard_without_role_on_a_primary_loser():
    with pytest.raises(StateError, match="give role: secondary"):
        _hast.plan_role("storage", _local("primary"), {"role": "primary"}, None, discard_local_data=True)


def test_refuses_roles_for_a_resource_hastd_does_not_know():
    with pytest.raises(StateError, match="service hastd reload"):
        _hast.plan_role("nfs", _local("init", error=1), None, "secondary")


def test_plan_warns_on_bug_292322_symptoms():
    local = _local("primary", bug_292322={"suspected": True, "evidence": ["..."]})
    plan = _hast.plan_role("storage", local, {"role": "secondary"}, "primary")
    assert _hast.BUG_292322_URL in plan["warnings"][0]
