# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Send/receive parsers and the replication planner, against recorded zfs output."""

from __future__ import annotations

import pytest

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _replication as repl
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError
from ansible_collections.freebsd_ha.storage.plugins.module_utils._zfs import ParseError
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import read_fixture, research_corpus_file


def snaps(fixture, dataset):
    return repl.parse_snapshot_guids(read_fixture(f"zfs/{fixture}"), dataset)[0]


SOURCE = "tank/nfs"
TARGET = "backup/nfs"


@pytest.fixture
def source_three():
    return snaps("zfs-send-source-guids-three.zfs-fuse.txt", SOURCE)


# ---------------------------------------------------------------- parsers


def test_snapshot_guids_are_exact_and_sorted_by_createtxg(source_three):
    assert [s["snapshot"] for s in source_three] == ["daily-2026-11-20", "daily-2026-11-21", "daily-2026-11-22"]
    assert source_three[0]["guid"] == 6068009619935481215
    assert source_three[2]["createtxg"] == 22


def test_snapshot_guids_refuse_humanised_guid():
    with pytest.raises(ParseError, match="exact number"):
        repl.parse_snapshot_guids("tank/a@s1\tguid\t14.4E\t-\ntank/a@s1\tcreatetxg\t12\t-\n", "tank/a")


def test_target_properties_without_written_or_resume_token_on_zfs_fuse():
    props = repl.summarise_target_properties(read_fixture("zfs/zfs-recv-target-props.zfs-fuse.txt"), TARGET)
    assert props == {
        "written": None,
        "readonly": "off",
        "mounted": "yes",
        "resumable": False,
        "resume_token": None,
        "local": {},
    }


def test_target_properties_read_written_and_resume_token():
    text = "tank/a\twritten\t4096\t-\ntank/a\treceive_resume_token\t1-abc-def\t-\ntank/a\treadonly\ton\tlocal\n"
    props = repl.summarise_target_properties(text, "tank/a")
    assert (props["written"], props["resume_token"], props["resumable"]) == (4096, "1-abc-def", True)
    assert props["local"] == {"readonly": "on"}


@pytest.mark.parametrize(
    ("name", "total", "streams"),
    [
        ("zfs-send-nvP-full-zrepltest.txt", 10518512, [("full", None, "zroot/test/a@3", 10518512)]),
        ("zfs-send-nvP-incremental-zrepltest.txt", 10511856, [("incremental", "1", "zroot/test/a@2", 10511856)]),
        ("zfs-send-nvP-full-with-token-zrepltest.txt", 5389768, [("full", None, "zroot/test/a@1", 5389768)]),
        (
            "zfs-send-nvP-incremental-bookmark-with-token-zrepltest.txt",
            5383312,
            [("incremental", "zroot/test/a#1", "zroot/test/a@2", 5383312)],
        ),
        (
            "zfs-send-nvP-zero-size-zol0712-zrepltest.txt",
            0,
            [("incremental", "p1 with/ spaces d1@1 with space", "p1 with/ spaces d1@2 with space", 0)],
        ),
    ],
)
def test_send_estimate_from_research_corpus(name, total, streams):
    path = research_corpus_file(f"samples/zfs/{name}")
    parsed = repl.parse_send_estimate(path.read_text())
    assert parsed["total"] == total
    assert [(s["kind"], s["from"], s["to"], s["bytes"]) for s in parsed["streams"]] == streams


def test_send_estimate_keeps_resume_token_contents():
    path = research_corpus_file("samples/zfs/zfs-send-nvP-incremental-with-token-zrepltest.txt")
    resume = repl.parse_send_estimate(path.read_text())["resume"]
    assert resume["toname"] == "zroot/test/a@2" and resume["fromguid"] == "0x52f9c212c71e60cd"


def test_send_estimate_refuses_cannot_resume_message():
    path = research_corpus_file("samples/zfs/zfs-send-nvt-token-cannot-resume-zrepltest.txt")
    with pytest.raises(ParseError, match="cannot resume send"):
        repl.parse_send_estimate(path.read_text())


def test_send_estimate_human_form_with_intermediates():
    text = read_fixture("zfs/zfs-send-v-recv-modified-error-antoniomika.txt").split("receiving")[0]
    parsed = repl.parse_send_estimate(text)
    assert parsed["approximate"] is True
    assert parsed["streams"][0] == {
        "kind": "incremental",
        "from": "@initial",
        "to": "backup/samba@next",
        "bytes": int(77.1 * 1024),
    }
    assert parsed["total"] == 273 * 1024


