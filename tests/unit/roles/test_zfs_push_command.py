# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""freebsd-ha-zfs-push (roles/zfs_push/files/zfs_push.py): judgement against zfs-fuse output captured in the lab,
and whole rounds against scripted commands (which commands run, in what order, and which never do)."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex

import pytest

from ansible_collections.freebsd_ha.storage.tests.unit.conftest import read_fixture
from ansible_collections.freebsd_ha.storage.tests.unit.roles.role_helpers import ROLES

_SPEC = importlib.util.spec_from_file_location("zfs_push", ROLES / "zfs_push" / "files" / "zfs_push.py")
zp = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(zp)

DATASETS = ["zdata/svc/a", "zdata/svc/b"]
SAME = {name: name for name in DATASETS}
# 2026-11-21 16:00:00 UTC, the time of the snapshot the leader-ahead fixture holds.
NOW = 1795276800


def fixture(name):
    return read_fixture(f"zfs_push/{name}.zfs-fuse.txt")


def rows(name):
    return zp.parse_get(fixture(name))


def config(**changes):
    base = {
        "comment": "Ansible managed: freebsd_ha.storage:zfs_push",
        "resource": "svc",
        "node": "f0",
        "datasets": dict(SAME),
        "followers": {
            "f1": {"address": "127.0.23.2", "datasets": dict(SAME)},
            "f2": {"address": "127.0.23.3", "datasets": dict(SAME)},
        },
        "prefix": "zfs_push_",
        "keep": 2,
        "keep_followers": 3,
        "zfs": "zfs",
        "ssh_command": "ssh",
        "ssh_options": ["-o", "BatchMode=yes"],
        "state_dir": "/var/db/freebsd_ha/zfs_push",
    }
    return {**base, **changes}


def leader_snaps(name="zfs-get-snapshots-leader"):
    found = rows(name)
    return {dataset: zp.snapshots_of(found, dataset) for dataset in DATASETS}


# ---------------------------------------------------------------- configuration


def test_a_complete_configuration_is_accepted():
    assert zp.validate_config(config()) == config()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"keep": 0}, "at least 1"),
        ({"keep_followers": True}, "keep_followers must be a int"),
        ({"prefix": "zfs push"}, "prefix must be"),
        ({"datasets": {}}, "datasets must map"),
        ({"datasets": {"zdata/svc/a": "zdata/svc/a@snap"}}, "datasets must map"),
        ({"followers": {"f0": {"address": "x", "datasets": SAME}}}, "listed among its own followers"),
        ({"followers": {"f1": {"address": "", "datasets": SAME}}}, "follower f1 needs an address"),
        ({"followers": {"f1": {"address": "f1", "datasets": {"zdata/svc/a": "zdata/svc/a"}}}}, "name every dataset"),
        ({"ssh_options": ["-o", 5]}, "list of strings"),
        ({"surprise": 1}, "unknown keys ['surprise']"),
    ],
    ids=[
        "keeping no snapshot would lose the base",
        "a boolean is no count",
        "a prefix with a space",
        "no datasets",
        "a snapshot named as a dataset",
        "the node follows itself",
        "a follower without an address",
        "a follower missing a dataset",
        "an ssh option that is not a string",
        "an unknown key",
    ],
)
def test_a_broken_configuration_is_refused_naming_the_key(changes, message):
    with pytest.raises(zp.PushError, match=re.escape(message)):
        zp.validate_config(config(**changes))


def test_a_missing_key_is_named():
    broken = config()
    del broken["keep"]
    with pytest.raises(zp.PushError, match=r"missing keys \['keep'\]"):
        zp.validate_config(broken)


# ---------------------------------------------------------------- parsing and judgement


def test_an_unknown_line_is_refused():
    with pytest.raises(zp.PushError, match=r"unexpected zfs get line"):
        zp.parse_get("zdata/svc/a\treadonly\n")


def test_snapshots_come_oldest_first_with_exact_guids():
    snaps = leader_snaps()["zdata/svc/a"]
    assert [snap["name"] for snap in snaps] == ["seed", "zfs_push_20261121_152352", "zfs_push_20261121_152355"]
    assert all(snap["guid"] > 2**32 for snap in snaps)
    assert snaps == sorted(snaps, key=lambda snap: snap["createtxg"])


def test_a_humanised_guid_is_refused():
    with pytest.raises(zp.PushError, match=r"not exact numbers"):
        zp.snapshots_of(zp.parse_get("zdata/svc/a@s\tguid\t6.48E\nzdata/svc/a@s\tcreatetxg\t8\n"), "zdata/svc/a")


def test_the_recorded_writer_is_the_writer_of_its_epoch():
    assert zp.writer_state(rows("zfs-get-writer-leader"), "f0", DATASETS) == ("writer", 1)


