# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parser, argv-builder and planner tests for _zfs against recorded zfs output."""

from __future__ import annotations

import pytest

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _zfs
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import (
    CommandError,
    Result,
    Runner,
    StateError,
)
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import read_fixture


@pytest.mark.parametrize("name", ["tank", "tank/nfs", "tank/nfs/with space", "zroot/a:b.c-d_e", "t" * 255])
def test_accepts_valid_dataset_names(name):
    assert _zfs.validate_dataset_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "non-empty"),
        ("/tank", "empty component"),
        ("tank/", "empty component"),
        ("tank//a", "empty component"),
        ("tank@snap", "'@'"),
        ("tank#bm", "'#'"),
        ("tank/a*b", "'*'"),
        ("tank/..", "reserved"),
        ("1tank", "begin with a letter"),
        ("t" * 256, "longer than 255"),
    ],
)
def test_rejects_invalid_dataset_names_saying_why(name, reason):
    with pytest.raises(StateError) as err:
        _zfs.validate_dataset_name(name)
    assert reason in str(err.value)


@pytest.mark.parametrize("name", ["tank/nfs@a", "tank/nfs@c with space", "tank@rescue-20260101T000000Z"])
def test_accepts_valid_snapshot_names(name):
    assert _zfs.validate_snapshot_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("tank/nfs", "exactly one '@'"),
        ("tank/nfs@a@b", "exactly one '@'"),
        ("tank/nfs@", "nothing after '@'"),
        ("tank/nfs@a/b", "'/' is not allowed"),
        ("tank//nfs@a", "empty component"),
        ("tank/nfs@bad*name", "'*'"),
    ],
)
def test_rejects_invalid_snapshot_names_saying_why(name, reason):
    with pytest.raises(StateError) as err:
        _zfs.validate_snapshot_name(name)
    assert reason in str(err.value)


def test_list_argv_covers_all_roots_in_one_call():
    argv = _zfs.build_list_argv(["tank/a", "tank/b"], ["name", "guid"], types=("snapshot",), parsable=True)
    assert argv == ["list", "-H", "-p", "-o", "name,guid", "-t", "snapshot", "-r", "tank/a", "tank/b"]


def test_list_argv_depth_replaces_recursive():
    argv = _zfs.build_list_argv(["tank"], ["name"], depth=1)
    assert argv == ["list", "-H", "-o", "name", "-t", "filesystem,volume", "-d", "1", "tank"]
    assert _zfs.build_list_argv(["tank"], ["name"], recursive=False)[-1] == "tank"
    assert "-r" not in _zfs.build_list_argv(["tank"], ["name"], recursive=False)


def test_get_argv_has_explicit_columns_and_sources():
    argv = _zfs.build_get_argv(
        ["tank/a"], ["compression", "mountpoint"], parsable=True, recursive=True, sources=["local", "received"]
    )
    assert argv == [
        "get",
        "-H",
        "-p",
        "-r",
        "-o",
        "name,property,value,source",
        "-s",
        "local,received",
        "compression,mountpoint",
        "tank/a",
    ]


def test_write_builders_add_dangerous_flags_only_when_asked():
    assert _zfs.build_destroy_argv("tank/a@s") == ["destroy", "tank/a@s"]
    assert _zfs.build_destroy_argv("tank/a@s", recursive=True, dry_run=True) == [
        "destroy",
        "-n",
        "-v",
        "-r",
        "tank/a@s",
    ]
    assert _zfs.build_rollback_argv("tank/a@s") == ["rollback", "tank/a@s"]
    assert _zfs.build_rollback_argv("tank/a@s", destroy_newer=True) == ["rollback", "-r", "tank/a@s"]
    assert _zfs.build_snapshot_argv(["tank/a@s"], recursive=True, properties={"b:x": "1", "a:y": "2"}) == [
        "snapshot",
        "-r",
        "-o",
        "a:y=2",
        "-o",
        "b:x=1",
        "tank/a@s",
    ]
    assert _zfs.build_hold_argv("keep", ["tank/a@s"]) == ["hold", "keep", "tank/a@s"]
    assert _zfs.build_release_argv("keep", ["tank/a@s"], recursive=True) == ["release", "-r", "keep", "tank/a@s"]
    assert _zfs.build_holds_argv(["tank/a@s", "tank/b@s"], parsable=True) == [
        "holds",
        "-H",
        "-p",
        "tank/a@s",
        "tank/b@s",
    ]


