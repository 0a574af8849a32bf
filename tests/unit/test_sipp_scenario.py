"""The lab carrier's generated SIPp scenario and how its log is read: calls per number, per
sending Asterisk server (by its SIP port), the carrier's clock and the throttling verdicts.
(The scenario's behaviour against real SIP is proven on the lab: tests/e2e/test_lab_scale.py.)"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path

from dialler.lab.lab import MAX_ASTERISK_SERVERS, Lab, LabPorts
from dialler.lab.numberplan import THROTTLE_LIMIT
from dialler.lab.sipp import count_calls, read_invites, render_scenario


def test_scenario_is_well_formed_and_keeps_the_window_in_globals() -> None:
    root = ET.fromstring(render_scenario().encode("iso-8859-1"))
    globals_ = root.find("Global")
    assert globals_ is not None and globals_.get("variables") == "win,used"
    labels = {label.get("id") for label in root.iter("label")}
    assert {"answer", "throttle", "throttled", "r429", "end"} <= labels
    # The window check and the count happen in one action list: SIPp may switch calls
    # between two scenario elements, never within one.
    [decision] = [nop for nop in root.iter("nop") if nop.find("action/gettimeofday") is not None]
    actions = [(a.tag, a.get("assign_to")) for a in decision.iterfind("action/*")]
    assert ("add", "used") in actions and ("test", "full") in actions
    assert actions.index(("add", "used")) < actions.index(("test", "full"))
    full = next(a for a in decision.iter("test") if a.get("assign_to") == "full")
    assert (full.get("compare"), full.get("value")) == ("greater_than", str(THROTTLE_LIMIT))


def test_throttle_refusal_says_when_to_retry() -> None:
    text = render_scenario()
    branch = text[text.index('<label id="throttled"/>') :]
    assert "SIP/2.0 429 Too Many Requests" in branch and "Retry-After: 1" in branch


LOG = """\
INVITE a1 +447700900486 INVITE sip:+447700900486@ <sip:asterisk@127.0.0.1:55060>
INVITE b2 +447700901001 sip:asterisk@127.0.0.1:55160 1795944330.667526
THROTTLE b2 accepted 1795944330.000000
INVITE c3 +447700901002 sip:asterisk@127.0.0.1:55060 1795944330.669462
THROTTLE c3 refused 1795944330.000000
INVITE c3 +447700901002 sip:asterisk@127.0.0.1:55060 1795944330.700000
INVITE d4 +447700900001 sip:asterisk@127.0.0.1:45000 1795944331.5
INVITE e5 +447700900001 garbled
"""


def test_log_is_read_per_call_with_clock_server_and_verdict(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    log.write_text(LOG)
    calls = {call.call_id: call for call in read_invites(log)}
    assert list(calls) == ["a1", "b2", "c3", "d4", "e5"]  # c3's second line: the same call
    assert (calls["a1"].sip_port, calls["a1"].at, calls["a1"].throttle) == (55060, None, None)
    assert (calls["b2"].sip_port, calls["b2"].at) == (55160, 1795944330.667526)
    assert (calls["b2"].throttle, calls["b2"].window) == ("accepted", 1795944330)
    assert (calls["c3"].throttle, calls["c3"].at) == ("refused", 1795944330.669462)
    assert calls["e5"].sip_port is None


def test_calls_are_counted_per_server_by_sip_port(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    log.write_text(LOG)
    count = count_calls(log, {55060: "lab", 55160: "lab-2"})
    assert count.as_json() == {
        "total": 5,
        "by_number": {
            "+447700900001": 2,
            "+447700900486": 1,
            "+447700901001": 1,
            "+447700901002": 1,
        },
        "by_asterisk": {"lab": 2, "lab-2": 1, "port 45000": 1, "unknown": 1},
    }
    assert count_calls(tmp_path / "missing.log").as_json() == {
        "total": 0,
        "by_number": {},
        "by_asterisk": {},
    }


def test_every_server_has_its_own_ports_clear_of_the_rest_of_the_lab(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    servers = [lab.server(i) for i in range(MAX_ASTERISK_SERVERS)]
    assert [s.name for s in servers[:3]] == ["lab", "lab-2", "lab-3"]
    assert (servers[0].sip, servers[0].ami) == (LabPorts().sip, LabPorts().ami)  # as before
    assert servers[0].state_key == "asterisk" and servers[1].state_key == "asterisk-lab-2"
    per_server = ("sip", "ami", "rtp_start", "rtp_end")
    others = {p for name, p in asdict(LabPorts()).items() if name not in per_server} | {
        LabPorts().carrier_rtp + 2  # SIPp's echo also binds the next RTP port pair
    }
    taken: set[int] = set()
    for s in servers:
        ports = {s.sip, s.ami, *range(s.rtp_start, s.rtp_end + 1)}
        assert not ports & taken and not ports & others, s
        taken |= ports
    assert lab.servers_by_sip_port() == {s.sip: s.name for s in servers}
