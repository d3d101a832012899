# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_geom parsers, builders and planners against the recorded samples and constructed gmirror/ggatec output."""

from __future__ import annotations

import pytest

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _geom
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import read_fixture
from ansible_collections.freebsd_ha.storage.tests.unit.plugins.modules.test_gmirror_render import (
    render_dump,
    render_ggatec_list,
    render_list,
)


def status(name):
    return _geom.parse_status(read_fixture(f"geom/{name}.txt"))


def metadata(**spec):
    """Return the parsed `gmirror dump` of one provider described by spec."""
    return _geom.parse_dump(render_dump([spec]))[0]


def mirror(**spec):
    spec.setdefault("name", "gm0")
    return _geom.parse_mirrors(render_list([spec]))[spec["name"]]


def states(geom):
    return [(c["name"], c["state"], c["synchronized"]) for c in geom["components"]]


# ---------------------------------------------------------------- gmirror status


def test_parse_status_reads_complete_mirror_with_continuation_lines():
    (geom,) = status("gmirror-status-complete-handbook")
    assert (geom["name"], geom["status"]) == ("mirror/gm0", "COMPLETE")
    assert states(geom) == [("ada1", "ACTIVE", None), ("ada0", "ACTIVE", None)]


def test_parse_status_reads_synchronizing_percentage():
    (geom,) = status("gmirror-status-degraded-synchronizing-handbook")
    # The Handbook's own typo (girror/gm0) is kept: the parser reports what was printed.
    assert (geom["name"], geom["status"]) == ("girror/gm0", "DEGRADED")
    assert states(geom) == [("ada1", "ACTIVE", None), ("ada0", "SYNCHRONIZING", 64)]


def test_parse_status_reads_nested_graid_states_from_the_same_printer():
    (geom,) = status("graid-status-degraded-rebuild-handbook")
    assert states(geom) == [("ada0", "ACTIVE (ACTIVE)", None), ("ada1", "ACTIVE (REBUILD 28%)", None)]


def test_parse_status_refuses_prose_around_a_collapsed_capture():
    with pytest.raises(_geom.ParseError, match="line 1: not a `gmirror status` line"):
        status("gmirror-status-degraded-fbsd63-freebsddiary")


def test_parse_status_reads_old_releases_without_component_state():
    # The tokens of the FreeBSD 6.3 capture above (`Name Status Components mirror/gm0 DEGRADED ad3`), laid out
    # with geom(8)'s "%*s  %*s  %s" as that release printed them: no (STATE) after the component.
    text = "      Name    Status  Components\nmirror/gm0  DEGRADED  ad3\n"
    assert "mirror/gm0 DEGRADED ad3" in " ".join(
        read_fixture("geom/gmirror-status-degraded-fbsd63-freebsddiary.txt").split()
    )
    (geom,) = _geom.parse_status(text)
    assert (geom["status"], states(geom)) == ("DEGRADED", [("ad3", None, None)])


def test_parse_status_script_mode_groups_repeated_names():
    # `gmirror status -s` for the Handbook's degraded mirror (constructed in the reference from the printf format).
    text = "mirror/gm0  DEGRADED  ada1 (ACTIVE)\nmirror/gm0  DEGRADED  ada0 (SYNCHRONIZING, 64%)\n"
    (geom,) = _geom.parse_status(text)
    assert states(geom) == [("ada1", "ACTIVE", None), ("ada0", "SYNCHRONIZING", 64)]


def test_parse_status_reads_several_mirrors_and_a_mirror_without_components():
    text = (
        "         Name    Status  Components\n"
        "   mirror/gm0  COMPLETE  ada1 (ACTIVE)\n"
        "                         ggate0 (ACTIVE)\n"
        "mirror/backup  DEGRADED  N/A\n"
    )
    first, second = _geom.parse_status(text)
    assert (first["name"], len(first["components"])) == ("mirror/gm0", 2)
    assert (second["name"], second["status"], second["components"]) == ("mirror/backup", "DEGRADED", [])


