# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_zpool parsers and planner against recorded outputs."""

from __future__ import annotations

import pytest

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _zpool
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import read_fixture


def listing(name):
    return _zpool.parse_import_listing(read_fixture(f"zpool/{name}.txt"))


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("zpool-import-online.zfs-fuse", [("data", "10582927196796783394", "ONLINE")]),
        (
            "zpool-import-two-pools.zfs-fuse",
            [("stripe", "3255222059218089669", "ONLINE"), ("data", "10582927196796783394", "ONLINE")],
        ),
        ("zpool-import-degraded-mirror.zfs-fuse", [("mir", "7696427009611166593", "DEGRADED")]),
        ("zpool-import-unavail-missing-device.zfs-fuse", [("stripe", "3255222059218089669", "UNAVAIL")]),
        ("zpool-import-importable-file-vdev-openzfs11960", [("testpsko", "11983299557685846606", "ONLINE")]),
        ("zpool-import-unavail-openzfs2450", [("tank", "3589532515861118860", "UNAVAIL")]),
        ("zpool-import-multihost-unavail-openzfs12677", [("home1", "13906513988257520913", "UNAVAIL")]),
    ],
)
def test_parse_import_listing_finds_every_pool(fixture, expected):
    assert [(p["name"], p["id"], p["state"]) for p in listing(fixture)] == expected


def test_parse_import_listing_joins_tab_indented_status_continuation():
    (pool,) = listing("zpool-import-multihost-unavail-openzfs12677")
    assert pool["status"] == (
        "The pool has the multihost property on.  It cannot be safely imported when the system hostid is not set."
    )
    assert pool["see"] == "https://openzfs.github.io/openzfs-docs/msg/ZFS-8000-EY"


def test_parse_import_listing_joins_action_continuation_and_keeps_config_tree():
    (pool,) = listing("zpool-import-unavail-missing-device.zfs-fuse")
    assert pool["action"] == "The pool cannot be imported. Attach the missing devices and try again."
    assert pool["config"].splitlines()[0] == "\tstripe                       UNAVAIL  missing device"
    assert pool["config"].endswith("\texact configuration cannot be determined.")


def test_parse_import_listing_skips_zpool_status_block_and_prompts_in_capture():
    # The capture holds `zpool status` (no id:, has scan:/errors:) before the import listing.
    (pool,) = listing("zpool-import-unavail-openzfs2450")
    assert pool["config"].startswith("\ttank ")
    assert "sdc" not in pool["config"]


def test_parse_import_listing_accepts_space_indented_config_and_labels():
    (pool,) = listing("zpool-import-importable-file-vdev-openzfs11960")
    assert pool["config"].splitlines() == [
        "        testpsko                                      ONLINE",
        "          /mnt/filling/store/nabijaczleweli/testpsko  ONLINE",
    ]
    assert pool["status"] is None


def test_parse_import_listing_accepts_labels_with_any_indentation():
    text = "pool: a\n      id: 1\nstate: ONLINE\n    action: ok\n\tand more\nconfig:\n  a ONLINE\n"
    assert _zpool.parse_import_listing(text) == [
        {
            "name": "a",
            "id": "1",
            "state": "ONLINE",
            "status": None,
            "action": "ok and more",
            "see": None,
            "config": "  a ONLINE",
        }
    ]


def test_parse_import_listing_of_nothing_is_empty():
    assert _zpool.parse_import_listing(read_fixture("zpool/zpool-import-nothing.zfs-fuse.txt")) == []


def test_parse_import_listing_rejects_unindented_junk_inside_an_entry():
    with pytest.raises(_zpool.ParseError, match="unexpected line in the entry of pool a"):
        _zpool.parse_import_listing("   pool: a\n     id: 1\ngarbage here\n  state: ONLINE\n")


def test_parse_import_listing_rejects_entry_without_id():
    with pytest.raises(_zpool.ParseError, match="has no id"):
        _zpool.parse_import_listing("   pool: a\n  state: ONLINE\n config:\n\n\ta ONLINE\n")


def test_parse_import_listing_rejects_repeated_label():
    with pytest.raises(_zpool.ParseError, match="second 'state:'"):
        _zpool.parse_import_listing("   pool: a\n     id: 1\n  state: ONLINE\n  state: FAULTED\n")


def test_listing_empty_error_recognises_both_forms():
    assert _zpool.is_listing_empty_error(1, "", read_fixture("zpool/zpool-import-nothing.zfs-fuse.txt"))
    assert _zpool.is_listing_empty_error(1, "", "no pools available to import\n")
    assert not _zpool.is_listing_empty_error(1, "", "cannot open '/nope': No such file or directory\n")
    assert not _zpool.is_listing_empty_error(0, "", "")


