# PRIVATE: internal to freebsd_ha.storage, not a public API; it may change without notice.
# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CARP (carp(4)) argv builders, parsers and the state/advskew/demotion planner (pure: text in, data out)."""

from __future__ import annotations

import re
import shlex

from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError

CARP_STATES = ("INIT", "BACKUP", "MASTER")
# Pre-10 ifconfig printed "<UNKNOWN>" for a state number past the table.
UNKNOWN_STATE = "<UNKNOWN>"
SYSCTL_CARP_TREE = "net.inet.carp"
DEMOTION_OID = "net.inet.carp.demotion"
# carp(4): advskew is 0..254; the kernel caps advskew + demotion at CARP_MAXSKEW (240), the
# value a fully demoted node advertises, so it is the "backup" skew of method=advskew.
ADVSKEW_MIN, ADVSKEW_MAX = 0, 254
CARP_MAXSKEW = 240
VHID_MIN, VHID_MAX = 1, 255
ADVBASE_MIN, ADVBASE_MAX = 1, 255
# ifconfig copies the pass with strlcpy into CARP_KEY_LEN (20) bytes: 19 characters survive.
CARP_KEY_MAX = 19

_HEADER_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_.:-]*?):\s+flags=([0-9a-fA-F]+)<([^>]*)>(.*)$")
# `carp: MASTER vhid 1 advbase 1 advskew 0`, with ` key "…"` under `ifconfig -k`; the
# `, peer 224.0.0.18` tail is an older single-line spelling reported by third parties.
_CARP_RE = re.compile(
    r"^\s*carp:\s+(\S+)\s+vhid\s+(\d+)\s+advbase\s+(\d+)\s+advskew\s+(\d+)"
    r'(?:\s+key\s+"([^"]*)")?(?:,\s*peer\s+(\S+))?$'
)
# FreeBSD 14+: a second line per vhid, `peer <IPv4> peer6 <IPv6>`.
_PEER_RE = re.compile(r"^\s+peer\s+(\S+)\s+peer6\s+(\S+)$")
_VRRP_RE = re.compile(r"^\s*vrrp:\s+(\S+)\s+vrid\s+(\d+)\s+prio\s+(\d+)\s+interval\s+(\d+)$")
_INET_RE = re.compile(r"^\s+(inet6?)\s+(\S+)(.*)$")
_SYSCTL_RE = re.compile(r"^(net\.inet\.carp\.[A-Za-z0-9_]+):\s*(-?\d+)$")
_RC_ALIAS_RE = re.compile(r"^ifconfig_([A-Za-z0-9_.]+?)_alias(\d+)=(.*)$")
_IFNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*[0-9]$")
# ASCII digits only: str.isdigit() also accepts other scripts' digits.
_DIGITS_RE = re.compile(r"^[0-9]+$")


class ParseError(ValueError):
    """Output of ifconfig or sysctl did not have the documented shape."""


# ---------------------------------------------------------------- validation


def validate_interface(name):
    """Return name if it looks like a FreeBSD interface name (em0, vlan316, lagg0.100); raise StateError."""
    if not isinstance(name, str) or not _IFNAME_RE.match(name):
        raise StateError(f"invalid interface name {name!r}: give a FreeBSD interface such as em0, vlan316 or lagg0")
    return name


def validate_range(label, value, low, high):
    """Return value if low <= value <= high; raise StateError naming the option otherwise."""
    if value is not None and not low <= value <= high:
        raise StateError(f"{label} must be between {low} and {high}, got {value}")
    return value


# ---------------------------------------------------------------- argv builders (tails after the tool)


def build_show_argv(interface):
    """Return `ifconfig <if>` (the tail), which prints the interface's addresses and carp lines."""
    return [interface]


def build_sysctl_read_argv():
    """Return `sysctl net.inet.carp`, every CARP knob as `name: value` (exists only with carp loaded)."""
    return [SYSCTL_CARP_TREE]


def build_state_argv(interface, vhid, state):
    """Return `ifconfig <if> vhid <N> state master|backup`."""
    return [interface, "vhid", str(vhid), "state", state.lower()]


def build_advskew_argv(interface, vhid, advskew):
    """Return `ifconfig <if> vhid <N> advskew <S>`."""
    return [interface, "vhid", str(vhid), "advskew", str(advskew)]


def build_demotion_argv(delta):
    """Return `sysctl net.inet.carp.demotion=<delta>`: the kernel ADDS a written value to the counter."""
    return [f"{DEMOTION_OID}={int(delta)}"]


# ---------------------------------------------------------------- parsers


def parse_carp_line(line):
    """Return {state, vhid, advbase, advskew, key, peer, peer6} from one `carp:` line; ParseError otherwise."""
    match = _CARP_RE.match(line.rstrip())
    if not match:
        raise ParseError(f"unrecognised carp line: {line.strip()!r}")
    state, vhid, advbase, advskew, key, peer = match.groups()
    if state not in CARP_STATES and state != UNKNOWN_STATE:
        raise ParseError(f"unknown CARP state {state!r} in: {line.strip()!r}")
    return {
        "state": state,
        "vhid": int(vhid),
        "advbase": int(advbase),
        "advskew": int(advskew),
        "key": key,
        "peer": peer,
        "peer6": None,
        "addresses": [],
    }


