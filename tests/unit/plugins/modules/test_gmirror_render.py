# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Constructed gmirror/ggatec output for the unit tests, rendered from the tools' printf formats.

No real `gmirror list`, `gmirror dump` or `ggatec list -v` capture exists in the corpora (shared/reference/geom.md
§2 and §4), so the cases describe mirrors and units as data and these renderers print them the way geom(8)'s
list_one_geom(), g_mirror_dumpconf(), mirror_metadata_dump() and ggate's show_config() do. The tests below pin
the renderers to the reference's constructed example, so a case cannot drift from the documented layout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _geom

REFERENCE = Path(__file__).resolve().parents[5] / "shared" / "reference" / "geom.md"
DISK_BYTES = 1000204821504
MIRROR_BYTES = 1000204820480
SECTOR = 512


def humanize(size):
    """Return humanize_number(3)'s 4-character size (HN_AUTOSCALE | HN_B | HN_NOSPACE | HN_DECIMAL)."""
    quotient, remainder, unit = size, 0, 0
    while quotient >= 1000 and unit < 6:
        quotient, remainder, unit = quotient // 1024, quotient % 1024, unit + 1
    suffix = "BKMGTPE"[unit]
    if unit and quotient <= 9 and remainder:
        return f"{quotient}.{(remainder * 10 + 512) // 1024}{suffix}"
    return f"{quotient + (remainder + 512) // 1024}{suffix}"


def _component(mirror, index, spec):
    syncing = spec.get("state", "ACTIVE") == "SYNCHRONIZING"
    fields = {
        "State": spec.get("state", "ACTIVE"),
        "Priority": spec.get("priority", index),
        "Flags": spec.get("flags", "DIRTY, SYNCHRONIZING" if syncing else "NONE"),
        "GenID": spec.get("genid", mirror.get("genid", 0)),
        "SyncID": spec.get("syncid", mirror.get("syncid", 1)),
    }
    if syncing:
        fields["Synchronized"] = f"{spec.get('synchronized', 0)}%"
        if spec.get("bytes_synced"):
            fields["BytesSynced"] = spec["bytes_synced"]
    fields["ID"] = spec.get("id", 2000000000 + index)
    lines = [
        f"{index + 1}. Name: {spec['name']}",
        f"   Mediasize: {DISK_BYTES} ({humanize(DISK_BYTES)})",
        f"   Sectorsize: {SECTOR}",
        f"   Mode: {spec.get('mode', 'r1w1e1')}",
    ]
    return lines + [f"   {key}: {value}" for key, value in fields.items()]


def render_list(mirrors):
    """Return `gmirror list` for mirror specs (keys as in _geom.mirror_from_geom, strings for flags)."""
    lines = []
    for mirror in mirrors:
        components = mirror.get("components", [])
        active = sum(1 for c in components if c.get("state", "ACTIVE") == "ACTIVE")
        configured = mirror.get("components_configured", len(components))
        state = mirror.get("geom_state", "COMPLETE" if active == configured else "DEGRADED")
        # libgeom hands the kernel's keys over in reverse (reference §2), State first.
        config = {
            "State": state,
            "Components": configured,
            "Balance": mirror.get("balance", "prefer"),
            "Slice": mirror.get("slice", 4096),
            "Flags": mirror.get("flags", "NOAUTOSYNC"),
            "GenID": mirror.get("genid", 0),
            "SyncID": mirror.get("syncid", 1),
            "ID": mirror.get("id", 1234567890),
            "Type": mirror.get("type", "AUTOMATIC"),
        }
        lines.append(f"Geom name: {mirror['name']}")
        lines += [f"{key}: {value}" for key, value in config.items()]
        if state != "STARTING":
            size = MIRROR_BYTES
            lines += [
                "Providers:",
                f"1. Name: mirror/{mirror['name']}",
                f"   Mediasize: {size} ({humanize(size)})",
                f"   Sectorsize: {SECTOR}",
                f"   Mode: {mirror.get('mode', 'r0w0e0')}",
            ]
        if components:
            lines.append("Consumers:")
            for index, spec in enumerate(components):
                lines += _component(mirror, index, spec)
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


def render_dump(providers):
    """Return `gmirror dump` stdout for {provider, name, mid, genid, syncid, priority, ...} specs."""
    lines = []
    for spec in providers:
        lines += [
            f"Metadata on {spec['provider']}:",
            "     magic: GEOM::MIRROR",
            "   version: 4",
            f"      name: {spec['name']}",
            f"       mid: {spec.get('mid', 1234567890)}",
            f"       did: {spec.get('did', 3000000000)}",
            f"       all: {spec.get('all', 2)}",
            f"     genid: {spec.get('genid', 0)}",
            f"    syncid: {spec.get('syncid', 1)}",
            f"  priority: {spec.get('priority', 0)}",
            "     slice: 4096",
            f"   balance: {spec.get('balance', 'prefer')}",
            f" mediasize: {DISK_BYTES - SECTOR}",
            f"sectorsize: {SECTOR}",
            "syncoffset: 0",
            f"    mflags: {spec.get('mflags', 'NOAUTOSYNC')}",
            f"    dflags: {spec.get('dflags', 'NONE')}",
            "hcprovider: ",
            f"  provsize: {DISK_BYTES}",
            "  MD5 hash: 0123456789abcdef0123456789abcdef",
            "",
        ]
    return "\n".join(lines) + ("\n" if lines else "")


