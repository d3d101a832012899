# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The zfskeys role: its argument spec, the documented examples, and every refusal it makes before a change."""

from __future__ import annotations

import pytest

from ansible_collections.freebsd_ha.storage.tests.unit.roles.role_helpers import (
    doc_example,
    entry_point,
    failed_asserts,
    spec_errors,
)

KEY_B64 = "q83vASNFZ4mrze8BI0VniavN7wEjRWeJq83vASNFZ4k="  # 32 bytes, a test value


def zfs_info(*datasets):
    """A zfs_info result as tasks/keylocation.yml registers it: (name, encryptionroot, keystatus) triples."""
    rows = [{"name": n, "encryptionroot": r, "keylocation": "none", "keystatus": s} for n, r, s in datasets]
    return {"datasets": rows}


def key_files(*sizes):
    """The stat results of tasks/keylocation.yml, one per encryption root (None: file missing)."""
    return {"results": [{"stat": {"exists": size is not None, "size": size or 0}} for size in sizes]}


@pytest.mark.parametrize(
    ("host", "example"), [("f0", "standard-pair-f0"), ("f1", "standard-pair-f1"), ("f1", "raw-replica-f1")]
)
def test_documented_examples_pass_the_spec_and_the_checks(host, example):
    variables = doc_example("zfskeys", example)
    assert spec_errors("zfskeys", variables) == []
    assert failed_asserts("zfskeys", "validate.yml", {**variables, "inventory_hostname": host}) == []


def test_raw_replica_example_lists_the_path_zrepl_receives_into():
    roots = [root["name"] for root in doc_example("zfskeys", "raw-replica-f1")["zfskeys_encryption_roots"]]
    # zrepl's sink puts f0's zdata/enc/nfsdata under <root_fs>/<client identity>/ (docs/role_zrepl.md).
    assert "zdata/sink/f0/zdata/enc/nfsdata" in roots


def test_key_content_is_never_logged_and_excludes_copy_from():
    key_options = entry_point("zfskeys")["options"]["zfskeys_keys"]
    assert key_options["options"]["content_b64"]["no_log"] is True
    errors = spec_errors("zfskeys", {"zfskeys_keys": [{"name": "a", "content_b64": KEY_B64, "copy_from": "f0"}]})
    assert any("mutually exclusive: content_b64|copy_from" in error for error in errors), errors


def test_spec_rejects_a_root_without_name_and_unknown_fields():
    errors = spec_errors("zfskeys", {"zfskeys_encryption_roots": [{"key": "f0:zdata", "path": "/keys"}]})
    assert any("missing required arguments: name" in error for error in errors), errors
    assert any("zfskeys_encryption_roots.path" in error for error in errors), errors


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        pytest.param({"zfskeys_keys": [{"name": "../etc/passwd"}]}, "key name '../etc/passwd'", id="path in key name"),
        pytest.param({"zfskeys_keys": [{"name": "f0:zdata"}, {"name": "f0:zdata"}]}, "must be unique", id="key twice"),
        pytest.param({"zfskeys_keys": [{"name": "k", "content_b64": " "}]}, "not empty", id="empty content"),
        pytest.param({"zfskeys_keys": [{"name": "k", "copy_from": "f0"}]}, "which is this host", id="copy from self"),
        pytest.param(
            {"zfskeys_keys": [{"name": "f0:zdata"}], "zfskeys_encryption_roots": [{"name": "zdata/my data"}]},
            "without whitespace",
            id="root with a space",
        ),
        pytest.param(
            {"zfskeys_keys": [{"name": "f0:tank"}], "zfskeys_encryption_roots": [{"name": "zdata/enc"}]},
            "its key 'f0:zdata' must be in zfskeys_keys",
            id="default key of the root not managed",
        ),
    ],
)
def test_validation_refuses_before_any_change(variables, message):
    failures = failed_asserts("zfskeys", "validate.yml", {"inventory_hostname": "f0", **variables})
    assert failures and all(message in text for _condition, text in failures), failures