def test_send_estimate_human_full_send():
    parsed = repl.parse_send_estimate("full send of tank/a@s1 estimated size is 1.50M\ntotal estimated size is 1.50M\n")
    assert parsed["streams"][0]["bytes"] == parsed["total"] == int(1.5 * 1024 * 1024)


def test_send_estimate_rejects_unknown_lines():
    with pytest.raises(ParseError, match="line 1"):
        repl.parse_send_estimate(read_fixture("zfs/zfs-send-nvP-unsupported.zfs-fuse.txt"))


@pytest.mark.parametrize(
    ("fixture", "kind", "dataset"),
    [
        ("zfs-recv-error-modified-brokenpipe-openzfs3742.txt", "modified", "..."),
        ("zfs-recv-error-destination-modified-foozone.txt", "modified", "zdata/sink/f0/zdata/enc/nfsdata"),
        ("zfs-send-v-recv-modified-error-antoniomika.txt", "modified", "backup/samba"),
        ("zfs-recv-error-does-not-match-incremental-openzfs13268.txt", "mismatch", "datatank/carbonics"),
        ("zfs-recv-error-not-match.zfs-fuse.txt", "mismatch", "backup/nfs"),
        ("zfs-recv-error-exists.zfs-fuse.txt", "exists", "backup/other"),
        ("zfs-recv-error-missing-parent.zfs-fuse.txt", "missing_parent", None),
    ],
)
def test_recv_error_kinds_including_two_line_messages(fixture, kind, dataset):
    parsed = repl.parse_recv_error(read_fixture(f"zfs/{fixture}"))
    assert (parsed["kind"], parsed["dataset"]) == (kind, dataset)


def test_recv_error_incomplete_stream_carries_token():
    parsed = repl.parse_recv_error(read_fixture("zfs/zfs-recv-error-incomplete-stream-resume-token-hankb.txt"))
    assert parsed["kind"] == "incomplete_with_token"
    assert parsed["token"].startswith("1-12160b1454-118-789c") and parsed["token"].endswith("0d212c45")


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("cannot receive new filesystem stream: inherited key must be loaded\n", "key"),
        ("cannot restore to tank/a@s2: destination already exists\n", "exists"),
        ("cannot receive: failed to read from stream\n", "incomplete"),
        ("cannot receive: something new\n", "unknown"),
    ],
)
def test_recv_error_other_kinds(stderr, kind):
    assert repl.parse_recv_error(stderr)["kind"] == kind


# ---------------------------------------------------------------- argv builders


def test_send_argv_incremental_sends_intermediates():
    assert repl.build_send_argv("tank/a@s3", from_snapshot="tank/a@s1", raw=True, properties=True) == [
        "send",
        "-w",
        "-p",
        "-I",
        "tank/a@s1",
        "tank/a@s3",
    ]
    assert repl.build_send_argv("x", dry_run=True, resume_token="1-ab") == ["send", "-n", "-v", "-P", "-t", "1-ab"]


def test_recv_argv_and_remote_quoting():
    assert repl.build_recv_argv("tank/a", unmount=True, force=True, resumable=True) == [
        "recv",
        "-u",
        "-F",
        "-s",
        "tank/a",
    ]
    assert repl.build_remote_argv(["-o", "BatchMode=yes"], "f1", ["recv", "pool/ds with space"]) == [
        "-o",
        "BatchMode=yes",
        "f1",
        "zfs",
        "recv",
        "'pool/ds with space'",
    ]


def test_rescue_procedure_proof_shows_data_readable_and_receive_succeeding():
    proof = read_fixture("zfs/zfs-recv-rescue-procedure.zfs-fuse.txt")
    assert "diverged-snap\ndiverged-head\n[rc=0]" in proof
    assert "zfs recv -u -F backup/nfs\n[rc=0 0]" in proof
    assert "backup/nfs_rescue_20261121T134000Z@local-edit" in proof


# ---------------------------------------------------------------- planner


def plan(source_snapshots, target_fixture=None, **kwargs):
    target_snapshots = snaps(target_fixture, kwargs.pop("target", TARGET)) if target_fixture else []
    return repl.plan_replication(
        SOURCE, source_snapshots, TARGET, target_snapshots, target_fixture is not None, **kwargs
    )


def test_refuses_source_without_snapshot():
    with pytest.raises(StateError, match="has no snapshot"):
        plan([])


def test_full_send_of_newest_when_target_is_missing(source_three):
    result = plan(source_three)
    assert (result["mode"], result["from"], result["to"]) == ("full", None, "tank/nfs@daily-2026-11-22")
    assert result["snapshots_sent"] == ["daily-2026-11-22"]