def test_destroy_builder_refuses_a_filesystem():
    with pytest.raises(StateError, match="exactly one '@'"):
        _zfs.build_destroy_argv("tank/a")


def test_parses_zfs_fuse_snapshot_listing_with_spaces_and_humanised_guid():
    snapshots = _zfs.parse_snapshots(read_fixture("zfs/zfs-list-snapshots-with-spaces.zfs-fuse.txt"))
    assert [row["name"] for row in snapshots] == [
        "tank/nfs@a",
        "tank/nfs@b",
        "tank/nfs@c with space",
        "tank/nfs/with space@b",
    ]
    first = snapshots[0]
    assert first["guid"] == "11.9E"
    assert first["createtxg"] == 18
    assert first["creation"] == "Sat Nov 21 13:29 2026"
    assert first["userrefs"] == 2
    assert (snapshots[3]["dataset"], snapshots[3]["snapshot"]) == ("tank/nfs/with space", "b")
    assert snapshots[2]["snapshot"] == "c with space"


def test_parses_parsable_snapshot_listing_as_numbers():
    text = "tank/a@zrepl_1\t7015482366291357862\t1211\t1751398308\t0\ntank/a@x\t1\t1300\t1751398908\t3\n"
    snapshots = _zfs.parse_snapshots(text)
    assert snapshots[0] == {
        "name": "tank/a@zrepl_1",
        "guid": 7015482366291357862,
        "createtxg": 1211,
        "creation": 1751398308,
        "userrefs": 0,
        "dataset": "tank/a",
        "snapshot": "zrepl_1",
    }
    assert snapshots[1]["userrefs"] == 3


def test_snapshot_numbers_from_get_p_on_zfs_fuse_are_exact():
    snapshots = _zfs.parse_snapshot_properties(read_fixture("zfs/zfs-get-p-snapshot-properties.zfs-fuse.txt"))
    assert [row["name"] for row in snapshots] == [
        "tank/nfs@a",
        "tank/nfs@b",
        "tank/nfs@c with space",
        "tank/nfs/with space@b",
    ]
    assert snapshots[0]["guid"] == 13775173096266525445
    assert snapshots[0]["creation"] == 1795267783
    assert snapshots[0]["userrefs"] == 2


def test_empty_and_no_datasets_outputs_are_empty_lists():
    assert _zfs.parse_snapshots(read_fixture("zfs/zfs-list-snapshots-none.zfs-fuse.txt")) == []
    assert _zfs.parse_list("no datasets available\n", ("name", "used")) == []
    assert _zfs.parse_holds(read_fixture("zfs/zfs-holds-nonexistent-stdout-salt-fixture.txt")) == []


def test_parse_list_keeps_dash_values_and_spaces():
    columns = ("name", "type", "used", "mountpoint", "origin", "compression")
    rows = _zfs.parse_list(read_fixture("zfs/zfs-list-datasets.zfs-fuse.txt"), columns)
    assert rows[2] == {
        "name": "tank/nfs/with space",
        "type": "filesystem",
        "used": "112K",
        "mountpoint": "/tmp/cap/mnt/nfs/with space",
        "origin": "-",
        "compression": "on",
    }


def test_parse_list_reads_salt_fixture_without_trailing_newline():
    rows = _zfs.parse_list(
        read_fixture("zfs/zfs-list-H-default-cols-salt-fixture.txt"), ("name", "used", "avail", "refer", "mountpoint")
    )
    assert rows == [{"name": "myzpool", "used": "791G", "avail": "1007G", "refer": "96K", "mountpoint": "/myzpool"}]


def test_parse_list_names_the_line_on_a_field_count_mismatch():
    with pytest.raises(_zfs.ParseError, match=r"line 2: expected 2 .*'tank/b\\t1\\t2'"):
        _zfs.parse_list("tank/a\t1\ntank/b\t1\t2\n", ("name", "used"))


def test_parse_list_refuses_space_padded_human_output():
    with pytest.raises(_zfs.ParseError):
        _zfs.parse_list(read_fixture("zfs/zfs-destroy-snapshot-busy-openzfs17239.txt"), ("name", "refer"))


def test_parse_snapshots_rejects_non_snapshot_rows_and_bad_numbers():
    with pytest.raises(_zfs.ParseError, match="not a snapshot"):
        _zfs.parse_snapshots("tank/a\t1\t2\t3\t0\n")
    with pytest.raises(_zfs.ParseError, match="createtxg is not a number"):
        _zfs.parse_snapshots("tank/a@s\t1\tabc\t3\t0\n")