def test_parse_status_skips_a_shell_prompt_and_reads_nothing_from_empty_output():
    assert _geom.parse_status("") == []
    text = "# gmirror status\n" + read_fixture("geom/gmirror-status-complete-handbook.txt")
    assert len(_geom.parse_status(text)) == 1


def test_parse_status_reads_captures_whose_spacing_was_collapsed():
    # Web pages often drop leading blanks: the words still say which lines start a geom.
    text = "Name Status Components\nmirror/gm0 DEGRADED ada1 (ACTIVE)\nada0 (SYNCHRONIZING, 7%)\nmirror/gm1 COMPLETE ad3\nad4\n"
    first, second = _geom.parse_status(text)
    assert states(first) == [("ada1", "ACTIVE", None), ("ada0", "SYNCHRONIZING", 7)]
    assert (second["status"], states(second)) == ("COMPLETE", [("ad3", None, None), ("ad4", None, None)])


def test_parse_status_skips_prompts_with_user_and_host():
    text = (
        "root@f0:~ # gmirror status\n" + read_fixture("geom/gmirror-status-complete-handbook.txt") + "root@f0:~ #\n#\n"
    )
    (geom,) = _geom.parse_status(text)
    assert len(geom["components"]) == 2


@pytest.mark.parametrize(
    "text",
    [
        "      Name    Status  Components\n                      ada0 (ACTIVE)\n",
        "mirror/gm0  COMPLETE\n",
        "      Name    Status  Components\nmirror/gm0  COMPLETE  ada1 (ACTIVE\n",
        "mirror/gm0  COMPLETE  ada1 (ACTIVE)\nmirror/gm0  DEGRADED  ada0 (ACTIVE)\n",
        "mirror/gm0  COMPLETE  ada1 (ACTIVE)\nthe mirror is fine\n",
    ],
    ids=["continuation first", "status line without component", "unclosed state", "status changes", "prose"],
)
def test_parse_status_raises_on_lines_outside_the_layout(text):
    with pytest.raises(_geom.ParseError):
        _geom.parse_status(text)


# ---------------------------------------------------------------- gmirror list / dump


def test_parse_mirrors_reads_config_components_and_progress():
    gm0 = mirror(
        syncid=4,
        mode="r1w1e1",
        components=[
            {"name": "ada1", "priority": 1},
            {"name": "ggate0", "state": "SYNCHRONIZING", "priority": 0, "synchronized": 12, "bytes_synced": 512},
        ],
    )
    assert (gm0["state"], gm0["geom_state"], gm0["balance"], gm0["flags"]) == (
        "SYNCHRONIZING",
        "DEGRADED",
        "prefer",
        ["NOAUTOSYNC"],
    )
    assert (gm0["syncid"], gm0["genid"], gm0["components_configured"], gm0["provider"], gm0["mode"]) == (
        4,
        0,
        2,
        "mirror/gm0",
        "r1w1e1",
    )
    ggate0 = gm0["components"][1]
    assert (ggate0["flags"], ggate0["synchronized"], ggate0["bytes_synced"], ggate0["syncid"]) == (
        ["DIRTY", "SYNCHRONIZING"],
        12,
        512,
        4,
    )
    assert gm0["sync_progress"] == 12


def test_parse_list_accepts_old_layouts_without_type_genid_or_provider():
    # FreeBSD 5.x/6.x printed no Type, GenID or BytesSynced; a consumer whose provider went away prints
    # `[no provider]` (geom.c list_one_consumer).
    text = (
        "Geom name: gm0\nState: DEGRADED\nComponents: 2\nBalance: round-robin\nSlice: 4096\nFlags: NONE\n"
        "SyncID: 3\nID: 99\nConsumers:\n1. Name: ad0\n   Mediasize: 40020664320 (37G)\n   Sectorsize: 512\n"
        "   Mode: r1w1e1\n   State: ACTIVE\n   Priority: 0\n   Flags: DIRTY\n   SyncID: 3\n   ID: 7\n"
        "2. [no provider]\n   State: DISCONNECTED\n\n"
    )
    gm0 = _geom.parse_mirrors(text)["gm0"]
    assert (gm0["genid"], gm0["type"], gm0["provider"], gm0["balance"]) == (None, None, None, "round-robin")
    assert [(c["name"], c["state"], c["genid"]) for c in gm0["components"]] == [
        ("ad0", "ACTIVE", None),
        (None, "DISCONNECTED", None),
    ]