def test_a_follower_is_not_the_writer():
    assert zp.writer_state(rows("zfs-get-writer-follower"), "f1", DATASETS) == ("follower", ["f0/readonly=on"])


def test_the_recorded_writer_fenced_read_only_does_not_push():
    found = rows("zfs-get-writer-follower")
    assert zp.writer_state(found, "f0", DATASETS)[0] == "follower"


def test_a_half_done_switch_is_refused():
    found = rows("zfs-get-writer-leader")
    found["zdata/svc/b"]["readonly"] = "on"
    with pytest.raises(zp.PushError, match=r"switch is half done"):
        zp.writer_state(found, "f0", DATASETS)


def test_a_missing_local_dataset_is_refused():
    with pytest.raises(zp.PushError, match=r"zdata/svc/c is missing on f0"):
        zp.writer_state(rows("zfs-get-writer-leader"), "f0", [*DATASETS, "zdata/svc/c"])


def test_an_up_to_date_follower_needs_nothing():
    plan = zp.plan_follower("f1", leader_snaps(), rows("zfs-get-follower-in-sync"), SAME, 1)
    assert [(step["base"], step["to"]) for step in plan] == [(None, "zfs_push_20261121_152355")] * 2


def test_a_lagging_follower_gets_the_increment_from_its_newest_snapshot():
    plan = zp.plan_follower(
        "f1", leader_snaps("zfs-get-snapshots-leader-ahead"), rows("zfs-get-follower-in-sync"), SAME, 1
    )
    assert [(step["base"], step["to"]) for step in plan] == [
        ("zfs_push_20261121_152355", "zfs_push_20261121_160000")
    ] * 2


@pytest.mark.parametrize(
    ("fixture_name", "names", "message"),
    [
        ("zfs-get-follower-diverged", SAME, r"holds snapshots this writer lacks \(local1\).*rejoin"),
        ("zfs-get-follower-writable", {"zdata/svc/b": "zdata/svc/b"}, r"is writable.*fence or rejoin"),
        ("zfs-get-follower-newer-epoch", {"zdata/svc/b": "zdata/svc/b"}, r"epoch 5, newer than.*stale writer"),
        ("zfs-get-follower-in-sync", {"zdata/svc/a": "zdata/svc/c"}, "f2 lacks zdata/svc/c: provision"),
    ],
    ids=["diverged follower", "writable follower", "follower of a newer epoch", "follower lacking a dataset"],
)
def test_a_follower_that_must_not_receive_is_refused(fixture_name, names, message):
    local = {dataset: leader_snaps("zfs-get-snapshots-leader-ahead")[dataset] for dataset in names}
    with pytest.raises(zp.PushError, match=message):
        zp.plan_follower("f2", local, rows(fixture_name), names, 1)


def test_a_follower_sharing_no_snapshot_is_refused():
    local = {"zdata/svc/a": [{"name": "other", "guid": 1, "createtxg": 5}]}
    with pytest.raises(zp.PushError, match=r"shares no snapshot.*resync"):
        zp.plan_follower("f1", local, rows("zfs-get-follower-in-sync"), {"zdata/svc/a": "zdata/svc/a"}, 1)


def test_pruning_keeps_the_newest_and_other_snapshots():
    snaps = leader_snaps("zfs-get-snapshots-leader-ahead")["zdata/svc/a"]
    assert zp.plan_prune(snaps, "zfs_push_", 2) == ["zfs_push_20261121_152352"]
    assert zp.plan_prune(snaps, "zfs_push_", 3) == []
    assert "seed" not in zp.plan_prune(snaps, "zfs_push_", 1)


def test_pruning_spares_the_base_a_lagging_follower_needs():
    snaps = leader_snaps("zfs-get-snapshots-leader-ahead")["zdata/svc/a"]
    base = next(snap for snap in snaps if snap["name"] == "zfs_push_20261121_152352")
    assert zp.plan_prune(snaps, "zfs_push_", 1, base["createtxg"]) == []


def test_snapshot_names_carry_the_utc_time():
    assert zp.snapshot_name("zfs_push_", NOW) == "zfs_push_20261121_160000"


# ---------------------------------------------------------------- whole rounds against scripted commands


class Script:
    """Answers commands from a table {shell line: (rc, stdout, stderr)}; records every command and stream."""

    def __init__(self, answers, stream_bytes=1000, failing_streams=()):
        self.answers, self.ran, self.streams = answers, [], []
        self.stream_bytes, self.failing_streams = stream_bytes, failing_streams

    def run(self, argv):
        line = shlex.join(argv)
        self.ran.append(line)
        assert line in self.answers, f"unexpected command: {line}"
        return self.answers[line]

    def pipe(self, send, recv):
        line = f"{shlex.join(send)} | {shlex.join(recv)}"
        self.streams.append(line)
        if any(target in line for target in self.failing_streams):
            return False, 10, "cannot receive incremental stream: destination zdata/svc/a has been modified"
        return True, self.stream_bytes, ""


