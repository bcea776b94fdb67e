"""chaos.net.rules: the exact commands per fault, checked without root (the netns tests run them)."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.net import rules
from chaos.net.rules import Check, Cmd, Plan, PlanError, plan, port_range_masks
from chaos.net.spec import KINDS, NetFault, parse_net_fault

PARAMS: dict[str, dict[str, object]] = {
    "delay": {"ms": 200, "jitter": 30},
    "loss": {"pct": 10},
    "burst_loss": {"p": 5, "r": 50},
    "duplicate": {"pct": 5},
    "reorder": {"pct": 25},
    "rate": {"kbit": 64},
    "blackhole": {},
    "sip_drop": {"method": "INVITE"},
    "sip_delay": {"method": "OPTIONS", "ms": 300},
}
IFACES = ["eth0", "eth1"]


def fault(kind: str, **extra: object) -> NetFault:
    return parse_net_fault({"kind": kind, **PARAMS[kind], **extra})


def all_combos() -> list[tuple[str, str, str, str]]:
    out = []
    for kind in KINDS:
        matches = ("sip",) if kind.startswith("sip_") else ("all", "sip", "media")
        for backend, direction, match in itertools.product(
            rules.BACKENDS[kind], ("egress", "ingress", "both"), matches
        ):
            out.append((kind, backend, direction, match))
    return out


COMBOS = all_combos()


def text(cmds: tuple[Cmd, ...] | list[Cmd]) -> str:
    return "\n".join(" ".join(c.argv) + "\n" + (c.stdin or "") for c in cmds)


def build(kind: str, backend: str, direction: str, match: str, fid: str = "ab12cd34") -> Plan:
    extra: dict[str, object] = {"direction": direction}
    if not kind.startswith("sip_"):
        extra["match"] = match
    if match == "media" and not kind.startswith("sip_"):
        extra["media_ports"] = (30000, 30999)
    return plan(fault(kind, **extra), IFACES, fid, backend, queue_num=4242)


@pytest.mark.parametrize(("kind", "backend", "direction", "match"), COMBOS)
def test_every_combination_plans(kind: str, backend: str, direction: str, match: str) -> None:
    p = build(kind, backend, direction, match)
    assert p.apply and p.revert
    assert p.backend == backend and p.kind == kind
    assert (p.queue is not None) == (backend == "nfqueue")
    for cmd in (*p.apply, *p.revert):
        assert cmd.argv[0] in ("nft", "iptables", "iptables-restore", "tc", "ip")
        assert all(isinstance(a, str) and a for a in cmd.argv)
        assert cmd.what


@pytest.mark.parametrize(("kind", "backend", "direction", "match"), COMBOS)
def test_every_rule_carries_the_fault_id(kind: str, backend: str, direction: str, match: str) -> None:
    p = build(kind, backend, direction, match)
    for cmd in p.apply:
        for line in (cmd.stdin or "").splitlines():
            if line.startswith(("add rule", "-A ")):
                assert "wobble:ab12cd34" in line, line
            if line.startswith(("add chain", ":")):
                assert "ab12cd34" in line, line
        if cmd.argv[:2] in (("tc", "class"), ("tc", "filter")) and "ffff:" not in cmd.argv:
            minor = rules.tc_minor("ab12cd34")
            assert f"b0b:{minor:x}" in cmd.argv or str(minor) in cmd.argv


@pytest.mark.parametrize(("kind", "backend", "direction", "match"), COMBOS)
def test_revert_undoes_every_object_apply_creates(kind: str, backend: str, direction: str, match: str) -> None:
    p = build(kind, backend, direction, match)
    applied, reverted = text(p.apply), text(p.revert)
    for chain in set(re.findall(r"add chain netdev wobble_chaos (\S+)", applied)):
        assert f"delete chain netdev wobble_chaos {chain}" in reverted
    for chain in set(re.findall(r"^:(\S+)", applied, re.MULTILINE)):
        assert f"-X {chain}" in reverted
    for builtin, chain in re.findall(r"^-A (POSTROUTING|PREROUTING) .* -j (\S+)", applied, re.MULTILINE):
        assert f"-D {builtin} -m comment --comment wobble:ab12cd34 -j {chain}" in reverted
    for dev, cls in re.findall(r"tc class add dev (\S+) parent b0b: classid (\S+)", applied):
        assert f"tc class del dev {dev} classid {cls}" in reverted
    for dev, prio in re.findall(r"tc filter add dev (\S+) parent b0b: protocol ip prio (\d+)", applied):
        assert f"tc filter del dev {dev} parent b0b: protocol ip prio {prio}" in reverted
    for ifb in re.findall(r"ip link add (\S+) type ifb", applied):
        assert f"ip link del dev {ifb}" in reverted
    # Revert never fails on what is already gone.
    assert all(c.ok_errors for c in p.revert)


@pytest.mark.parametrize(("kind", "backend", "direction", "match"), COMBOS)
def test_shared_objects_go_only_when_empty(kind: str, backend: str, direction: str, match: str) -> None:
    """The nft table, an htb root, an ifb and an ingress qdisc are shared: deleted under a condition."""
    p = build(kind, backend, direction, match)
    for cmd in p.revert:
        a = cmd.argv
        shared = (
            a[:3] == ("nft", "delete", "table")
            or (a[:3] == ("tc", "qdisc", "del"))
            or a[:3] == ("ip", "link", "del")
            or (a[:3] == ("tc", "filter", "del") and "ffff:" in a)
        )
        if shared:
            assert cmd.when, cmd.shell()
    # Creating a shared object is skipped when it is already there.
    for cmd in p.apply:
        a = cmd.argv
        if a[:3] in (("tc", "qdisc", "add"), ("ip", "link", "add")) and ("root" in a or "ingress" in a or "ifb" in a):
            assert cmd.when, cmd.shell()


@settings(max_examples=60)
@given(
    st.sampled_from(COMBOS),
    st.sampled_from(COMBOS),
    st.from_regex(r"[a-z0-9]{8}", fullmatch=True),
    st.from_regex(r"[a-z0-9]{8}", fullmatch=True),
)
def test_two_faults_never_touch_each_others_objects(
    a: tuple[str, str, str, str], b: tuple[str, str, str, str], id_a: str, id_b: str
) -> None:
    if id_a == id_b or rules.tc_minor(id_a) == rules.tc_minor(id_b):
        return
    pa, pb = build(*a, fid=id_a), build(*b, fid=id_b)
    minor_b = rules.tc_minor(id_b)
    for cmd in pa.revert:
        if cmd.when:
            continue  # shared-object GC, conditional on emptiness
        line = " ".join(cmd.argv) + " " + (cmd.stdin or "")
        assert id_b not in line
        assert f"b0b:{minor_b:x}" not in cmd.argv and f"prio {minor_b}" not in line
    assert {c.argv for c in pa.apply}.isdisjoint({c.argv for c in pb.apply if "add" in c.argv and not c.when})


def test_nft_loss_rules() -> None:
    p = plan(fault("loss", match="sip"), ["eth0"], "f1", "nft")
    (cmd,) = p.apply
    assert cmd.argv == ("nft", "-f", "-")
    assert cmd.stdin is not None
    lines = cmd.stdin.splitlines()
    assert lines[0] == "add table netdev wobble_chaos"
    assert 'add rule netdev wobble_chaos f_f1_act numgen random mod 1000 < 100 drop comment "wobble:f1"' in lines
    assert (
        'add chain netdev wobble_chaos f_f1_e0 { type filter hook egress device "eth0" priority 0; policy accept; }'
        in lines
    )
    assert 'add rule netdev wobble_chaos f_f1_e0 udp sport 5060 goto f_f1_act comment "wobble:f1"' in lines
    assert 'add rule netdev wobble_chaos f_f1_e0 udp dport 5060 goto f_f1_act comment "wobble:f1"' in lines
    gc = p.revert[-1]
    assert gc.argv == ("nft", "delete", "table", "netdev", "wobble_chaos")
    assert gc.when[0].holds("table netdev wobble_chaos {\n}\n")
    assert not gc.when[0].holds("table netdev wobble_chaos {\n\tchain f_x_e0 {\n\t}\n}\n")
    # Base chains go before the chain they jump to.
    deleted = [c.what for c in p.revert]
    assert deleted.index("nft: delete chain f_f1_e0") < deleted.index("nft: delete chain f_f1_act")


def test_nft_loss_percent_resolution_and_extremes() -> None:
    assert "< 1 drop" in (plan(fault("loss", pct=0.1), ["e"], "a", "nft").apply[0].stdin or "")
    assert "numgen" not in (plan(fault("loss", pct=100), ["e"], "a", "nft").apply[0].stdin or "")
    assert "< 0 drop" in (plan(fault("loss", pct=0), ["e"], "a", "nft").apply[0].stdin or "")
    both = plan(fault("blackhole", direction="both"), ["e"], "a", "nft").apply[0].stdin or ""
    assert "hook egress" in both and "hook ingress" in both and " drop comment" in both
    media = plan(fault("loss", match="media", media_ports="30000-30100"), ["e"], "a", "nft").apply[0].stdin or ""
    assert "udp sport 30000-30100 goto" in media and "udp dport 30000-30100 goto" in media
    allu = plan(fault("loss"), ["e"], "a", "nft").apply[0].stdin or ""
    assert "meta l4proto udp goto" in allu


def test_nft_sip_drop_matches_the_method_bytes() -> None:
    p = plan(fault("sip_drop", method="INVITE"), ["eth0"], "s1", "nft")
    assert "@th,64,56 0x494e5649544520 drop" in (p.apply[0].stdin or "")
    assert rules.nft_method_match("REGISTER") == "@th,64,72 0x524547495354455220"
    assert rules.nft_method_match("OPTIONS") == "@th,64,64 0x4f5054494f4e5320"


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS", "REGISTER"])
def test_u32_method_match_reads_back(method: str) -> None:
    """Evaluate the u32 expression on a fake IPv4/UDP packet (with and without IP options)."""
    expr = rules.u32_method_match(method)
    for ihl in (5, 6):
        for payload, expect in (
            (method.encode() + b" sip:x SIP/2.0", True),
            (b"SIP/2.0 200 OK", False),
            (method.encode() + b"X", False),
        ):
            header = bytes([0x40 | ihl]) + bytes(ihl * 4 - 1) + bytes(8)
            assert _u32_eval(expr, header + payload) is expect


def _u32_eval(expr: str, pkt: bytes) -> bool:
    """A tiny interpreter for the u32 subset rules emits: `0>>22&0x3C@N[>>S]=0xV` joined by &&."""
    for test in expr.split("&&"):
        lhs, value = test.split("=")
        m = re.fullmatch(r"0>>22&0x3C@(\d+)(?:>>(\d+))?", lhs)
        assert m, lhs
        word0 = int.from_bytes(pkt[0:4], "big")
        at = ((word0 >> 22) & 0x3C) + int(m.group(1))
        if at + 4 > len(pkt):
            return False
        word = int.from_bytes(pkt[at : at + 4], "big") >> int(m.group(2) or 0)
        if word != int(value, 16):
            return False
    return True


def test_nfqueue_rules() -> None:
    p = plan(fault("sip_delay", direction="both"), ["eth0"], "q1", "nfqueue", queue_num=777, mark=0x40000)
    (cmd,) = p.apply
    assert cmd.argv == ("iptables-restore", "-w", "-n")
    body = cmd.stdin or ""
    assert body.startswith("*mangle\n") and body.endswith("COMMIT\n")
    assert ":WOBBLE_q1_E - [0:0]" in body and ":WOBBLE_q1_I - [0:0]" in body
    assert "-A POSTROUTING -m comment --comment wobble:q1 -j WOBBLE_q1_E" in body
    assert "-A PREROUTING -m comment --comment wobble:q1 -j WOBBLE_q1_I" in body
    assert "-A WOBBLE_q1_E -o eth0 -p udp -m multiport --ports 5060 -m mark ! --mark 0x40000/0x40000" in body
    assert "-A WOBBLE_q1_I -i eth0 " in body
    assert '-m u32 --u32 "0>>22&0x3C@8=0x4f505449&&0>>22&0x3C@12=0x4f4e5320"' in body
    assert "-j NFQUEUE --queue-num 777 --queue-bypass" in body
    assert p.queue is not None and p.queue.num == 777 and p.queue.mark_bit == 0x40000
    assert p.queue.params.delay_ms == 300 and p.queue.params.immediate_pct == 0
    media = plan(fault("delay", match="media", media_ports="30000-30999"), ["e"], "m", "nfqueue").apply[0].stdin
    assert "--ports 30000:30999" in (media or "")
    assert plan(fault("loss"), ["e"], "m", "nfqueue").queue.params.loss_pct == 10  # type: ignore[union-attr]
    assert plan(fault("duplicate"), ["e"], "m", "nfqueue").queue.copy_packet  # type: ignore[union-attr]
    assert not plan(fault("delay"), ["e"], "m", "nfqueue").queue.copy_packet  # type: ignore[union-attr]
    with pytest.raises(PlanError, match="queue number"):
        plan(fault("delay"), ["e"], "m", "nfqueue", queue_num=70000)
    for bad in (0x3, 0x1, 0x30000, 0):
        with pytest.raises(PlanError, match="not one bit"):
            plan(fault("delay"), ["e"], "m", "nfqueue", mark=bad)


def test_mark_bits() -> None:
    """Each live NFQUEUE fault has its own mark bit; the warden picks one no live rule uses."""
    bits = {rules.mark_bit(f"{i:08x}") for i in range(500)}
    assert len(bits) == 16 and all(b & 0xFFFF0000 == b and b.bit_count() == 1 for b in bits)
    used: set[int] = set()
    for i in range(16):
        bit = rules.mark_bit(f"f{i}", used)
        assert bit not in used
        used.add(bit)
    with pytest.raises(PlanError, match="mark bits are taken"):
        rules.mark_bit("one-too-many", used)
    save = (
        "\n".join(c.stdin or "" for c in plan(fault("delay"), ["e"], "m1", "nfqueue", mark=0x200000).apply)
        + "-A POSTROUTING -m mark --mark 0x1/0x3 -j ACCEPT\n-A WOBBLE_x_E -m mark ! --mark 0x10000/0x10000 -j NFQUEUE\n"
    )
    assert rules.mark_bits_in_use(save) == {0x200000, 0x10000}


def test_delay_params_per_kind() -> None:
    dp = rules.delay_params
    assert dp(fault("reorder")).immediate_pct == 25 and dp(fault("reorder")).delay_ms == 20
    assert dp(fault("blackhole")).loss_pct == 100
    ge = dp(fault("burst_loss")).ge
    assert ge is not None and (ge.p, ge.r, ge.h, ge.k) == (5, 50, 0, 100)
    assert dp(fault("sip_delay", pct=30)).immediate_pct == 70
    assert dp(fault("sip_drop")).loss_pct == 100
    with pytest.raises(PlanError):
        dp(fault("rate"))


def test_htb_rate_tree() -> None:
    p = plan(fault("rate", match="sip"), ["eth0"], "r1", "htb")
    minor = rules.tc_minor("r1")
    cls = f"b0b:{minor:x}"
    argvs = [" ".join(c.argv) for c in p.apply]
    assert argvs[0] == "tc qdisc add dev eth0 root handle b0b: htb"
    assert f"tc class add dev eth0 parent b0b: classid {cls} htb rate 64kbit ceil 64kbit quantum 1514" in argvs
    assert f"tc qdisc add dev eth0 parent {cls} handle {minor:x}: bfifo limit 3028" in argvs
    filters = [a for a in argvs if a.startswith("tc filter add")]
    assert len(filters) == 2
    assert all(f"prio {minor} u32 match ip protocol 17 0xff match u8 0x05 0x0f at 0" in f for f in filters)
    assert any("match ip sport 5060 0xffff" in f for f in filters) and any("match ip dport 5060" in f for f in filters)
    root = p.apply[0]
    assert root.when[0].holds("qdisc noqueue 0: root refcnt 2")
    assert not root.when[0].holds("qdisc htb b0b: root refcnt 2 r2q 10 default 0")
    big = plan(fault("rate", kbit=10000), ["eth0"], "r1", "htb")
    assert "250000" in " ".join(big.apply[2].argv)  # ~200 ms of queue at the rate


def test_htb_ingress_goes_through_an_ifb() -> None:
    p = plan(fault("rate", direction="ingress"), ["eth0"], "r2", "htb")
    ifb = rules.ifb_name("eth0")
    argvs = [" ".join(c.argv) for c in p.apply]
    assert argvs[:4] == [
        f"ip link add {ifb} type ifb",
        f"ip link set dev {ifb} up",
        "tc qdisc add dev eth0 handle ffff: ingress",
        f"tc filter add dev eth0 parent ffff: protocol ip prio {rules.REDIRECT_PREF} u32 match ip protocol 17 0xff "
        f"action mirred egress redirect dev {ifb}",
    ]
    assert argvs[4] == f"tc qdisc add dev {ifb} root handle b0b: htb"
    rv = [" ".join(c.argv) for c in p.revert]
    assert rv.index(f"ip link del dev {ifb}") < rv.index("tc qdisc del dev eth0 ingress")
    assert p.notes


def test_netem_leaves() -> None:
    def leaf(kind: str, **kw: object) -> list[str]:
        return rules.netem_args(fault(kind, **kw))

    assert leaf("delay", jitter=0) == ["delay", "200ms"]
    assert leaf("delay") == ["delay", "200ms", "30ms", "rate", "100gbit"]
    assert leaf("loss") == ["loss", "random", "10%"]
    assert leaf("burst_loss", h=10, k=99) == ["loss", "gemodel", "5%", "50%", "90%", "1%"]
    assert leaf("duplicate") == ["duplicate", "5%"]
    assert leaf("reorder") == ["delay", "20ms", "reorder", "25%"]
    assert leaf("blackhole") == ["loss", "random", "100%"]
    p = plan(fault("delay"), ["eth0"], "n1", "netem")
    assert any(c.argv[-5:] == ("delay", "200ms", "30ms", "rate", "100gbit") for c in p.apply)
    assert any("netem" in c.argv and "limit" in c.argv for c in p.apply)


def test_refusals() -> None:
    with pytest.raises(PlanError, match="cannot run on backend"):
        plan(fault("delay"), ["eth0"], "x", "nft")
    with pytest.raises(PlanError, match="cannot run on backend"):
        plan(fault("rate"), ["eth0"], "x", "netem")
    with pytest.raises(PlanError, match="fault id"):
        plan(fault("loss"), ["eth0"], "bad id", "nft")
    with pytest.raises(PlanError, match="fault id"):
        plan(fault("loss"), ["eth0"], "x" * 17, "nft")
    with pytest.raises(PlanError, match="no network interface"):
        plan(fault("loss"), [], "x", "nft")
    with pytest.raises(PlanError, match="cannot be used"):
        plan(fault("loss"), ["lo"], "x", "nft")
    with pytest.raises(PlanError, match="cannot be used"):
        plan(fault("loss"), ['eth0"; flush ruleset'], "x", "nft")


@given(st.integers(0, 65535), st.integers(0, 65535))
def test_port_range_masks_cover_exactly(a: int, b: int) -> None:
    lo, hi = min(a, b), max(a, b)
    blocks = port_range_masks(lo, hi)
    total = 0
    prev_end = lo - 1
    for value, mask in blocks:
        size = (~mask & 0xFFFF) + 1
        assert value & ~mask & 0xFFFF == 0  # aligned
        assert mask == (0xFFFF << (size.bit_length() - 1)) & 0xFFFF  # a prefix mask
        assert value == prev_end + 1  # contiguous, in order
        prev_end = value + size - 1
        total += size
    assert prev_end == hi and total == hi - lo + 1
    assert len(blocks) <= 32


@given(st.integers(1, 65535), st.integers(1, 65535), st.integers(0, 65535))
def test_port_range_masks_match_like_u32(a: int, b: int, port: int) -> None:
    lo, hi = min(a, b), max(a, b)
    hit = any(port & mask == value for value, mask in port_range_masks(lo, hi))
    assert hit == (lo <= port <= hi)


def test_numbers_are_stable_and_in_range() -> None:
    ids = [f"{i:08x}" for i in range(3000)]
    minors = [rules.tc_minor(i) for i in ids]
    assert all(0x100 <= m <= 0xFEFF and m != rules.REDIRECT_PREF for m in minors)
    assert rules.tc_minor("abc") == rules.tc_minor("abc")
    assert all(1000 <= rules.default_queue_num(i) < 61000 for i in ids)
    assert all(len(rules.ifb_name(f"eth{i}")) <= 15 for i in range(100))
    assert len(rules.ipt_chain("a" * 16, "ingress")) <= 28


def test_check_semantics() -> None:
    c = Check(("x",), r"\bhtb b0b:", present=True)
    assert c.holds("qdisc htb b0b: root") and not c.holds("") and not c.holds("qdisc tbf 8001: root")
    assert Check(("x",), "chain ", present=False).holds("")


def test_cmd_shell_is_readable() -> None:
    c = Cmd(("tc", "qdisc", "add", "dev", "eth0"), "x", stdin="a\nb\n")
    assert c.shell() == "tc qdisc add dev eth0 <<< a; b"
    assert "'a b'" in Cmd(("echo", "a b"), "x").shell()


NFT_LISTING = """table netdev wobble_chaos {
\tchain f_aa_e0 {
\t\ttype filter hook egress device "eth0" priority filter; policy accept;
\t\tmeta l4proto udp goto f_aa_act comment "wobble:aa"
\t}

\tchain f_aa_act {
\t\tnumgen random mod 1000 < 100 drop comment "wobble:aa"
\t}

\tchain f_bb_i0 {
\t\ttype filter hook ingress device "eth0" priority filter; policy accept;
\t}
}
"""
IPT_SAVE = """# Generated by iptables-save v1.8.9 (nf_tables)
*mangle
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:WOBBLE_aa_E - [0:0]
:WOBBLE_bb_I - [0:0]
-A PREROUTING -m comment --comment "wobble:bb" -j WOBBLE_bb_I
-A POSTROUTING -m comment --comment "wobble:aa" -j WOBBLE_aa_E
-A POSTROUTING -o eth0 -j MARK --set-xmark 0x1/0xffffffff
-A WOBBLE_aa_E -o eth0 -p udp -m comment --comment "wobble:aa" -j NFQUEUE --queue-num 5 --queue-bypass
COMMIT
"""


def test_cleanup_discovers_one_faults_objects() -> None:
    assert rules.nft_fault_chains(NFT_LISTING, "aa") == ["f_aa_e0", "f_aa_act"]
    assert rules.nft_fault_chains(NFT_LISTING, None) == ["f_aa_e0", "f_bb_i0", "f_aa_act"]
    jumps, chains = rules.ipt_wobble(IPT_SAVE, "aa")
    assert jumps == [
        (
            "iptables",
            "-w",
            "-t",
            "mangle",
            "-D",
            "POSTROUTING",
            "-m",
            "comment",
            "--comment",
            "wobble:aa",
            "-j",
            "WOBBLE_aa_E",
        )
    ]
    assert chains == ["WOBBLE_aa_E"]
    jumps_all, chains_all = rules.ipt_wobble(IPT_SAVE, None)
    assert len(jumps_all) == 2 and chains_all == ["WOBBLE_aa_E", "WOBBLE_bb_I"]
    cmds = rules.cleanup_commands("aa", ["lo", "eth0"], "table netdev wobble_chaos\n", NFT_LISTING, IPT_SAVE)
    joined = text(cmds)
    assert "f_bb_i0" not in joined and "WOBBLE_bb_I" not in joined and "MARK" not in joined
    assert "delete chain netdev wobble_chaos f_aa_act" in joined
    assert f"classid b0b:{rules.tc_minor('aa'):x}" in joined


def test_cleanup_all() -> None:
    ifb = rules.ifb_name("eth0")
    devices = ["lo", "eth0", ifb, "wbp1234ab"]
    tables = "table ip mangle\ntable netdev wobble_chaos\ntable inet wobble_chaos\ntable netdev wobble_probe_12ab\n"
    cmds = rules.cleanup_commands(None, devices, tables, NFT_LISTING, IPT_SAVE)
    argvs = [" ".join(c.argv) for c in cmds]
    assert "nft delete table netdev wobble_chaos" in argvs and "nft delete table inet wobble_chaos" in argvs
    assert "nft delete table netdev wobble_probe_12ab" in argvs
    assert "nft delete table ip mangle" not in argvs
    assert "iptables -w -t mangle -X WOBBLE_bb_I" in argvs
    assert not any("MARK" in a for a in argvs)
    assert f"ip link del dev {ifb}" in argvs and "ip link del dev wbp1234ab" in argvs
    assert "tc qdisc del dev eth0 root" in argvs and "tc qdisc del dev lo root" not in argvs
    assert all(c.ok_errors for c in cmds)
    with pytest.raises(PlanError):
        rules.cleanup_commands("no way", [], "", "", "")
