# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_dataset planner: (current, wanted) -> argv plan, including every refusal."""

from __future__ import annotations

import pytest

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _dataset
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import read_fixture


def props(fixture, name):
    return _dataset.datasets_from_get(read_fixture(f"zfs/{fixture}.txt"), [name], set())[name]


def encrypted(keystatus, mounted="no", root="zdata/enc"):
    # Constructed from the documented `zfs get -H` shape (zfs.md §2): zfs-fuse has no encryption.
    return {
        "mounted": {"value": mounted, "source": "-"},
        "mountpoint": {"value": "/data/enc", "source": "local"},
        "encryption": {"value": "aes-256-gcm", "source": "-"},
        "keystatus": {"value": keystatus, "source": "-"},
        "encryptionroot": {"value": root, "source": "-"},
    }


def wanted(name="tank/nfs", **options):
    defaults = dict(
        state="present",
        properties={},
        create_parents=False,
        mounted=None,
        key_loaded=None,
        key_location=None,
        rename_from=None,
        destroy_dependents=False,
    )
    return dict(defaults, name=name, **options)


def test_split_get_errors_reads_missing_names_from_real_stderr():
    missing, other = _dataset.split_get_errors(read_fixture("zfs/zfs-get-error-does-not-exist.zfs-fuse.txt"))
    assert (missing, other) == ({"tank/old"}, [])
    missing, other = _dataset.split_get_errors(read_fixture("zfs/zfs-get-error-bad-property-encryption.zfs-fuse.txt"))
    assert not missing
    assert other[0] == "bad property list: invalid property 'encryption'"


def test_datasets_from_get_marks_missing_and_keeps_local_sources():
    out = read_fixture("zfs/zfs-get-all-pair-one-missing.zfs-fuse.txt")
    datasets = _dataset.datasets_from_get(out, ["tank/new", "tank/old"], {"tank/old"})
    assert datasets["tank/old"] is None
    assert datasets["tank/new"]["com.example:role"] == {"value": "primary", "source": "local"}
    with pytest.raises(_dataset.ParseError, match="printed nothing for tank/other"):
        _dataset.datasets_from_get(out, ["tank/other"], set())


def test_dependents_from_get_lists_children_and_snapshots():
    out = read_fixture("zfs/zfs-get-r-type-dependents.zfs-fuse.txt")
    assert _dataset.dependents_from_get(out, "tank/nfs") == ["tank/nfs@s1", "tank/nfs/home"]
    assert _dataset.dependents_from_get(read_fixture("zfs/zfs-get-r-type-leaf.zfs-fuse.txt"), "tank/leaf") == []


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("zfs-destroy-error-has-children.zfs-fuse", ["tank/a/b/c", "tank/a/b"]),
        ("zfs-destroy-error-has-snapshots.zfs-fuse", ["tank/nfs@s1"]),
        ("zfs-destroy-error-has-children-salt-fixture", ["myzpool/mydataset@snapshot"]),
        ("zfs-destroy-error-busy.zfs-fuse", []),
    ],
)
def test_parse_destroy_dependents(fixture, expected):
    assert _dataset.parse_destroy_dependents(read_fixture(f"zfs/{fixture}.txt")) == expected


def test_create_passes_properties_as_sorted_options_and_parents():
    plan, before, after = _dataset.plan_present(
        wanted("tank/x/y", create_parents=True, properties={"readonly": True, "compression": "lz4"}), None
    )
    assert plan == [["create", "-p", "-o", "compression=lz4", "-o", "readonly=on", "tank/x/y"]]
    assert (before, after) == (
        {"state": "absent"},
        {"state": "present", "properties": {"compression": "lz4", "readonly": "on"}},
    )


def test_present_is_empty_when_local_values_match():
    current = props("zfs-get-all-created.zfs-fuse", "tank/x/y")
    assert _dataset.plan_present(
        wanted("tank/x/y", properties={"compression": "on", "com.example:role": "primary"}), current
    ) == ([], {}, {})


def test_non_local_sources_count_as_unset():
    # readonly reads off/temporary on a mounted zfs-fuse dataset; mountpoint is inherited.
    current = props("zfs-get-all-fresh.zfs-fuse", "tank/fresh")
    plan, before, _after = _dataset.plan_present(
        wanted("tank/fresh", properties={"mountpoint": "/tmp/zpimp/mnt2/tank/fresh"}), current
    )
    assert plan == [["set", "mountpoint=/tmp/zpimp/mnt2/tank/fresh", "tank/fresh"]]
    assert before == {"properties": {"mountpoint": None}}


def test_rename_then_set_compares_against_the_source():
    source = props("zfs-get-all-mountpoint-none.zfs-fuse", "tank/new")
    plan, before, after = _dataset.plan_present(
        wanted("tank/old", rename_from="tank/new", properties={"com.example:role": "standby"}), None, source
    )
    assert plan == [["rename", "tank/new", "tank/old"], ["set", "com.example:role=standby", "tank/old"]]
    assert before["name"] == "tank/new"
    assert after["name"] == "tank/old"