def parse_peer_line(line):
    """Return (peer, peer6) from a FreeBSD 14 `peer <IPv4> peer6 <IPv6>` line; ParseError otherwise."""
    match = _PEER_RE.match(line.rstrip())
    if not match:
        raise ParseError(f"unrecognised peer line: {line.strip()!r}")
    return match.group(1), match.group(2)


def _parse_address(line):
    """Return {family, address, vhid} for an inet/inet6 line; vhid is None when the address has none."""
    family, address, rest = _INET_RE.match(line).groups()
    words = rest.split()
    vhid = None
    if "vhid" in words:
        index = words.index("vhid")
        if index + 1 >= len(words) or not _DIGITS_RE.match(words[index + 1]):
            raise ParseError(f"address line with a malformed vhid: {line.strip()!r}")
        vhid = int(words[index + 1])
    return {"family": family, "address": address.split("/")[0].split("%")[0], "vhid": vhid}


def parse_ifconfig(text):
    """Return {ifname: {flags, up, addresses, carp, vrrp}} from `ifconfig [-k] [-a|<if>]` output.

    ifconfig prints driver-specific attribute lines (options=, ether, media:, groups:, vlan:, ...)
    whose set is open, so attribute lines of other kinds are accepted inside an interface block
    and not interpreted. What the parser reads it checks strictly: a line outside any block, a
    malformed carp/peer/vrrp line, a peer line not after a carp line, or a vhid tag that is not a
    number raises ParseError with the line. Addresses tagged `vhid N` are attached to that vhid.
    """
    interfaces = {}
    current = None
    last_carp = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            continue
        header = _HEADER_RE.match(line)
        if header and not line[0].isspace():
            name, _hexflags, flags, _rest = header.groups()
            current = interfaces[name] = {
                "flags": [flag for flag in flags.split(",") if flag],
                "up": "UP" in flags.split(","),
                "addresses": [],
                "carp": [],
                "vrrp": [],
            }
            last_carp = None
            continue
        if current is None or not line[0].isspace():
            raise ParseError(f"line outside an interface block: {line!r}")
        stripped = line.strip()
        if stripped.startswith("carp:"):
            last_carp = parse_carp_line(line)
            current["carp"].append(last_carp)
            continue
        if stripped.startswith("peer ") or stripped.startswith("peer6 "):
            if last_carp is None or last_carp["peer6"] is not None:
                raise ParseError(f"peer line not directly after a carp or vrrp line: {line!r}")
            last_carp["peer"], last_carp["peer6"] = parse_peer_line(line)
            continue
        last_carp = None
        if stripped.startswith("vrrp:"):
            match = _VRRP_RE.match(line)
            if not match:
                raise ParseError(f"unrecognised vrrp line: {stripped!r}")
            state, vrid, prio, interval = match.groups()
            last_carp = {"state": state, "vrid": int(vrid), "prio": int(prio), "interval": int(interval)}
            last_carp.update(peer=None, peer6=None)
            current["vrrp"].append(last_carp)
        elif _INET_RE.match(line):
            current["addresses"].append(_parse_address(line))
    for name, block in interfaces.items():
        _attach_addresses(name, block)
    return interfaces


def _attach_addresses(name, block):
    by_vhid = {entry["vhid"]: entry for entry in block["carp"]}
    for address in block["addresses"]:
        if address["vhid"] in by_vhid:
            by_vhid[address["vhid"]]["addresses"].append(address["address"])
    # Before FreeBSD 10 each vhid was its own carpN interface and its addresses carried no tag.
    if name.startswith("carp") and len(block["carp"]) == 1 and not any(a["vhid"] for a in block["addresses"]):
        block["carp"][0]["addresses"] = [a["address"] for a in block["addresses"]]


def find_vhid(interfaces, interface, vhid):
    """Return the carp entry of vhid on interface, or raise StateError saying what the interface has."""
    if interface not in interfaces:
        raise StateError(f"interface {interface} is not in the ifconfig output (found: {', '.join(interfaces)})")
    block = interfaces[interface]
    for entry in block["carp"]:
        if entry["vhid"] == vhid:
            return entry
    if any(entry["vrid"] == vhid for entry in block["vrrp"]):
        raise StateError(f"vhid {vhid} on {interface} runs VRRP, not CARP; this module manages CARP vhids only")
    present = ", ".join(str(entry["vhid"]) for entry in block["carp"]) or "none"
    raise StateError(
        f"vhid {vhid} does not exist on {interface} (CARP vhids there: {present}); configure the CARP address first "
        f"(role freebsd_ha.storage.carp, or ifconfig {interface} vhid {vhid} pass <pass> alias <address>/32) - "
        "`ifconfig ... vhid N state` would create an empty vhid instead"
    )