def test_parse_list_reads_empty_output_and_raises_on_stray_text():
    assert _geom.parse_mirrors("") == {}
    with pytest.raises(_geom.ParseError, match="outside a `Geom name:` block"):
        _geom.parse_list("gmirror: Class 'MIRROR' does not have an instance named 'gm9'.\n")
    with pytest.raises(_geom.ParseError, match="unexpected line in geom gm0"):
        _geom.parse_list("Geom name: gm0\nConsumers:\n   State: ACTIVE\n")
    with pytest.raises(_geom.ParseError, match="SyncID is not a number"):
        _geom.parse_mirrors("Geom name: gm0\nSyncID: many\n")


def test_not_loaded_and_missing_mirror_errors_are_recognised():
    assert _geom.is_not_loaded_error("gmirror: Command 'list' not available; try 'load' first.\n")
    assert _geom.is_not_loaded_error("gmirror: Class 'MIRROR' not found.\n")
    assert not _geom.is_not_loaded_error("gmirror: No such device: gm0.\n")
    assert _geom.is_no_such_mirror_error("gmirror: Class 'MIRROR' does not have an instance named 'gm9'.")
    assert _geom.is_no_such_mirror_error("gmirror: No such geom: gm9.")


def test_parse_dump_reads_metadata_and_separates_disks_without_it():
    stdout = render_dump([{"provider": "ggate0", "name": "gm0", "genid": 1, "syncid": 9, "dflags": "DIRTY"}])
    stderr = "Can't read metadata from ada2: Invalid argument.\nMD5 hash mismatch for ada3, skipping.\n"
    found, errors = _geom.parse_dump(stdout, stderr)
    assert (found["ggate0"]["genid"], found["ggate0"]["syncid"], found["ggate0"]["dflags"]) == (1, 9, ["DIRTY"])
    assert errors == {"ada2": "Invalid argument", "ada3": "MD5 hash mismatch"}
    assert _geom.is_no_metadata_error(errors["ada2"]) and not _geom.is_no_metadata_error(errors["ada3"])


# ---------------------------------------------------------------- gmirror argv builders


def test_build_label_argv_defaults_to_prefer_without_autosync():
    assert _geom.build_label_argv("gm0", ["/dev/ada1", "ggate0"]) == [
        "label",
        "-v",
        "-n",
        "-b",
        "prefer",
        "gm0",
        "ada1",
        "ggate0",
    ]
    assert _geom.build_label_argv("gm0", "ada1", balance="split", autosync=True, failsync=False, slice_size=2048) == [
        "label",
        "-v",
        "-F",
        "-b",
        "split",
        "-s",
        "2048",
        "gm0",
        "ada1",
    ]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (_geom.build_insert_argv("gm0", ["ggate0"], 0), ["insert", "-v", "-p", "0", "gm0", "ggate0"]),
        (_geom.build_insert_argv("gm0", "ggate0", inactive=True), ["insert", "-v", "-i", "gm0", "ggate0"]),
        (_geom.build_remove_argv("gm0", ["ggate0"]), ["remove", "-v", "gm0", "ggate0"]),
        (_geom.build_rebuild_argv("gm0", ["ggate0"]), ["rebuild", "-v", "gm0", "ggate0"]),
        (_geom.build_activate_argv("gm0", ["ada1"]), ["activate", "-v", "gm0", "ada1"]),
        (_geom.build_configure_argv("gm0", autosync=True), ["configure", "-v", "-a", "gm0"]),
        (
            _geom.build_configure_argv("gm0", balance="load", failsync=False),
            ["configure", "-v", "-F", "-b", "load", "gm0"],
        ),
        (_geom.build_priority_argv("gm0", "/dev/ada1", 1), ["configure", "-v", "-p", "1", "gm0", "ada1"]),
        (_geom.build_stop_argv("gm0"), ["stop", "-v", "gm0"]),
        (_geom.build_stop_argv(["gm0", "gm1"], force=True), ["stop", "-v", "-f", "gm0", "gm1"]),
        (_geom.build_forget_argv("gm0"), ["forget", "-v", "gm0"]),
        (_geom.build_status_argv(["gm0"]), ["status", "-s", "gm0"]),
        (_geom.build_list_argv(), ["list"]),
        (_geom.build_dump_argv(["/dev/ada1"]), ["dump", "ada1"]),
    ],
)
def test_gmirror_argv_builders(argv, expected):
    assert argv == expected