def test_parse_get_keeps_inherited_source_with_spaces():
    props = _zfs.parse_get(read_fixture("zfs/zfs-get-all.zfs-fuse.txt"))
    nfs = props["tank/nfs"]
    assert nfs["mountpoint"] == {"value": "/tmp/cap/mnt/nfs", "source": "inherited from tank"}
    assert nfs["creation"] == {"value": "Sat Nov 21 13:29 2026", "source": "-"}
    assert nfs["compression"] == {"value": "on", "source": "local"}


def test_parse_get_rejects_three_column_output():
    with pytest.raises(_zfs.ParseError, match="expected 4"):
        _zfs.parse_get(read_fixture("zfs/zfs-get-Hp-name-property-value-salt-fixture.txt"))


def test_parse_holds_keeps_tags_verbatim_and_text_timestamps():
    holds = _zfs.parse_holds(read_fixture("zfs/zfs-holds-H-salt-fixture.txt"))
    assert holds == [
        {"snapshot": "myzpool/mydataset@baseline", "tag": "important  ", "timestamp": "Wed Dec 23 21:06 2015"},
        {"snapshot": "myzpool/mydataset@baseline", "tag": "release-1.0", "timestamp": "Wed Dec 23 21:08 2015"},
    ]


def test_parse_holds_with_p_and_double_space_dates_and_tabless_tags():
    text = "tank/a@s\tzrepl_last_received_J_job\t1751398308\ntank/b c@s\tmy tag\tSun Apr  6  3:00 2025\n"
    holds = _zfs.parse_holds(text)
    assert holds[0]["timestamp"] == 1751398308
    assert holds[1] == {"snapshot": "tank/b c@s", "tag": "my tag", "timestamp": "Sun Apr  6  3:00 2025"}


def test_parse_holds_refuses_the_zfs_fuse_internal_error():
    with pytest.raises(_zfs.ParseError, match="line 1"):
        _zfs.parse_holds(read_fixture("zfs/zfs-holds-unsupported.zfs-fuse.txt"))


@pytest.mark.parametrize(
    ("fixture", "predicate"),
    [
        ("zfs/zfs-hold-tag-exists.zfs-fuse.txt", _zfs.is_hold_exists_error),
        ("zfs/zfs-hold-error-tag-exists-salt-fixture.txt", _zfs.is_hold_exists_error),
        ("zfs/zfs-release-no-such-tag.zfs-fuse.txt", _zfs.is_no_such_tag_error),
        ("zfs/zfs-release-no-such-tag-and-destroy-busy-zfsautobackup152.txt", _zfs.is_no_such_tag_error),
        ("zfs/zfs-destroy-missing-snapshot.zfs-fuse.txt", _zfs.is_missing_dataset_error),
        ("zfs/zfs-list-missing-dataset.zfs-fuse.txt", _zfs.is_missing_dataset_error),
    ],
)
def test_error_predicates_recognise_recorded_errors(fixture, predicate):
    assert predicate(read_fixture(fixture))
    assert not predicate(read_fixture("zfs/zfs-destroy-held-busy.zfs-fuse.txt"))


class FakeRunner:
    def __init__(self, results):
        self.results = list(results)
        self.commands = []

    def read(self, args, check_rc=True):
        self.commands.append(["zfs", *args])
        return self.results.pop(0)

    failure = Runner.failure


def test_capabilities_on_openzfs_take_one_probe():
    runner = FakeRunner([Result(0, "off\n", "")])
    caps = _zfs.detect_capabilities(runner, "tank")
    assert caps.encryption and caps.list_parsable and caps.holds_listing and caps.written
    assert runner.commands == [["zfs", "get", "-H", "-o", "value", "encryption", "tank"]]


def test_capabilities_on_zfs_fuse_from_recorded_errors():
    runner = FakeRunner(
        [
            Result(2, "", read_fixture("zfs/zfs-get-encryption-invalid-property.zfs-fuse.txt")),
            Result(2, "", read_fixture("zfs/zfs-list-p-invalid-option.zfs-fuse.txt")),
        ]
    )
    caps = _zfs.detect_capabilities(runner, "tank")
    assert caps.to_dict() == {
        "list_parsable": False,
        "holds_listing": False,
        "encryption": False,
        "bookmarks": False,
        "raw_send": False,
        "resumable_receive": False,
        "written": False,
        "probe": "zfs-fuse",
    }
    assert runner.commands[1] == ["zfs", "list", "-H", "-p", "-o", "name", "-d", "0", "tank"]