def test_rename_refuses_when_both_exist_and_when_neither_does():
    current = props("zfs-get-all-created.zfs-fuse", "tank/x/y")
    with pytest.raises(StateError, match="both tank/old and tank/x/y exist"):
        _dataset.plan_present(wanted("tank/x/y", rename_from="tank/old"), current, current)
    with pytest.raises(StateError, match="neither tank/x/y nor rename_from tank/old exists"):
        _dataset.plan_present(wanted("tank/x/y", rename_from="tank/old"), None, None)


def test_rename_from_is_validated():
    with pytest.raises(StateError, match="invalid dataset name 'tank/a@b'"):
        _dataset.plan_present(wanted("tank/x", rename_from="tank/a@b"), None, None)


def test_unmount_and_mount():
    current = props("zfs-get-all-local-props.zfs-fuse", "tank/nfs")
    assert _dataset.plan_present(wanted(mounted=False), current)[0] == [["unmount", "tank/nfs"]]
    assert _dataset.plan_present(wanted(mounted=True), current)[0] == []


def test_mount_refuses_mountpoint_none():
    with pytest.raises(StateError, match="its mountpoint is none"):
        _dataset.plan_present(
            wanted("tank/new", mounted=True), props("zfs-get-all-mountpoint-none.zfs-fuse", "tank/new")
        )


def test_mount_refuses_unloaded_key_and_says_to_load_it():
    with pytest.raises(StateError, match=r"key is not loaded .* key_loaded: true"):
        _dataset.plan_present(wanted("zdata/enc", mounted=True), encrypted("unavailable"))


def test_load_key_then_mount_in_that_order():
    plan, before, after = _dataset.plan_present(
        wanted("zdata/enc", mounted=True, key_loaded=True, key_location="file:///k"), encrypted("unavailable")
    )
    assert plan == [["load-key", "-L", "file:///k", "zdata/enc"], ["mount", "zdata/enc"]]
    assert before == {"key_loaded": False, "mounted": False}
    assert after == {"key_loaded": True, "mounted": True}


def test_unmount_then_unload_key():
    plan = _dataset.plan_present(
        wanted("zdata/enc", mounted=False, key_loaded=False), encrypted("available", mounted="yes")
    )[0]
    assert plan == [["unmount", "zdata/enc"], ["unload-key", "zdata/enc"]]


def test_unload_key_refused_while_mounted_unless_unmounting():
    with pytest.raises(StateError, match="set mounted: false"):
        _dataset.plan_present(wanted("zdata/enc", key_loaded=False), encrypted("available", mounted="yes"))


def test_key_refusals():
    with pytest.raises(StateError, match="no native encryption"):
        _dataset.plan_present(wanted(key_loaded=True), props("zfs-get-all-local-props.zfs-fuse", "tank/nfs"))
    with pytest.raises(StateError, match="belongs to its encryption root zdata"):
        _dataset.plan_present(wanted("zdata/enc/a", key_loaded=True), encrypted("unavailable", root="zdata"))
    plain = dict(encrypted("-"), encryption={"value": "off", "source": "default"})
    with pytest.raises(StateError, match="is not encrypted"):
        _dataset.plan_present(wanted("zdata/enc", key_loaded=True), plain)
    with pytest.raises(StateError, match="contradicts"):
        _dataset.plan_present(wanted("zdata/enc", key_loaded=False, mounted=True), encrypted("available"))


def test_needs_encryption_read_only_when_keys_matter():
    current = props("zfs-get-all-local-props.zfs-fuse", "tank/nfs")
    assert _dataset.needs_encryption_read(wanted(key_loaded=True), current)
    assert not _dataset.needs_encryption_read(wanted(mounted=True), current)  # already mounted
    assert not _dataset.needs_encryption_read(wanted(key_loaded=True), encrypted("available"))


def test_absent_refuses_dependents_naming_them():
    with pytest.raises(StateError, match=r"tank/nfs has 2 dependent .*tank/nfs@s1, tank/nfs/home.*destroy_dependents"):
        _dataset.plan_absent(wanted(state="absent"), True, ["tank/nfs@s1", "tank/nfs/home"])


def test_absent_plans():
    assert _dataset.plan_absent(wanted(), False, []) == ([], {}, {})
    assert _dataset.plan_absent(wanted(), True, [])[0] == [["destroy", "tank/nfs"]]
    assert _dataset.plan_absent(wanted(destroy_dependents=True), True, ["tank/nfs@s1"])[0] == [
        ["destroy", "-r", "tank/nfs"]
    ]
    assert _dataset.build_dry_run_argv(["destroy", "-r", "tank/nfs"]) == ["destroy", "-n", "-v", "-r", "tank/nfs"]
    with pytest.raises(StateError, match="rename_from only applies"):
        _dataset.plan_absent(wanted(rename_from="tank/x"), True, [])


def test_describe_dependents_shortens_long_lists():
    names = [f"tank/a@s{i}" for i in range(12)]
    assert _dataset.describe_dependents(names).endswith("tank/a@s9 and 2 more")


def test_read_argvs():
    assert _dataset.build_read_argv(["tank/a", "tank/b"]) == [
        "get",
        "-H",
        "-o",
        "name,property,value,source",
        "all",
        "tank/a",
        "tank/b",
    ]
    assert _dataset.build_dependents_argv("tank/a") == [
        "get",
        "-H",
        "-r",
        "-o",
        "name,property,value,source",
        "type",
        "tank/a",
    ]