def test_builders_refuse_bad_names_priorities_and_balances():
    assert _geom.build_configure_argv("gm0") is None
    with pytest.raises(StateError, match="invalid mirror name 'mirror/gm0'"):
        _geom.build_stop_argv("mirror/gm0")
    with pytest.raises(StateError, match="at most 15"):
        _geom.validate_mirror_name("a-very-long-mirror")
    with pytest.raises(StateError, match="priorities are 0 to 255"):
        _geom.build_insert_argv("gm0", ["ggate0"], 256)
    with pytest.raises(StateError, match="invalid balance"):
        _geom.build_label_argv("gm0", ["ada1"], balance="fastest")
    with pytest.raises(StateError, match="no components"):
        _geom.build_rebuild_argv("gm0", [])


# ---------------------------------------------------------------- plan_rebuild: direction from the metadata


def test_plan_rebuild_rebuilds_the_stale_component_from_the_active_one():
    gm0 = mirror(
        components=[{"name": "ada1", "priority": 1}, {"name": "ggate0", "state": "STALE", "flags": "SYNCHRONIZING"}]
    )
    assert _geom.plan_rebuild(gm0, "ggate0") == [["rebuild", "-v", "gm0", "ggate0"]]


def test_plan_rebuild_refuses_when_the_target_holds_the_newest_data():
    gm0 = mirror(
        syncid=6,
        components=[
            {"name": "ada1", "syncid": 6, "priority": 1},
            {"name": "ggate0", "state": "STALE", "flags": "SYNCHRONIZING"},
        ],
    )
    with pytest.raises(
        StateError,
        match=r"refusing to rebuild ada1 in mirror gm0: no other component is ACTIVE and in sync.*ggate0 \(genid 0, syncid 6, STALE\)",
    ):
        _geom.plan_rebuild(gm0, "ada1")


def test_plan_rebuild_refuses_a_target_with_a_bigger_syncid_than_the_others():
    gm0 = mirror(syncid=5, components=[{"name": "ada1", "syncid": 5}, {"name": "ggate0", "syncid": 7}])
    with pytest.raises(StateError, match=r"ggate0 \(genid 0, syncid 7, ACTIVE\) in mirror gm0: it holds newer data"):
        _geom.plan_rebuild(gm0, ["ggate0"])
    assert _geom.plan_rebuild(gm0, ["ggate0"], allow_overwrite_newer=True) == [["rebuild", "-v", "gm0", "ggate0"]]
    assert _geom.plan_rebuild(gm0, ["ada1"]) == [["rebuild", "-v", "gm0", "ada1"]]


def test_plan_rebuild_refuses_a_target_with_a_bigger_genid_than_the_mirror():
    gm0 = mirror(genid=1, syncid=3, components=[{"name": "ada1"}, {"name": "ggate0", "genid": 2}])
    with pytest.raises(StateError, match="allow_overwrite_newer: true"):
        _geom.plan_rebuild(gm0, "ggate0")


def test_plan_rebuild_is_idempotent_for_synchronizing_and_in_sync_components():
    gm0 = mirror(components=[{"name": "ada1"}, {"name": "ggate0", "state": "SYNCHRONIZING", "synchronized": 40}])
    assert _geom.plan_rebuild(gm0, "ggate0") == []
    complete = mirror(components=[{"name": "ada1"}, {"name": "ggate0"}])
    assert _geom.plan_rebuild(complete, "ggate0") == []
    assert _geom.plan_rebuild(complete, "ggate0", force=True) == [["rebuild", "-v", "gm0", "ggate0"]]