W = "readonly,freebsd-ha:writer,freebsd-ha:epoch"
LOCAL_READ = f"zfs get -H -p -d 0 -o name,property,value {W} zdata/svc/a zdata/svc/b"
LOCAL_SNAPS = "zfs get -H -p -d 1 -o name,property,value guid,createtxg zdata/svc/a zdata/svc/b"
SNAPSHOT = "zfs snapshot zdata/svc/a@zfs_push_20261121_160000 zdata/svc/b@zfs_push_20261121_160000"


def remote_read(address):
    return f"ssh -o BatchMode=yes {address} 'zfs get -H -p -d 1 -o name,property,value {W},guid,createtxg zdata/svc/a zdata/svc/b'"


def writer_answers(f1="zfs-get-follower-in-sync", f2="zfs-get-follower-in-sync"):
    return {
        LOCAL_READ: (0, fixture("zfs-get-writer-leader"), ""),
        SNAPSHOT: (0, "", ""),
        LOCAL_SNAPS: (0, fixture("zfs-get-snapshots-leader-ahead"), ""),
        remote_read("127.0.23.2"): (0, fixture(f1), ""),
        remote_read("127.0.23.3"): (0, fixture(f2), ""),
        "zfs destroy zdata/svc/a@zfs_push_20261121_152352": (0, "", ""),
        "zfs destroy zdata/svc/b@zfs_push_20261121_152352": (0, "", ""),
    }


def prune_line(address):
    doomed = " && ".join(f"zfs destroy zdata/svc/{ds}@zfs_push_20261121_152349" for ds in "ab")
    return f"ssh -o BatchMode=yes {address} {shlex.quote(doomed)}"


def test_a_follower_node_reads_once_and_changes_nothing():
    script = Script({LOCAL_READ: (0, fixture("zfs-get-writer-follower"), "")})
    summary = zp.push_round(config(node="f1", followers={}), now=NOW, runner=script.run, piper=script.pipe)
    assert summary["role"] == "follower" and summary["errors"] == []
    assert script.ran == [LOCAL_READ] and script.streams == []


def test_the_writer_snapshots_sends_to_every_follower_and_prunes_both_sides():
    answers = writer_answers()
    answers.update({prune_line("127.0.23.2"): (0, "", ""), prune_line("127.0.23.3"): (0, "", "")})
    script = Script(answers)
    summary = zp.push_round(config(), now=NOW, runner=script.run, piper=script.pipe)
    assert summary["errors"] == []
    assert script.ran[:3] == [LOCAL_READ, SNAPSHOT, LOCAL_SNAPS]
    expected = {
        f"zfs send -I @zfs_push_20261121_152355 zdata/svc/{ds}@zfs_push_20261121_160000 | "
        f"ssh -o BatchMode=yes {address} 'zfs recv -u zdata/svc/{ds}'"
        for ds in "ab"
        for address in ("127.0.23.2", "127.0.23.3")
    }
    assert set(script.streams) == expected
    assert summary["bytes_sent"] == 4000
    assert summary["pruned"] == [f"zdata/svc/{ds}@zfs_push_20261121_152352" for ds in "ab"]
    assert summary["followers"]["f1"]["pruned"] == [f"zdata/svc/{ds}@zfs_push_20261121_152349" for ds in "ab"]
    assert not any("recv -F" in line or "destroy -r" in line for line in script.ran + script.streams)


def test_zfs_fuse_takes_the_snapshots_one_by_one():
    answers = writer_answers()
    answers[SNAPSHOT] = (2, "", fixture("zfs-snapshot-two-arguments").strip())
    for ds in "ab":
        answers[f"zfs snapshot zdata/svc/{ds}@zfs_push_20261121_160000"] = (0, "", "")
    answers.update({prune_line("127.0.23.2"): (0, "", ""), prune_line("127.0.23.3"): (0, "", "")})
    script = Script(answers)
    summary = zp.push_round(config(), now=NOW, runner=script.run, piper=script.pipe)
    assert summary["errors"] == []
    assert script.ran[1:4] == [SNAPSHOT, *(f"zfs snapshot zdata/svc/{ds}@zfs_push_20261121_160000" for ds in "ab")]


def test_a_diverged_follower_is_skipped_the_others_served_and_the_writer_keeps_its_snapshots():
    answers = writer_answers(f2="zfs-get-follower-diverged")
    answers[prune_line("127.0.23.2")] = (0, "", "")
    script = Script(answers)
    summary = zp.push_round(config(), now=NOW, runner=script.run, piper=script.pipe)
    assert summary["followers"]["f2"]["error"].startswith("f2:zdata/svc/a holds snapshots this writer lacks")
    assert summary["followers"]["f1"]["ok"]
    assert not any("127.0.23.3" in line for line in script.streams)
    assert summary["pruned"] == []
    assert not any(line.startswith("zfs destroy") for line in script.ran)
    assert len(summary["errors"]) == 3