def render_ggatec_list(units):
    """Return `ggatec list -v` for {unit, host, port, path, access, mode, ...} specs (show_config's printf)."""
    lines = []
    for spec in units:
        size = spec.get("mediasize", DISK_BYTES)
        lines += [
            f"       NAME: ggate{spec['unit']}",
            f"       info: {spec['host']}:{spec.get('port', 3080)} {spec['path']}",
            f"     access: {spec.get('access', 'read-write')}",
            f"    timeout: {spec.get('timeout', 0)}",
            f"queue_count: {spec.get('queue_count', 0)}",
            f" queue_size: {spec.get('queue_size', 1024)}",
            f" references: {spec.get('references', 1)}",
            f"  mediasize: {size} ({humanize(size)})",
            f" sectorsize: {SECTOR}",
            f"       mode: {spec.get('mode', 'r0w0e0')}",
            "",
        ]
    return "\n".join(lines) + ("\n" if lines else "")


def render_step(step):
    """Return a command-script step with a gmirror_list/gmirror_dump/ggatec_list spec rendered into stdout."""
    step = dict(step)
    for key, render in (
        ("gmirror_list", render_list),
        ("gmirror_dump", render_dump),
        ("ggatec_list", render_ggatec_list),
    ):
        if key in step:
            step["stdout"] = render(step.pop(key))
    return step


REFERENCE_EXAMPLE = {
    "name": "gm0",
    "balance": "load",
    "flags": "NONE",
    "syncid": 1,
    "mode": "r1w1e1",
    "components": [
        {"name": "ada1", "priority": 1, "id": 2345678901},
        {
            "name": "ada0",
            "state": "SYNCHRONIZING",
            "priority": 0,
            "synchronized": 64,
            "bytes_synced": 640131072000,
            "id": 3456789012,
        },
    ],
}


def _reference_block():
    text = REFERENCE.read_text()
    start = text.index("```text\nGeom name: gm0")
    return text[start + len("```text\n") : text.index("```", start + 8)]


@pytest.mark.skipif(not REFERENCE.exists(), reason="shared/reference/geom.md is not beside the checkout")
def test_render_list_prints_the_reference_constructed_example():
    # Compared as parsed mirrors: the example's humanized sizes were typed, not computed.
    assert _geom.parse_mirrors(render_list([REFERENCE_EXAMPLE])) == _geom.parse_mirrors(_reference_block())


def test_render_list_round_trips_through_the_parser():
    (mirror,) = _geom.parse_mirrors(render_list([REFERENCE_EXAMPLE])).values()
    assert (mirror["state"], mirror["geom_state"], mirror["sync_progress"]) == ("SYNCHRONIZING", "DEGRADED", 64)
    assert [(c["name"], c["state"], c["priority"]) for c in mirror["components"]] == [
        ("ada1", "ACTIVE", 1),
        ("ada0", "SYNCHRONIZING", 0),
    ]


def test_humanize_matches_humanize_number_for_the_reference_disk():
    assert humanize(1000204820480) == "932G"
    assert humanize(512) == "512B"
    assert humanize(1536) == "1.5K"


def test_render_dump_and_ggatec_list_parse_back():
    found, errors = _geom.parse_dump(render_dump([{"provider": "ada1", "name": "gm0", "syncid": 7}]))
    assert (found["ada1"]["name"], found["ada1"]["syncid"], found["ada1"]["mflags"], errors) == (
        "gm0",
        7,
        ["NOAUTOSYNC"],
        {},
    )
    (unit,) = _geom.parse_ggatec_list(render_ggatec_list([{"unit": 3, "host": "10.0.0.2", "path": "/dev/ada1"}]))
    assert (unit["device"], unit["host"], unit["port"], unit["path"]) == ("/dev/ggate3", "10.0.0.2", 3080, "/dev/ada1")


def _at(result, path):
    node = result
    for part in str(path).split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def run_cases(run_module, module_obj, case):
    """Run one YAML case of the geom module tests and check its `expect` block; return the result."""
    commands = [render_step(step) for step in case.get("commands", [])]
    result, script = run_module(
        module_obj, case["params"], commands, check_mode=case.get("check_mode", False), diff=True
    )
    expect = case["expect"]
    assert result["failed"] == expect.get("failed", False), result.get("msg")
    if "changed" in expect:
        assert result["changed"] == expect["changed"]
        assert ("diff" in result) == expect["changed"]
    for text in expect.get("msg_contains", []):
        assert text in result["msg"]
    for key, value in expect.get("result", {}).items():
        assert result[key] == value, key
    for path, value in expect.get("paths", {}).items():
        assert _at(result, path) == value, path
    for path, keys in expect.get("keys", {}).items():
        assert sorted(_at(result, path)) == keys, path
    if "stderr_contains" in expect:
        assert expect["stderr_contains"] in result["stderr"]
    if "planned" in expect:
        # Check mode: the planned writes are the last commands, none of which ran.
        planned = [[arg.rsplit("/", 1)[-1] if i == 0 else arg for i, arg in enumerate(a)] for a in result["commands"]]
        assert planned[len(script.ran) :] == expect["planned"]
    if "ran" in expect:
        assert [argv[1] for argv in script.ran] == expect["ran"]
    return result