def test_plan_rebuild_refuses_unknown_mirror_or_component():
    with pytest.raises(StateError, match="no such mirror"):
        _geom.plan_rebuild(None, "ggate0")
    with pytest.raises(StateError, match=r"has no component ggate9 \(components: ada1\)"):
        _geom.plan_rebuild(mirror(components=[{"name": "ada1"}]), "ggate9")


# ---------------------------------------------------------------- other gmirror planners


LABEL = {"balance": None, "autosync": None, "failsync": None, "hardcode": False, "slice": None, "priority": 1}


def test_plan_label_labels_then_raises_the_local_priority():
    assert _geom.plan_label("gm0", ["/dev/ada1"], {}, {}, LABEL) == [
        ["label", "-v", "-n", "-b", "prefer", "gm0", "ada1"],
        ["configure", "-v", "-p", "1", "gm0", "ada1"],
    ]


def test_plan_label_is_idempotent_and_refuses_other_components_or_metadata():
    gm0 = mirror(components=[{"name": "ada1", "priority": 1}])
    assert _geom.plan_label("gm0", ["ada1"], {"gm0": gm0}, {}, LABEL) == []
    with pytest.raises(StateError, match="already exists with components ada1, without ada2: use action insert"):
        _geom.plan_label("gm0", ["ada2"], {"gm0": gm0}, {}, LABEL)
    grown = mirror(components=[{"name": "ada1", "priority": 1}, {"name": "ggate0", "priority": 0}])
    assert _geom.plan_label("gm0", ["ada1"], {"gm0": grown}, {}, LABEL) == []
    with pytest.raises(StateError, match="ada1 is a component of mirror gm0"):
        _geom.plan_label("gm1", ["ada1"], {"gm0": gm0}, {}, LABEL)
    found = metadata(provider="ada2", name="gm0", syncid=8)
    with pytest.raises(StateError, match=r"ada2 already carries gmirror metadata of mirror gm0.*syncid 8"):
        _geom.plan_label("gm0", ["ada2"], {}, found, LABEL)
    assert _geom.plan_label("gm0", ["ada2"], {}, found, dict(LABEL, priority=None), force=True) == [
        ["label", "-v", "-n", "-b", "prefer", "gm0", "ada2"]
    ]


INSERT = {"priority": 0, "inactive": False, "hardcode": False}


def test_plan_insert_adds_new_components_and_converges_priorities():
    gm0 = mirror(components=[{"name": "ada1", "priority": 1}])
    assert _geom.plan_insert(gm0, ["ggate0"], {"gm0": gm0}, {}, INSERT) == [
        ["insert", "-v", "-p", "0", "gm0", "ggate0"]
    ]
    both = mirror(components=[{"name": "ada1", "priority": 1}, {"name": "ggate0", "priority": 3}])
    assert _geom.plan_insert(both, ["ggate0"], {"gm0": both}, {}, INSERT) == [
        ["configure", "-v", "-p", "0", "gm0", "ggate0"]
    ]


def test_plan_insert_refuses_a_newer_copy_of_the_same_mirror():
    gm0 = mirror(syncid=3, components=[{"name": "ada1", "priority": 1}])
    newer = metadata(provider="ggate0", name="gm0", syncid=5)
    with pytest.raises(StateError, match=r"refusing to insert ggate0.*newer copy of this mirror \(genid 0, syncid 5\)"):
        _geom.plan_insert(gm0, ["ggate0"], {"gm0": gm0}, newer, INSERT)
    assert _geom.plan_insert(gm0, ["ggate0"], {"gm0": gm0}, newer, INSERT, allow_overwrite_newer=True)
    older = metadata(provider="ggate0", name="gm0", syncid=2)
    assert _geom.plan_insert(gm0, ["ggate0"], {"gm0": gm0}, older, INSERT) == [
        ["insert", "-v", "-p", "0", "gm0", "ggate0"]
    ]
    other = metadata(provider="ggate0", name="data", mid=5)
    with pytest.raises(StateError, match="carries metadata of mirror data"):
        _geom.plan_insert(gm0, ["ggate0"], {"gm0": gm0}, other, INSERT)
    with pytest.raises(StateError, match="label it first"):
        _geom.plan_insert(None, ["ggate0"], {}, {}, INSERT)