def test_capabilities_on_legacy_zfs_keep_parsable_listing_and_holds():
    runner = FakeRunner([Result(2, "", "bad property list: invalid property 'encryption'\n"), Result(0, "tank\n", "")])
    caps = _zfs.detect_capabilities(runner, "tank")
    assert (caps.list_parsable, caps.holds_listing, caps.encryption, caps.raw_send) == (True, True, False, False)


def test_capability_probe_raises_on_a_missing_pool():
    runner = FakeRunner([Result(1, "", read_fixture("zfs/zfs-get-missing-dataset.zfs-fuse.txt"))])
    with pytest.raises(CommandError, match="dataset does not exist"):
        _zfs.detect_capabilities(runner, "tank")


def rows(*specs):
    return [
        {
            "name": name,
            "createtxg": txg,
            "userrefs": refs,
            "dataset": name.split("@")[0],
            "snapshot": name.split("@")[1],
        }
        for name, txg, refs in specs
    ]


def test_snapshot_present_plans_nothing_when_it_exists():
    assert _zfs.plan_snapshot_present("tank/a@s", {"tank/a@s"}) == []
    assert _zfs.plan_snapshot_present("tank/a@s", set(), recursive=True) == [["snapshot", "-r", "tank/a@s"]]


def test_snapshot_absent_refuses_held_snapshot_naming_tags():
    snaps = rows(("tank/a@s", 5, 1))
    holds = [{"snapshot": "tank/a@s", "tag": "keep", "timestamp": 1}]
    with pytest.raises(StateError, match=r"tank/a@s held by 'keep'.*zfs release"):
        _zfs.plan_snapshot_absent("tank/a@s", snaps, holds)
    with pytest.raises(StateError, match="1 user hold"):
        _zfs.plan_snapshot_absent("tank/a@s", snaps, None)


def test_snapshot_absent_checks_children_only_when_recursive():
    snaps = rows(("tank/a@s", 5, 0), ("tank/a/b@s", 5, 1))
    assert _zfs.plan_snapshot_absent("tank/a@s", snaps) == [["destroy", "tank/a@s"]]
    with pytest.raises(StateError, match="tank/a/b@s"):
        _zfs.plan_snapshot_absent("tank/a@s", snaps, recursive=True)
    assert _zfs.plan_snapshot_absent("tank/a@gone", snaps) == []


def test_holds_plan_is_idempotent_with_known_tags_and_attempts_all_when_unknown():
    assert _zfs.plan_holds("tank/a@s", ["keep", "new"], "present", {"keep"}) == [["hold", "new", "tank/a@s"]]
    assert _zfs.plan_holds("tank/a@s", ["keep", "new"], "absent", {"keep"}) == [["release", "keep", "tank/a@s"]]
    assert len(_zfs.plan_holds("tank/a@s", ["keep", "new"], "absent", None)) == 2


def test_rollback_refuses_to_destroy_newer_snapshots_naming_them():
    snaps = rows(("tank/a@old", 5, 0), ("tank/a@new", 9, 0), ("tank/a/child@new", 9, 0))
    with pytest.raises(StateError, match=r"newer snapshots tank/a@new\. "):
        _zfs.plan_rollback("tank/a@old", snaps, written=0)
    assert _zfs.plan_rollback("tank/a@old", snaps, written=0, destroy_newer=True) == [["rollback", "-r", "tank/a@old"]]


def test_rollback_is_a_noop_at_the_latest_snapshot_without_writes():
    snaps = rows(("tank/a@old", 5, 0), ("tank/a@new", 9, 0))
    assert _zfs.plan_rollback("tank/a@new", snaps, written=0) == []


def test_rollback_at_the_latest_snapshot_runs_when_writes_are_unknown_or_present():
    snaps = rows(("tank/a@new", 9, 0))
    assert _zfs.plan_rollback("tank/a@new", snaps, written=4096) == [["rollback", "tank/a@new"]]
    assert _zfs.plan_rollback("tank/a@new", snaps, written=None) == [["rollback", "tank/a@new"]]


def test_rollback_to_a_missing_snapshot_is_refused():
    with pytest.raises(StateError, match="no such snapshot"):
        _zfs.plan_rollback("tank/a@x", rows(("tank/a@new", 9, 0)))
