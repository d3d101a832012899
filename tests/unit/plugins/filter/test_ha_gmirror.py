# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The gmirror runbook filters: the resource's gmirror section, and the judgement of every node's reads.

The reads are rendered with the tools' printf layouts (test_gmirror_render), as the modules' tests do, and the
gmirror_info results have that module's documented shape.
"""

from __future__ import annotations

import base64
import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.freebsd_ha.storage.plugins.filter.ha import ha_node_summary, ha_resource, ha_status_table
from ansible_collections.freebsd_ha.storage.plugins.filter.ha_gmirror import (
    ha_gmirror_assess,
    ha_gmirror_ggated,
    ha_gmirror_metadata,
    ha_gmirror_node_read,
    ha_gmirror_resource,
)
from ansible_collections.freebsd_ha.storage.tests.unit.plugins.modules.test_gmirror_render import (
    render_dump,
    render_ggatec_list,
)

ADDRESSES = {"f0": "10.0.0.1", "f1": "10.0.0.2"}
MID = 1234567890
RESOURCES = {
    "data": {
        "backend": "gmirror",
        "nodes": ["f0", "f1"],
        "primary": "f0",
        "services": ["nfsd"],
        "gmirror": {"mirror": "gm0", "slice": "ada1p1", "filesystem": {"type": "zfs", "pool": "gmpool"}},
    }
}


def resolve(**section):
    resources = {"data": dict(RESOURCES["data"], gmirror=dict(RESOURCES["data"]["gmirror"], **section))}
    resource = ha_resource(resources, "data", ["f0", "f1"])
    return resource, ha_gmirror_resource(resource, ADDRESSES)


def component(name, state="ACTIVE", *, genid=0, syncid=2, priority=0, flags=(), synchronized=None):
    return {
        "name": name,
        "state": state,
        "genid": genid,
        "syncid": syncid,
        "priority": priority,
        "flags": list(flags),
        "synchronized": synchronized,
    }


def mirror(*components, mode="r1w1e1", genid=0, syncid=2, configured=2):
    state = "COMPLETE" if len(components) == configured else "DEGRADED"
    if any(c["state"] == "SYNCHRONIZING" for c in components):
        state = "SYNCHRONIZING"
    return {
        "gm0": {
            "name": "gm0",
            "state": state,
            "mode": mode,
            "id": MID,
            "genid": genid,
            "syncid": syncid,
            "components_configured": configured,
            "components": list(components),
            "sync_progress": None,
        }
    }


def node(mirrors=None, *, dump=None, units=(), record=None, ggated=False, slice_missing=False):
    """The registered reads of one node, as the preflight leaves them in its hostvars."""
    if slice_missing:
        dump_result = {
            "rc": 1,
            "stdout": "",
            "stderr": "Can't read metadata from /dev/ada1p1: No such file or directory.",
        }
    elif dump is None:
        dump_result = {"rc": 1, "stdout": "", "stderr": "Can't read metadata from /dev/ada1p1: Invalid argument."}
    else:
        dump_result = {"rc": 0, "stdout": render_dump([dict(dump, provider="/dev/ada1p1", name="gm0")]), "stderr": ""}
    record_result = (
        {"msg": "file not found: /var/db/freebsd_ha/data.json", "failed": True}
        if record is None
        else {"content": base64.b64encode(json.dumps(record).encode()).decode()}
    )
    return ha_gmirror_node_read(
        {
            "__ha_info": {"mirrors": mirrors or {}, "missing": [] if mirrors else ["gm0"], "loaded": True},
            "__ha_gm_dump": dump_result,
            "__ha_gm_ggate": {"rc": 0, "stdout": render_ggatec_list(list(units)), "stderr": ""},
            "__ha_gm_record": record_result,
            "__ha_gm_ggated": {"rc": 0 if ggated else 1},
        }
    )


def unit_to(peer, mode="r1w1e1"):
    return {"unit": 0, "host": ADDRESSES[peer], "path": "/dev/ada1p1", "mode": mode}


def steady(remote_state="ACTIVE", remote_flags=(), *, synchronized=None, f1_dump=None):
    """f0 writes gm0 (epoch 1) with f1's slice attached as ggate0; f1 serves its slice."""
    return {
        "f0": node(
            mirror(
                component("ada1p1", priority=1),
                component("ggate0", remote_state, flags=remote_flags, synchronized=synchronized),
            ),
            dump={"syncid": 2, "priority": 1},
            units=[unit_to("f1")],
            record={"writer": "f0", "epoch": 1},
        ),
        "f1": node(dump=f1_dump or {"syncid": 2}, record={"writer": "f0", "epoch": 1}, ggated=True),
    }