def test_plan_remove_configure_stop_forget_activate():
    gm0 = mirror(
        components_configured=3,
        mode="r1w1e1",
        components=[{"name": "ada1", "priority": 1}, {"name": "ggate0", "state": "SYNCHRONIZING"}],
    )
    assert _geom.plan_remove(gm0, ["ggate0", "ggate5"]) == [["remove", "-v", "gm0", "ggate0"]]
    assert _geom.plan_remove(gm0, ["ggate5"]) == []
    assert _geom.plan_remove(None, ["ggate0"]) == []
    with pytest.raises(StateError, match="no ACTIVE component would remain"):
        _geom.plan_remove(gm0, ["ada1"])
    with pytest.raises(StateError, match="2 of 3 components connected"):
        _geom.plan_configure(gm0, {"balance": "load"})
    assert _geom.plan_forget(gm0) == [["forget", "-v", "gm0"]]
    with pytest.raises(StateError, match=r"is open \(mirror/gm0 mode r1w1e1\)"):
        _geom.plan_stop(gm0)
    assert _geom.plan_stop(gm0, force=True) == [["stop", "-v", "-f", "gm0"]]
    assert _geom.plan_stop(None) == []
    assert _geom.plan_activate(gm0, "gm0", ["ada1", "ada3"]) == [["activate", "-v", "gm0", "ada3"]]


def test_plan_configure_changes_only_what_differs():
    gm0 = mirror(
        balance="load",
        flags="NOAUTOSYNC",
        components=[{"name": "ada1", "priority": 0}, {"name": "ggate0", "priority": 1}],
    )
    options = {"balance": "prefer", "slice": 4096, "autosync": False, "failsync": False, "priority": None}
    assert _geom.plan_configure(gm0, options) == [["configure", "-v", "-F", "-b", "prefer", "gm0"]]
    same = {"balance": "load", "slice": None, "autosync": False, "failsync": None, "priority": 1}
    assert _geom.plan_configure(gm0, same, ["ada1", "ggate0"]) == [["configure", "-v", "-p", "1", "gm0", "ada1"]]
    assert _geom.plan_forget(gm0) == []


def test_predict_view_follows_the_planned_steps():
    before = _geom.mirror_view(mirror(components=[{"name": "ada1", "priority": 1}], components_configured=1))
    after = _geom.predict_view(before, [["insert", "-v", "-p", "0", "gm0", "ggate0"]])
    assert after["components"] == {
        "ada1": {"state": "ACTIVE", "priority": 1},
        "ggate0": {"state": "SYNCHRONIZING", "priority": 0},
    }
    assert (after["state"], after["components_configured"]) == ("SYNCHRONIZING", 2)
    diff = _geom.view_diff(before, after, "gm0")
    assert set(diff["before"]) == {"state", "components", "components_configured"}
    assert _geom.predict_view(before, [["stop", "-v", "gm0"]]) == {"exists": False}
    labelled = _geom.predict_view({"exists": False}, [["label", "-v", "-n", "-b", "prefer", "gm0", "ada1"]])
    assert (labelled["state"], labelled["flags"], labelled["balance"]) == ("COMPLETE", ["NOAUTOSYNC"], "prefer")


# ---------------------------------------------------------------- ggatec


def test_parse_ggatec_create_reads_the_unit_from_the_handbook_session():
    assert _geom.parse_ggatec_create(read_fixture("geom/ggatec-create-handbook.txt")) == 0
    assert _geom.parse_ggatec_create("") is None