def test_a_failed_receive_keeps_the_follower_and_its_base():
    answers = writer_answers()
    answers[prune_line("127.0.23.3")] = (0, "", "")
    script = Script(answers, failing_streams=("127.0.23.2 'zfs recv -u zdata/svc/a'",))
    summary = zp.push_round(config(), now=NOW, runner=script.run, piper=script.pipe)
    assert "has been modified" in summary["followers"]["f1"]["error"]
    assert summary["followers"]["f1"]["pruned"] == []
    # f1 still holds only 152355 (its base for the next round), so only the older 152352 goes on the writer.
    assert summary["pruned"] == ["zdata/svc/a@zfs_push_20261121_152352", "zdata/svc/b@zfs_push_20261121_152352"]
    assert not any(prune_line("127.0.23.2") == line for line in script.ran)


def test_an_unreadable_follower_is_reported_and_nothing_is_pruned_on_the_writer():
    answers = writer_answers()
    answers[remote_read("127.0.23.3")] = (255, "", "ssh: connect to host 127.0.23.3 port 22: Connection refused")
    answers[prune_line("127.0.23.2")] = (0, "", "")
    script = Script(answers)
    summary = zp.push_round(config(), now=NOW, runner=script.run, piper=script.pipe)
    assert "Connection refused" in summary["followers"]["f2"]["error"]
    assert summary["pruned"] == []


def test_a_dry_run_reads_and_plans_but_snapshots_sends_and_destroys_nothing():
    answers = writer_answers()
    del answers[SNAPSHOT]
    answers[LOCAL_SNAPS] = (0, fixture("zfs-get-snapshots-leader"), "")
    script = Script(answers)
    summary = zp.push_round(config(), dry_run=True, now=NOW, runner=script.run, piper=script.pipe)
    assert summary["errors"] == []
    assert script.streams == []
    assert not any("snapshot" in line.split()[1] or "destroy" in line for line in script.ran)
    assert summary["followers"]["f1"]["plan"][0]["base"] == "zfs_push_20261121_152355"
    assert summary["pruned"] == ["zdata/svc/a@zfs_push_20261121_152352", "zdata/svc/b@zfs_push_20261121_152352"]


def test_a_failing_local_read_stops_the_round():
    script = Script({LOCAL_READ: (1, "", "cannot open 'zdata/svc/c': dataset does not exist")})
    with pytest.raises(zp.PushError, match=r"zfs get failed on this node \(exit 1\): cannot open"):
        zp.push_round(config(), now=NOW, runner=script.run, piper=script.pipe)


# ---------------------------------------------------------------- command line


def test_validate_checks_the_file_only(tmp_path):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(config()))
    bad.write_text(json.dumps(config(keep=0)))
    assert zp.main(["--config", str(good), "--validate"]) == 0
    assert zp.main(["--config", str(bad), "--validate"]) == 2
    assert zp.main(["--config", str(tmp_path / "absent.json"), "--validate"]) == 2


def test_a_round_records_its_summary_and_exits_1_on_a_follower_error(tmp_path, monkeypatch, capsys):
    path = tmp_path / "svc.json"
    path.write_text(json.dumps(config(state_dir=str(tmp_path / "state"))))
    answers = writer_answers(f2="zfs-get-follower-diverged")
    answers[prune_line("127.0.23.2")] = (0, "", "")
    script = Script(answers)
    monkeypatch.setattr(zp, "run", script.run)
    monkeypatch.setattr(zp, "pipe", script.pipe)
    monkeypatch.setattr(zp.time, "time", lambda: NOW)
    assert zp.main(["--config", str(path)]) == 1
    recorded = json.loads((tmp_path / "state" / "svc.json").read_text())
    assert recorded["role"] == "writer" and recorded["followers"]["f1"]["ok"]
    out, err = capsys.readouterr()
    assert out == "" and "freebsd-ha-zfs-push svc: f2:" in err


def test_a_quiet_follower_round_prints_nothing(tmp_path, monkeypatch, capsys):
    path = tmp_path / "svc.json"
    path.write_text(json.dumps(config(node="f1", followers={}, state_dir=str(tmp_path / "state"))))
    script = Script({LOCAL_READ: (0, fixture("zfs-get-writer-follower"), "")})
    monkeypatch.setattr(zp, "run", script.run)
    assert zp.main(["--config", str(path)]) == 0
    assert capsys.readouterr() == ("", "")
    assert json.loads((tmp_path / "state" / "svc.json").read_text())["role"] == "follower"