# ---------------------------------------------------------------- the resource's gmirror section


def test_resource_section_is_normalised_with_the_peer_addresses_and_the_state_file():
    resource, gm = resolve()
    assert resource["family"] == "gmirror"
    assert gm["slices"] == {"f0": "/dev/ada1p1", "f1": "/dev/ada1p1"}
    assert gm["components"] == {"f0": "ada1p1", "f1": "ada1p1"}
    assert gm["device"] == "/dev/mirror/gm0"
    assert gm["state_file"] == "/var/db/freebsd_ha/data.json"
    assert (gm["local_priority"], gm["remote_priority"], gm["balance"]) == (1, 0, "prefer")


def test_per_node_slices_override_the_common_one():
    _resource, gm = resolve(slices={"f1": "/dev/da1"})
    assert gm["slices"] == {"f0": "/dev/ada1p1", "f1": "/dev/da1"}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"mirror": "mirror/gm0"}, "give the mirror's name"),
        ({"slice": None}, "node f0 needs its slice"),
        ({"slices": {"f9": "da1"}}, "maps nodes of the resource"),
        ({"filesystem": {"type": "ext4"}}, "needs type zfs"),
        ({"filesystem": {"type": "ufs", "mountpoint": "/"}}, "absolute path other than /"),
        (
            {"filesystem": {"type": "ufs", "mountpoint": "/data", "device": "/dev/ada0"}},
            "/dev/mirror/gm0 or a partition",
        ),
        ({"local_priority": 0}, "remote_priority < gmirror.local_priority"),
        ({"balance": "fastest"}, "balance must be one of"),
        ({"ggate_timeout": -1}, "whole seconds"),
        ({"secret": 1}, "unknown gmirror setting(s) secret"),
    ],
)
def test_a_malformed_gmirror_section_is_refused_with_what_to_fix(section, message):
    with pytest.raises(AnsibleFilterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(**section)


@pytest.mark.parametrize("address", ["f1.example.org", "10.0.0.0/24", "0.0.0.0", None])
def test_a_peer_that_is_not_one_ipv4_address_is_refused(address):
    resource = ha_resource(RESOURCES, "data", ["f0", "f1"])
    with pytest.raises(AnsibleFilterError, match="set ha_link_address"):
        ha_gmirror_resource(resource, dict(ADDRESSES, f1=address))


def test_the_ggated_role_gets_one_item_with_the_writer_as_primary_and_both_addresses():
    resource, gm = resolve(ggate_unit=3)
    (item,) = ha_gmirror_ggated(gm, resource, "f1")
    assert item["primary"] == "f1" and item["mirror"] == "gm0" and item["ggate_unit"] == 3
    assert item["nodes"] == {
        "f0": {"disk": "/dev/ada1p1", "address": "10.0.0.1"},
        "f1": {"disk": "/dev/ada1p1", "address": "10.0.0.2"},
    }
    assert (item["local_priority"], item["remote_priority"], item["autosync"]) == (1, 0, False)
    with pytest.raises(AnsibleFilterError, match="not one of its nodes"):
        ha_gmirror_ggated(gm, resource, "f7")


# ---------------------------------------------------------------- assessment


def test_steady_pair_has_one_writer_and_the_follower_in_sync():
    resource, gm = resolve()
    result = ha_gmirror_assess(steady(), resource, gm)
    assert result["safe"] and result["writers"] == ["f0"] and result["authoritative"] == "f0"
    assert result["epoch"] == 1 and result["next_epoch"] == 2 and result["stale"] == []
    assert result["lag"]["f1"]["gm0"]["in_sync"] and result["lag"]["f1"]["gm0"]["state"] == "ACTIVE"
    assert result["nodes"]["f0"]["ggate"]["name"] == "ggate0" and result["nodes"]["f1"]["ggated"]


def test_status_table_and_summary_read_a_gmirror_node_view():
    resource, gm = resolve()
    result = ha_gmirror_assess(steady(), resource, gm)
    summary = {n: ha_node_summary(v) for n, v in result["nodes"].items()}
    assert summary["f0"]["writable"] and not summary["f1"]["writable"]
    lines = ha_status_table(
        {
            "resource": "data",
            "backend": "gmirror",
            "writer": "f0",
            "epoch": 1,
            "nodes": summary,
            "lag": result["lag"],
            "warnings": [],
        }
    )
    assert any("/dev/mirror/gm0" in line and "in sync" in line for line in lines)


def test_planned_failover_is_safe_when_the_target_is_in_sync():
    resource, gm = resolve()
    assert ha_gmirror_assess(steady(), resource, gm, "failover", "f1")["safe"]


def test_planned_failover_is_refused_while_the_target_synchronises():
    resource, gm = resolve()
    states = steady("SYNCHRONIZING", ["SYNCHRONIZING"], synchronized=40)
    result = ha_gmirror_assess(states, resource, gm, "failover", "f1")
    assert not result["safe"]
    assert "not in sync with f0 (SYNCHRONIZING 40%)" in result["reasons"][0]


def test_planned_failover_is_refused_when_the_target_slice_is_detached():
    resource, gm = resolve()
    states = steady()
    states["f0"] = node(
        mirror(component("ada1p1", priority=1), syncid=3), dump={"syncid": 3}, record={"writer": "f0", "epoch": 1}
    )
    result = ha_gmirror_assess(states, resource, gm, "failover", "f1")
    assert "DETACHED" in " ".join(result["reasons"])


def test_an_interrupted_switch_goes_on_when_both_stopped_slices_carry_the_same_ids():
    resource, gm = resolve()
    states = {
        "f0": node(dump={"syncid": 2, "priority": 1}, record={"writer": "f0", "epoch": 1}),
        "f1": node(dump={"syncid": 2}, record={"writer": "f0", "epoch": 1}),
    }
    result = ha_gmirror_assess(states, resource, gm, "failover", "f1")
    assert result["safe"], result["reasons"]
    assert result["lag"]["f1"]["gm0"]["state"] == "STOPPED, same ids"


def test_an_interrupted_switch_is_refused_when_the_stopped_target_was_still_synchronising():
    resource, gm = resolve()
    states = {
        "f0": node(dump={"syncid": 2, "priority": 1}, record={"writer": "f0", "epoch": 1}),
        "f1": node(dump={"syncid": 2, "dflags": "SYNCHRONIZING"}, record={"writer": "f0", "epoch": 1}),
    }
    result = ha_gmirror_assess(states, resource, gm, "failover", "f1")
    assert any("incomplete copy" in reason for reason in result["reasons"])


def test_unplanned_failover_needs_the_acknowledgement():
    resource, gm = resolve()
    states = {"f0": None, "f1": steady()["f1"]}
    refused = ha_gmirror_assess(states, resource, gm, "failover", "f1")
    assert refused["unreachable"] == ["f0"] and "ha_accept_data_loss=true" in refused["reasons"][0]
    accepted = ha_gmirror_assess(states, resource, gm, "failover", "f1", accept_data_loss=True)
    assert accepted["safe"], accepted["reasons"]


def test_unplanned_failover_never_promotes_a_half_synchronised_slice():
    resource, gm = resolve()
    states = {
        "f0": None,
        "f1": node(dump={"syncid": 2, "dflags": "SYNCHRONIZING"}, record={"writer": "f0", "epoch": 1}),
    }
    result = ha_gmirror_assess(states, resource, gm, "failover", "f1", accept_data_loss=True)
    assert not result["safe"] and "incomplete copy" in result["reasons"][0]


def test_failover_to_a_slice_that_never_was_a_component_is_refused():
    resource, gm = resolve()
    states = steady()
    states["f1"] = node(record={"writer": "f0", "epoch": 1})
    result = ha_gmirror_assess(states, resource, gm, "failover", "f1")
    assert "carries no gmirror metadata" in result["reasons"][0]


def test_failover_to_a_slice_of_another_mirror_is_refused():
    resource, gm = resolve()
    states = steady(f1_dump={"syncid": 2, "mid": 42})
    result = ha_gmirror_assess(states, resource, gm, "failover", "f1")
    assert any("not a copy of this mirror" in reason for reason in result["reasons"])


def test_a_rerun_after_the_promotion_is_safe_and_keeps_the_epoch():
    resource, gm = resolve()
    states = {
        "f0": None,
        "f1": node(
            mirror(component("ada1p1"), configured=2, syncid=3), dump={"syncid": 3}, record={"writer": "f1", "epoch": 2}
        ),
    }
    result = ha_gmirror_assess(states, resource, gm, "failover", "f1", accept_data_loss=True)
    assert result["safe"] and result["authoritative"] == "f1" and result["epoch"] == 2


def test_a_returning_old_master_running_the_mirror_is_stale_and_fenced():
    resource, gm = resolve()
    states = {
        "f0": node(
            mirror(component("ada1p1", priority=1), configured=2),
            dump={"syncid": 2},
            record={"writer": "f0", "epoch": 1},
        ),
        "f1": node(
            mirror(component("ada1p1"), configured=2, syncid=3), dump={"syncid": 3}, record={"writer": "f1", "epoch": 2}
        ),
    }
    result = ha_gmirror_assess(states, resource, gm)
    assert result["authoritative"] == "f1" and result["stale"] == ["f0"] and result["safe"]
    assert "a returning old writer" in result["warnings"][0]


def test_two_writers_without_an_authority_record_are_a_split_brain():
    resource, gm = resolve()
    states = {n: node(mirror(component("ada1p1"), configured=2), dump={"syncid": 3}) for n in ("f0", "f1")}
    result = ha_gmirror_assess(states, resource, gm)
    assert not result["safe"] and "split brain" in result["reasons"][0]


def test_a_lost_follower_with_its_slice_still_attached_is_warned_about():
    resource, gm = resolve()
    states = {"f0": steady()["f0"], "f1": None}
    result = ha_gmirror_assess(states, resource, gm, "rejoin")
    assert result["safe"] and "rejoin.yml detaches it" in result["warnings"][0]


def test_a_broken_authority_record_is_a_reason():
    resource, gm = resolve()
    states = steady()
    states["f1"]["record"] = {"content": base64.b64encode(b'{"writer": "f0"}').decode()}
    result = ha_gmirror_assess(states, resource, gm)
    assert any('is not {"writer": NODE' in reason for reason in result["reasons"])


def test_a_missing_slice_is_a_reason():
    resource, gm = resolve()
    states = steady()
    states["f1"] = node(slice_missing=True, record={"writer": "f0", "epoch": 1})
    result = ha_gmirror_assess(states, resource, gm)
    assert "f1 has no slice /dev/ada1p1" in result["reasons"][0]


# ---------------------------------------------------------------- rejoin: the direction is never the operator's word


def after_failover(f0_dump, f0_record):
    """f1 writes gm0 alone (epoch 2, syncid 3); f0 is back with its mirror stopped."""
    return {
        "f0": node(dump=f0_dump, record=f0_record),
        "f1": node(
            mirror(component("ada1p1"), configured=1, syncid=3), dump={"syncid": 3}, record={"writer": "f1", "epoch": 2}
        ),
    }


def test_rejoin_of_a_planned_failover_loser_is_safe_and_targets_the_writer():
    resource, gm = resolve()
    result = ha_gmirror_assess(after_failover({"syncid": 2}, {"writer": "f1", "epoch": 2}), resource, gm, "rejoin")
    assert result["safe"], result["reasons"]
    assert result["authoritative"] == "f1"


def test_rejoin_toward_the_old_master_is_refused():
    resource, gm = resolve()
    states = after_failover({"syncid": 2}, {"writer": "f1", "epoch": 2})
    result = ha_gmirror_assess(states, resource, gm, "rejoin", "f0")
    assert "never the other way round" in result["reasons"][0]


def test_rejoin_refuses_a_follower_whose_slice_is_newer_by_the_metadata():
    resource, gm = resolve()
    states = after_failover({"syncid": 5}, {"writer": "f1", "epoch": 2})
    result = ha_gmirror_assess(states, resource, gm, "rejoin")
    assert "is newer by gmirror's own metadata (genid 0, syncid 5)" in result["reasons"][0]
    overridden = ha_gmirror_assess(states, resource, gm, "rejoin", overwrite_newer=True)
    assert overridden["safe"]


def test_rejoin_of_an_unplanned_failover_loser_needs_the_acknowledgement():
    resource, gm = resolve()
    states = after_failover({"syncid": 3}, {"writer": "f0", "epoch": 1})
    result = ha_gmirror_assess(states, resource, gm, "rejoin")
    assert "lost the role in an unplanned failover" in result["reasons"][0]
    assert ha_gmirror_assess(states, resource, gm, "rejoin", accept_data_loss=True)["safe"]


def test_rejoin_refuses_a_slice_of_another_mirror_but_takes_a_blank_one():
    resource, gm = resolve()
    foreign = after_failover({"syncid": 1, "mid": 42}, {"writer": "f1", "epoch": 2})
    assert "Clear it by hand" in ha_gmirror_assess(foreign, resource, gm, "rejoin")["reasons"][0]
    blank = after_failover(None, None)
    assert ha_gmirror_assess(blank, resource, gm, "rejoin")["safe"]


def test_rejoin_without_a_running_writer_is_refused():
    resource, gm = resolve()
    states = after_failover({"syncid": 2}, {"writer": "f1", "epoch": 2})
    states["f1"] = node(dump={"syncid": 3}, record={"writer": "f1", "epoch": 2})
    assert "does not run gm0" in ha_gmirror_assess(states, resource, gm, "rejoin")["reasons"][0]


def test_rejoin_without_any_record_or_writer_is_refused():
    resource, gm = resolve()
    states = {"f0": node(dump={"syncid": 2}), "f1": node(dump={"syncid": 2})}
    assert (
        "run failover.yml to the node whose data wins"
        in ha_gmirror_assess(states, resource, gm, "rejoin")["reasons"][0]
    )


# ---------------------------------------------------------------- metadata of a registered dump


def test_metadata_of_a_dump_and_of_a_blank_slice():
    dumped = {"rc": 0, "stdout": render_dump([{"provider": "/dev/ada1p1", "name": "gm0", "syncid": 4}]), "stderr": ""}
    assert ha_gmirror_metadata(dumped, "ada1p1")["syncid"] == 4
    blank = {"rc": 1, "stdout": "", "stderr": "Can't read metadata from /dev/ada1p1: Invalid argument."}
    assert ha_gmirror_metadata(blank, "ada1p1") is None
    with pytest.raises(AnsibleFilterError, match="gmirror dump of ada1p1 failed"):
        ha_gmirror_metadata({"rc": 1, "stdout": "", "stderr": "gmirror: Permission denied"}, "ada1p1")


def test_an_unreachable_node_reads_as_none():
    assert ha_gmirror_node_read({"__ha_info": {"unreachable": True}}) is None