def test_parse_ggatec_list_reads_names_and_verbose_blocks():
    assert [u["device"] for u in _geom.parse_ggatec_list("ggate0\nggate12\n")] == ["/dev/ggate0", "/dev/ggate12"]
    text = render_ggatec_list(
        [
            {"unit": 0, "host": "192.168.1.1", "path": "/dev/da0s4d", "mode": "r1w1e1"},
            {"unit": 1, "host": "peer.example", "port": 3081, "path": "/tmp/test.img", "access": "read-only"},
        ]
    )
    first, second = _geom.parse_ggatec_list(text)
    assert (first["host"], first["port"], first["path"], first["mode"], first["queue_size"]) == (
        "192.168.1.1",
        3080,
        "/dev/da0s4d",
        "r1w1e1",
        1024,
    )
    assert (second["unit"], second["port"], second["access"]) == (1, 3081, "read-only")
    assert _geom.parse_ggatec_list("") == []
    with pytest.raises(_geom.ParseError, match="is not `host:port path`"):
        _geom.parse_ggatec_list("       NAME: ggate0\n       info: nowhere\n")
    with pytest.raises(_geom.ParseError, match="unexpected line"):
        _geom.parse_ggatec_list("ggatec: ioctl(/dev/ggctl): No such file or directory.\n")


def test_ggatec_argv_builders():
    assert _geom.build_ggatec_create_argv("10.0.0.2", "/dev/ada1", 3080, "rw") == [
        "create",
        "-o",
        "rw",
        "10.0.0.2",
        "/dev/ada1",
    ]
    assert _geom.build_ggatec_create_argv("10.0.0.2", "/dev/ada1", 3081, "ro", 2, 5, 256) == [
        "create",
        "-o",
        "ro",
        "-p",
        "3081",
        "-q",
        "256",
        "-t",
        "5",
        "-u",
        "2",
        "10.0.0.2",
        "/dev/ada1",
    ]
    assert _geom.build_ggatec_destroy_argv(0, force=True) == ["destroy", "-f", "-u", "0"]
    assert _geom.build_ggatec_list_argv() == ["list", "-v"]


def test_plan_ggate_create_reuses_the_unit_for_the_same_host_and_path():
    units = _geom.parse_ggatec_list(render_ggatec_list([{"unit": 0, "host": "10.0.0.2", "path": "/dev/ada1"}]))
    steps, existing = _geom.plan_ggate_create(units, "10.0.0.2", "/dev/ada1")
    assert (steps, existing["unit"]) == ([], 0)
    steps, existing = _geom.plan_ggate_create(units, "10.0.0.3", "/dev/ada1")
    assert (steps, existing) == ([["create", "-o", "rw", "10.0.0.3", "/dev/ada1"]], None)
    with pytest.raises(StateError, match=r"unit 0 .* is in use for 10\.0\.0\.2:3080 /dev/ada1"):
        _geom.plan_ggate_create(units, "10.0.0.3", "/dev/ada1", unit=0)
    with pytest.raises(StateError, match=r"already attaches 10\.0\.0\.2:3080 /dev/ada1 read-write, not read-only"):
        _geom.plan_ggate_create(units, "10.0.0.2", "/dev/ada1", access="ro")
    with pytest.raises(StateError, match="already attached as ggate0, not unit 4"):
        _geom.plan_ggate_create(units, "10.0.0.2", "/dev/ada1", unit=4)


def test_plan_ggate_destroy_refuses_an_open_unit_without_force():
    units = _geom.parse_ggatec_list(
        render_ggatec_list([{"unit": 0, "host": "10.0.0.2", "path": "/dev/ada1", "mode": "r1w1e1"}])
    )
    with pytest.raises(StateError, match=r"ggate0 is open \(mode r1w1e1\), probably as a gmirror component"):
        _geom.plan_ggate_destroy(units, unit=0)
    assert _geom.plan_ggate_destroy(units, unit=0, force=True)[0] == [["destroy", "-f", "-u", "0"]]
    assert _geom.plan_ggate_destroy(units, host="10.0.0.2", path="/dev/ada1", force=True)[1]["unit"] == 0
    assert _geom.plan_ggate_destroy(units, unit=3) == ([], None)


# ---------------------------------------------------------------- gg.exports


def test_parse_exports_reads_the_handbook_line():
    (entry,) = _geom.parse_exports(read_fixture("geom/gg-exports-handbook.txt"))
    assert entry == {
        "host": "192.168.1.5",
        "mask": None,
        "access": "RW",
        "direct": None,
        "path": "/dev/da0s4d",
        "line": 1,
    }