def test_an_explicit_key_overrides_the_host_pool_default():
    variables = {
        "zfskeys_keys": [{"name": "shared"}],
        "zfskeys_encryption_roots": [{"name": "zdata/enc", "key": "shared"}],
    }
    assert failed_asserts("zfskeys", "validate.yml", {"inventory_hostname": "f0", **variables}) == []


ROOTS = [{"name": "zdata/enc"}, {"name": "zdata/sink/f0/zdata/enc/nfsdata", "key": "f0:zdata", "may_be_absent": True}]


def keylocation_failures(zfs, files, roots=tuple(ROOTS)):
    variables = {"inventory_hostname": "f1", "zfskeys_encryption_roots": roots}
    return failed_asserts(
        "zfskeys", "keylocation.yml", {**variables, "__zfskeys_zfs": zfs, "__zfskeys_root_files": files}
    )


def test_present_roots_with_key_files_and_an_absent_replica_pass():
    zfs = zfs_info(("zdata", "-", "-"), ("zdata/enc", "zdata/enc", "available"))
    assert keylocation_failures(zfs, key_files(32, 32)) == []


def test_a_missing_dataset_that_may_not_be_absent_is_refused_with_how_to_create_it():
    (failure,) = keylocation_failures(zfs_info(("zdata", "-", "-")), key_files(32, 32))
    assert "zdata/enc does not exist" in failure[1]
    assert "keylocation=file:///keys/f1:zdata.key" in failure[1]


def test_a_child_that_inherits_its_key_is_refused():
    zfs = zfs_info(
        ("zdata/enc", "zdata/enc", "available"), ("zdata/sink/f0/zdata/enc/nfsdata", "zdata/sink", "available")
    )
    (failure,) = keylocation_failures(zfs, key_files(32, 32))
    assert "is not an encryption root (its encryptionroot is zdata/sink)" in failure[1]


def test_a_root_without_its_key_file_is_refused():
    zfs = zfs_info(("zdata/enc", "zdata/enc", "unavailable"))
    (failure,) = keylocation_failures(zfs, key_files(0, 32))
    assert "/keys/f1:zdata.key (the key of zdata/enc) is missing or empty" in failure[1]


def safe_mode_failures(given, on_peer, on_host, safe_mode=True):
    """Failures of the safe-mode check in tasks/keys.yml for one key, from what the slurp tasks registered."""
    key = {"name": "f0:zdata", **({"content_b64": given} if given is not None else {})}
    key |= {"copy_from": "f1"} if on_peer is not None else {}
    variables = {
        "zfskeys_keys": [key],
        "zfskeys_safe_mode": safe_mode,
        "__zfskeys_peer": {"results": [{"content": on_peer} if on_peer is not None else {"skipped": True}]},
        "__zfskeys_current": {"results": [{"content": on_host} if on_host is not None else {"skipped": True}]},
    }
    return failed_asserts("zfskeys", "keys.yml", variables, only="(zfskeys_safe_mode)")


def test_safe_mode_refuses_to_replace_a_different_existing_key():
    (failure,) = safe_mode_failures(KEY_B64, None, "AAAA" + KEY_B64[4:])
    assert safe_mode_failures(None, KEY_B64, "AAAA" + KEY_B64[4:])  # a key copied from the peer alike
    assert "/keys/f0:zdata.key exists with a different key" in failure[1]
    assert KEY_B64 not in failure[1]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param((KEY_B64, None, KEY_B64), id="same key given"),
        pytest.param((None, KEY_B64, KEY_B64), id="same key on the other host"),
        pytest.param((KEY_B64[:20] + "\n" + KEY_B64[20:], None, KEY_B64), id="given with a line break"),
        pytest.param((KEY_B64, None, None), id="no file yet"),
        pytest.param((None, None, None), id="generated key"),
    ],
)
def test_safe_mode_lets_matching_new_and_generated_keys_through(content):
    assert safe_mode_failures(*content) == []


def test_safe_mode_off_allows_replacing_a_key():
    assert safe_mode_failures(KEY_B64, None, "AAAA" + KEY_B64[4:], safe_mode=False) == []