@pytest.mark.parametrize(
    ("fixture", "columns", "expected"),
    [
        (
            "zpool-list-H-name-health-guid.zfs-fuse",
            _zpool.ZPOOL_LIST_COLUMNS,
            [{"name": "tank", "health": "ONLINE", "guid": "15619661451235056610"}],
        ),
        ("zpool-list-H-name-health-guid-none.zfs-fuse", _zpool.ZPOOL_LIST_COLUMNS, []),
        (
            "zpool-list-H-name-health-degraded.zfs-fuse",
            ("name", "health"),
            [{"name": "mir", "health": "DEGRADED"}, {"name": "tank", "health": "ONLINE"}],
        ),
    ],
)
def test_parse_zpool_list(fixture, columns, expected):
    assert _zpool.parse_zpool_list(read_fixture(f"zpool/{fixture}.txt"), columns) == expected


def test_parse_zpool_list_rejects_wrong_field_count():
    with pytest.raises(_zpool.ParseError, match="expected 3 TAB-separated fields"):
        _zpool.parse_zpool_list("tank  ONLINE  123\n")


def test_build_import_argv_orders_flags_before_pool():
    assert _zpool.build_import_argv(
        "tank", ["/dev/hast", "/tmp/d"], force=True, altroot="/mnt", no_mount=True, readonly=True
    ) == ["import", "-f", "-N", "-R", "/mnt", "-o", "readonly=on", "-d", "/dev/hast", "-d", "/tmp/d", "tank"]
    assert _zpool.build_import_argv("123") == ["import", "123"]
    assert _zpool.build_import_listing_argv(["/dev/hast"]) == ["import", "-d", "/dev/hast"]
    assert _zpool.build_export_argv("tank", force=True) == ["export", "-f", "tank"]
    assert _zpool.build_list_argv() == ["list", "-H", "-o", "name,health,guid"]


@pytest.mark.parametrize("name", ["tank/nfs", "1tank", "mirror", "raidz2", "c0t0", "ta*nk", ""])
def test_validate_pool_name_refuses(name):
    with pytest.raises(StateError):
        _zpool.validate_pool_name(name)


def test_plan_import_is_empty_when_already_imported():
    assert _zpool.plan_import("tank", {"name": "tank", "health": "ONLINE"}, []) == []


def test_plan_import_by_name_and_by_id():
    entries = listing("zpool-import-two-pools.zfs-fuse")
    assert _zpool.plan_import("data", None, entries, ["/d"]) == [["import", "-d", "/d", "data"]]
    assert _zpool.plan_import("3255222059218089669", None, entries, force=True) == [
        ["import", "-f", "3255222059218089669"]
    ]


def test_plan_import_refuses_unavail_pool_quoting_the_listing():
    with pytest.raises(
        StateError,
        match=r"pool stripe .* cannot be imported: state UNAVAIL; status: One or more "
        r"devices are missing .*action: The pool cannot be imported",
    ):
        _zpool.plan_import("stripe", None, listing("zpool-import-unavail-missing-device.zfs-fuse"))


def test_plan_import_allows_degraded_pool():
    assert _zpool.plan_import("mir", None, listing("zpool-import-degraded-mirror.zfs-fuse")) == [["import", "mir"]]


def test_plan_import_refuses_absent_pool_naming_search_dirs():
    with pytest.raises(
        StateError,
        match=r"no pool named nfs available for import; searched: /dev/hast; "
        r"pools found there: data \(id 10582927196796783394, ONLINE\)",
    ):
        _zpool.plan_import("nfs", None, listing("zpool-import-online.zfs-fuse"), ["/dev/hast"])


def test_plan_import_refuses_foreign_pool_without_force():
    entry = dict(
        listing("zpool-import-online.zfs-fuse")[0],
        action="The pool can be imported using its name or numeric identifier and the '-f' flag.",
    )
    with pytest.raises(StateError, match="last accessed by another system"):
        _zpool.plan_import("data", None, [entry])
    assert _zpool.plan_import("data", None, [entry], force=True) == [["import", "-f", "data"]]


def test_plan_import_refuses_ambiguous_name():
    entries = listing("zpool-import-online.zfs-fuse") * 2
    with pytest.raises(StateError, match="several pools named data"):
        _zpool.plan_import("data", None, entries)


def test_plan_export():
    assert _zpool.plan_export("tank", None) == []
    assert _zpool.plan_export("tank", {"name": "tank", "health": "ONLINE"}, force=True) == [["export", "-f", "tank"]]
    pools = _zpool.parse_zpool_list(read_fixture("zpool/zpool-list-H-name-health-guid.zfs-fuse.txt"))
    imported = _zpool.find_imported(pools, "15619661451235056610")
    assert _zpool.plan_export("15619661451235056610", imported) == [["export", "tank"]]