def test_parse_exports_reads_the_man_page_grammar():
    # The ggated(8) examples (documentation, not a capture), with comments, blank lines and leading blanks.
    text = (
        "# exports\n\n1.2.3.4\t\tRO\t/dev/cd0\n  1.2.3.0/24\tRW\t/tmp/test.img\nhostname\tWO\t/tmp/image\n"
        "hostname\tRW,DIRECT\t/tmp/direct-image\nhostname\trw,nodirect\t/tmp/nodirect-image\n10.0.0.1 rd /dev/ada1\n"
    )
    entries = _geom.parse_exports(text)
    assert [(e["host"], e["mask"], e["access"], e["direct"], e["line"]) for e in entries] == [
        ("1.2.3.4", None, "RO", None, 3),
        ("1.2.3.0", 24, "RW", None, 4),
        ("hostname", None, "WO", None, 5),
        ("hostname", None, "RW", True, 6),
        ("hostname", None, "RW", False, 7),
        ("10.0.0.1", None, "RO", None, 8),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.1 RW\n", "Too few arguments at line 1."),
        ("10.0.0.1 RW /dev/ada1 extra\n", "Too many arguments at line 1."),
        ("10.0.0.1 RX /dev/ada1\n", "Invalid value in flags field at line 1."),
        ("10.0.0.1 RW,FAST /dev/ada1\n", "Invalid value in flags field at line 1."),
        ("10.0.0.0/33 RW /dev/ada1\n", "Invalid IP mask value at line 1."),
        ("300.0.0.1 RW /dev/ada1\n", "Invalid IP/host name at line 1."),
        ("*.example RW /dev/ada1\n", "Invalid IP/host name at line 1."),
        ("10.0.0.1 RW /" + "x" * 1100 + "\n", "Path too long at line 1."),
        ("#" * 3000 + "\n", "Line 1 too long."),
        ("10.0.0.1 RW /dev/ada1\r\n", "control character"),
    ],
)
def test_parse_exports_raises_what_ggated_would_exit_on(text, message):
    with pytest.raises(_geom.ParseError, match=message.replace(".", r"\.")):
        _geom.parse_exports(text)


def test_serialise_exports_round_trips_and_writes_the_header_as_comments():
    entries = [
        {"host": "10.0.0.1", "mask": None, "access": "RW", "direct": None, "path": "/dev/ada1"},
        {"host": "10.0.0.0", "mask": 24, "access": "ro", "direct": False, "path": "/tmp/test.img"},
    ]
    text = _geom.serialise_exports(entries, header=["Ansible managed", "freebsd_ha.storage:ggated"])
    assert text == (
        "# Ansible managed\n# freebsd_ha.storage:ggated\n10.0.0.1\tRW\t/dev/ada1\n10.0.0.0/24\tRO,NODIRECT\t/tmp/test.img\n"
    )
    parsed = _geom.parse_exports(text)
    assert _geom.serialise_exports(parsed, header=["Ansible managed", "freebsd_ha.storage:ggated"]) == text


def test_check_exports_to_peers_admits_only_the_peer():
    peer = _geom.parse_exports("10.0.0.1\tRW\t/dev/ada1\n")
    _geom.check_exports_to_peers(peer, ["10.0.0.1"])
    with pytest.raises(StateError, match=r"to 10\.0\.0\.1, which is not the peer"):
        _geom.check_exports_to_peers(peer, ["10.0.0.9"])
    network = _geom.parse_exports("10.0.0.0/24\tRW\t/dev/ada1\n")
    with pytest.raises(StateError, match="network or wildcard"):
        _geom.check_exports_to_peers(network, ["10.0.0.1"])
    _geom.check_exports_to_peers(network, ["10.0.0.1"], allow_networks=True)
    with pytest.raises(StateError, match="network or wildcard"):
        _geom.check_exports_to_peers(_geom.parse_exports("0.0.0.0 RW /dev/ada1\n"), ["0.0.0.0"])
    with pytest.raises(StateError, match="no objects to export"):
        _geom.check_exports_to_peers([], ["10.0.0.1"])
    assert _geom.is_single_host(_geom.parse_exports("10.0.0.1/32 RW /dev/ada1\n")[0])