def test_full_send_of_requested_snapshot(source_three):
    assert plan(source_three, snapshot="daily-2026-11-21")["to"] == "tank/nfs@daily-2026-11-21"
    with pytest.raises(StateError, match="does not exist on the source"):
        plan(source_three, snapshot="weekly")


def test_incremental_from_last_common_snapshot_by_guid(source_three):
    result = plan(source_three, "zfs-recv-target-guids-one.zfs-fuse.txt", target_written=0)
    assert (result["mode"], result["from"], result["common"]) == (
        "incremental",
        "tank/nfs@daily-2026-11-20",
        "daily-2026-11-20",
    )
    assert result["snapshots_sent"] == ["daily-2026-11-21", "daily-2026-11-22"]
    assert result["force"] is False and result["would_destroy"]["snapshots"] == []


def test_nothing_to_do_when_target_has_newest_by_guid(source_three):
    result = plan(source_three, "zfs-recv-target-guids-two.zfs-fuse.txt", snapshot="daily-2026-11-21")
    assert result["mode"] == "none" and result["snapshots_sent"] == []


def test_same_name_with_other_guid_is_not_common(source_three):
    with pytest.raises(StateError, match="shares no snapshot") as refused:
        plan(source_three, "zfs-recv-target-guids-samename.zfs-fuse.txt", target="backup/other")
    assert "@daily-2026-11-20 (source guid 6068009619935481215, target guid 9195500878632708371)" in str(refused.value)
    assert "Destroy or rename the target" in str(refused.value)


def test_refuses_diverged_target_naming_common_snapshot_and_losses(source_three):
    with pytest.raises(StateError) as refused:
        plan(source_three, "zfs-recv-target-guids-diverged.zfs-fuse.txt")
    message = str(refused.value)
    assert "last common snapshot @daily-2026-11-21 (guid 11520593831160793863)" in message
    assert "@local-edit" in message and "written on the target since its latest snapshot: unknown" in message
    assert "discard_target_changes: true" in message


def test_refuses_target_written_since_common_snapshot(source_three):
    with pytest.raises(StateError, match="written on the target since its latest snapshot: 8192 bytes"):
        plan(source_three, "zfs-recv-target-guids-two.zfs-fuse.txt", target_written=8192)


def test_discard_reports_what_forced_receive_would_destroy(source_three):
    result = plan(source_three, "zfs-recv-target-guids-diverged.zfs-fuse.txt", target_written=4096, allow_rollback=True)
    assert result["would_destroy"] == {"snapshots": ["local-edit"], "written": 4096, "written_known": True}
    assert result["rescue_needed"] and result["force"]
    assert result["snapshots_sent"] == ["daily-2026-11-22"]


def test_unknown_writes_receive_without_force_unless_discarding(source_three):
    result = plan(source_three, "zfs-recv-target-guids-two.zfs-fuse.txt")
    assert result["force"] is False and result["would_destroy"]["written_known"] is False
    assert "unknown" in result["notes"][0]
    discarding = plan(source_three, "zfs-recv-target-guids-two.zfs-fuse.txt", allow_rollback=True)
    assert discarding["rescue_needed"] and "assumed modified" in discarding["notes"][0]


def test_refuses_rescue_when_target_has_children(source_three):
    target_snapshots = snaps("zfs-recv-target-guids-diverged.zfs-fuse.txt", TARGET)
    with pytest.raises(StateError, match="child datasets"):
        repl.plan_replication(
            SOURCE,
            source_three,
            TARGET,
            target_snapshots,
            True,
            allow_rollback=True,
            target_children=["backup/nfs/home"],
        )


def test_refuses_requested_snapshot_older_than_target(source_three):
    target = [dict(s, createtxg=s["createtxg"] + 100) for s in source_three]
    with pytest.raises(StateError, match="newer than the requested"):
        repl.plan_replication(
            SOURCE, source_three[:1] + source_three[1:], TARGET, target[2:], True, snapshot="daily-2026-11-21"
        )


def test_partial_receive_needs_resume(source_three):
    with pytest.raises(StateError, match="zfs receive -A backup/nfs"):
        plan(source_three, "zfs-recv-target-guids-two.zfs-fuse.txt", resume_token="1-abc")
    assert (
        plan(source_three, "zfs-recv-target-guids-two.zfs-fuse.txt", resume_token="1-abc", resume=True)["mode"]
        == "resume"
    )