def parse_sysctl_carp(text):
    """Return {short name: int} from `sysctl net.inet.carp` (`net.inet.carp.preempt: 1` -> {'preempt': 1})."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        match = _SYSCTL_RE.match(line)
        if not match:
            raise ParseError(f"unrecognised sysctl line: {line!r}")
        values[match.group(1)[len(SYSCTL_CARP_TREE) + 1 :]] = int(match.group(2))
    return values


def is_carp_missing_error(stderr):
    """True when sysctl says the net.inet.carp tree does not exist (carp.ko not loaded)."""
    return f"unknown oid '{SYSCTL_CARP_TREE}" in stderr


def is_missing_interface_error(stderr):
    """True when ifconfig says the interface does not exist."""
    return "does not exist" in stderr


def parse_alias_value(value):
    """Return {family, vhid, advbase, advskew, pass, address, prefixlen} from an rc.conf CARP alias value.

    rc.conf(5)/carp(4) spelling: `[inet|inet6] vhid N [advbase B] [advskew S] [pass P] alias ADDR/LEN`,
    keywords in any order. A value without `vhid` is not a CARP alias and returns None.
    """
    words = shlex.split(value)
    if "vhid" not in words:
        return None
    result = {"family": "inet", "vhid": None, "advbase": None, "advskew": None, "pass": None, "address": None}
    numbers = {"vhid", "advbase", "advskew"}
    index = 0
    while index < len(words):
        word = words[index]
        if word in ("inet", "inet6"):
            result["family"] = word
        elif word in (*numbers, "pass"):
            if index + 1 >= len(words):
                raise ParseError(f"{word} without a value in alias {value!r}")
            index += 1
            if word in numbers and not _DIGITS_RE.match(words[index]):
                raise ParseError(f"{word} {words[index]!r} is not a number in alias {value!r}")
            result[word] = int(words[index]) if word in numbers else words[index]
        elif word == "alias":
            pass
        elif result["address"] is None and re.match(r"^[0-9A-Fa-f.:]+(/\d+)?$", word):
            result["address"] = word
        else:
            raise ParseError(f"unexpected word {word!r} in CARP alias {value!r}")
        index += 1
    if result["address"] is None:
        raise ParseError(f"CARP alias without an address: {value!r}")
    if ":" in result["address"]:
        result["family"] = "inet6"
    return result


def parse_rc_conf_aliases(text):
    """Return [{interface, index, ...parse_alias_value}] for each CARP `ifconfig_<if>_aliasN=` line of rc.conf text."""
    aliases = []
    for raw in text.splitlines():
        line = raw.strip()
        match = _RC_ALIAS_RE.match(line)
        if not match:
            continue
        words = shlex.split(match.group(3), comments=True)
        if len(words) != 1:
            raise ParseError(f"rc.conf value is not one quoted word: {line!r}")
        parsed = parse_alias_value(words[0])
        if parsed is not None:
            aliases.append({"interface": match.group(1), "index": int(match.group(2)), **parsed})
    return aliases


# ---------------------------------------------------------------- planner


def target_advskew(state, method, advskew):
    """Return the advskew the run should leave (None: leave it), from state/method/advskew options."""
    if method == "advskew" and state is not None and advskew is None:
        return ADVSKEW_MIN if state == "master" else CARP_MAXSKEW
    return advskew


def plan_carp(interface, entry, carp_sysctl, *, state=None, method="state", advskew=None, demotion=None):
    """Return the ordered steps [(tool, argv tail)] that bring the vhid to the wanted state.

    Order: demotion (global), then advskew, then state, so a forced state is taken with the
    advertisement values the node will keep. Refuses (StateError) to force the state of a vhid in
    INIT: its interface is down or it has no address, and forcing MASTER there sends nothing useful.
    """
    steps = []
    if demotion is not None:
        current = carp_sysctl.get("demotion")
        if current is None:
            raise StateError(f"sysctl {SYSCTL_CARP_TREE} did not report demotion; cannot adjust it")
        if current != demotion:
            steps.append(("sysctl", build_demotion_argv(demotion - current)))
    skew = target_advskew(state, method, advskew)
    if skew is not None and skew != entry["advskew"]:
        steps.append(("ifconfig", build_advskew_argv(interface, entry["vhid"], skew)))
    if state is not None and entry["state"] != state.upper():
        if entry["state"] not in ("MASTER", "BACKUP"):
            raise StateError(
                f"vhid {entry['vhid']} on {interface} is {entry['state']} (interface down or no address on the vhid); "
                f"bring {interface} up and check the CARP address before forcing {state.upper()}"
            )
        steps.append(("ifconfig", build_state_argv(interface, entry["vhid"], state)))
    return steps


def plan_diff(entry, carp_sysctl, steps, *, state=None, method="state", advskew=None, demotion=None):
    """Return (before, after) dicts of the keys the steps change (state, advskew, demotion)."""
    before, after = {}, {}
    for tool, argv in steps:
        if tool == "sysctl":
            before["demotion"], after["demotion"] = carp_sysctl["demotion"], demotion
        elif "advskew" in argv:
            before["advskew"], after["advskew"] = entry["advskew"], target_advskew(state, method, advskew)
        else:
            before["state"], after["state"] = entry["state"], state.upper()
    return before, after
