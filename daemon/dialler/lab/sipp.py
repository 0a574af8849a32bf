"""The lab carrier: a SIPp UAS whose scenario follows the lab number plan, and its call log.

SIPp cannot put a variable in a status line, so the scenario is generated: one labelled branch
per rejection code, chosen by a regular expression on the INVITE's request URI (verified
against SIPp 3.6). Every INVITE that starts a call is logged with its Call-ID, dialled number,
the caller's Contact (whose port is the sending Asterisk's own SIP port: which server sent it)
and the carrier's clock; `lab calls` counts distinct Call-IDs from that log, so retransmissions
never count twice.

The throttling range is decided by SIPp itself with two global variables (SIPp runs every call
in one thread, so they need no lock): `win`, the wall-clock second of the current window, and
`used`, the calls accepted in it. Each decision is logged (`THROTTLE <call-id> accepted|refused
<window>`), so a test checks the carrier's behaviour from the carrier's own log.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from .numberplan import (
    DEFAULT_HOLD_SECONDS,
    PREFIX,
    REJECT_CODES,
    THROTTLE_HOLD_SECONDS,
    THROTTLE_LIMIT,
    THROTTLE_PREFIX,
)

_REASONS = {
    403: "Forbidden",
    404: "Not Found",
    408: "Request Timeout",
    410: "Gone",
    429: "Too Many Requests",
    480: "Temporarily Unavailable",
    484: "Address Incomplete",
    486: "Busy Here",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}
_PFX = PREFIX.replace("+", "\\+")  # a POSIX ERE inside XML: escape only the plus
_THROTTLE_PFX = THROTTLE_PREFIX.replace("+", "\\+")

# Response headers for the INVITE transaction; [last_*] copy the received request's headers.
_RESPONSE_HEADERS = """[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>"""

_SDP = """v=0
o=lab 1 1 IN IP[local_ip_type] [local_ip]
s=dialler-lab
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 8
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=sendrecv"""


def _send(status: str, body: str = "", extra: str = "") -> str:
    content = (
        "Content-Type: application/sdp\nContent-Length: [len]\n\n" + body
        if body
        else "Content-Length: 0\n"
    )
    headers = _RESPONSE_HEADERS + (f"\n{extra}" if extra else "")
    return f"<send><![CDATA[\nSIP/2.0 {status}\n{headers}\n{content}\n]]></send>"


def _reject_branch(code: int) -> str:
    return (
        f'<label id="r{code}"/>\n{_send(f"{code} {_REASONS[code]}")}\n'
        f'<recv request="ACK" next="end"/>'
    )


def render_scenario(default_hold: float = DEFAULT_HOLD_SECONDS) -> str:
    """The SIPp UAS scenario XML implementing the lab number plan."""
    regs = [
        '<ereg regexp="^INVITE sip:([^@;]+)@" search_in="msg" check_it="true" '
        'assign_to="m_any,dialled"/>',
        f'<ereg regexp="^INVITE sip:{_PFX}0([0-9][0-9])@" search_in="msg" check_it="false" '
        f'assign_to="m_hold,hold_digits"/>',
        f'<ereg regexp="^INVITE sip:{_PFX}2[0-9][0-9]@" search_in="msg" check_it="false" '
        f'assign_to="m_ring"/>',
        f'<ereg regexp="^INVITE sip:{_PFX}3[0-9][0-9]@" search_in="msg" check_it="false" '
        f'assign_to="m_silent"/>',
        f'<ereg regexp="^INVITE sip:{_THROTTLE_PFX}[0-9][0-9]@" search_in="msg" '
        f'check_it="false" assign_to="m_throttle"/>',
        '<ereg regexp="\\S.*" search_in="hdr" header="CSeq:" check_it="true" '
        'assign_to="invite_cseq"/>',
        '<ereg regexp="\\S.*" search_in="hdr" header="From:" check_it="true" '
        'assign_to="remote_from"/>',
        '<ereg regexp="\\S.*" search_in="hdr" header="To:" check_it="true" assign_to="remote_to"/>',
        '<ereg regexp="&lt;([^&gt;]*)&gt;" search_in="hdr" header="Contact:" check_it="true" '
        'assign_to="m_contact,contact_uri"/>',
        f'<assign assign_to="holdms" value="{int(default_hold * 1000)}"/>',
        # The carrier's clock, in seconds with microseconds: rates are measured from it.
        '<gettimeofday assign_to="now_s,now_us"/>',
        '<assign assign_to="at" value="0"/>',
        '<add assign_to="at" variable="now_us"/>',
        '<divide assign_to="at" value="1000000"/>',
        '<add assign_to="at" variable="now_s"/>',
        '<log message="INVITE [call_id] [$dialled] [$contact_uri] [$at]"/>',
    ]
    regs += [
        f'<ereg regexp="^INVITE sip:{_PFX}{code}@" search_in="msg" check_it="false" '
        f'assign_to="m{code}"/>'
        for code in REJECT_CODES
    ]
    jumps = [
        '<nop test="m_throttle" next="throttle"/>',
        '<nop test="m_ring" next="ring"/>',
        '<nop test="m_silent" next="silent"/>',
    ]
    jumps += [f'<nop test="m{code}" next="r{code}"/>' for code in REJECT_CODES]
    rejects = "\n".join(_reject_branch(code) for code in REJECT_CODES)
    nl = "\n"
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<!-- Generated by dialler.lab.sipp: the lab carrier (CONTRACT.md, "The lab"). -->
<scenario name="dialler lab carrier">
<!-- the throttling range's fixed window: its wall-clock second and the calls accepted in it -->
<Global variables="win,used"/>
<recv request="INVITE" crlf="true">
<action>
{nl.join(regs)}
</action>
</recv>
{nl.join(jumps)}

<!-- answer: ring ~1 s, answer, hold, hang up -->
<label id="answer"/>
<nop condexec="m_hold">
<action>
<todouble assign_to="holdms" variable="hold_digits"/>
<multiply assign_to="holdms" value="1000"/>
<test assign_to="hold_zero" variable="holdms" compare="less_than" value="1"/>
</action>
</nop>
<nop condexec="hold_zero"><action><assign assign_to="holdms" value="1000"/></action></nop>
{_send("180 Ringing")}
<pause milliseconds="1000"/>
{_send("200 OK", _SDP).replace("<send>", '<send retrans="500">')}
<recv request="ACK" crlf="true"/>
<pause variable="holdms"/>
<send retrans="500"><![CDATA[
BYE [$contact_uri] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: [$remote_to];tag=[pid]SIPpTag01[call_number]
To: [$remote_from]
Call-ID: [call_id]
CSeq: 1 BYE
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
Content-Length: 0

]]></send>
<recv response="200" next="end"/>

<!-- ring forever: 180, then wait for the caller's CANCEL -->
<label id="ring"/>
{_send("180 Ringing")}
<recv request="CANCEL"/>
<send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
<send><![CDATA[
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
CSeq: [$invite_cseq]
Content-Length: 0

]]></send>
<recv request="ACK" next="end"/>

<!-- never respond: swallow the INVITE (and its retransmissions) until the caller gives up -->
<label id="silent"/>
<pause milliseconds="40000" next="end"/>

{rejects}

{_throttle_branch()}

<label id="end"/>
<timewait milliseconds="4000"/>
<!-- assigned, never read: whole regular-expression matches and the clock's microseconds -->
<Reference variables="m_any,m_contact,tnow_us"/>
</scenario>
"""


def _throttle_branch() -> str:
    """Fixed 1-second windows: the first THROTTLE_LIMIT INVITEs of each wall-clock second are
    answered, every later one in that second is refused with 429 (`Retry-After: 1`: the window
    ends within a second). Counting arrivals is the same as counting acceptances here: every
    arrival after the limit is refused. Fixed windows, not a token bucket: up to
    2 x THROTTLE_LIMIT can be accepted within one second straddling a boundary (docs/lab.md).

    SIPp may switch to another call between two scenario elements (seen with a burst of
    INVITEs), so reading the clock, starting a new window and counting happen in ONE action
    list, without branches: a new window is chosen arithmetically (`keep` is 1 in the same
    second, 0 in a new one)."""
    refused = _send("429 Too Many Requests", extra="Retry-After: 1")
    return f"""<!-- the throttling carrier: {THROTTLE_LIMIT} accepted per fixed 1-second window -->
<label id="throttle"/>
<nop>
<action>
<gettimeofday assign_to="tnow,tnow_us"/>
<assign assign_to="since" value="0"/>
<add assign_to="since" variable="tnow"/>
<subtract assign_to="since" variable="win"/>
<test assign_to="same_window" variable="since" compare="equal" value="0"/>
<todouble assign_to="keep" variable="same_window"/>
<multiply assign_to="used" variable="keep"/>
<multiply assign_to="win" variable="keep"/>
<assign assign_to="fresh" value="1"/>
<subtract assign_to="fresh" variable="keep"/>
<multiply assign_to="fresh" variable="tnow"/>
<add assign_to="win" variable="fresh"/>
<add assign_to="used" value="1"/>
<test assign_to="full" variable="used" compare="greater_than" value="{THROTTLE_LIMIT}"/>
<assign assign_to="window" value="0"/>
<add assign_to="window" variable="win"/>
</action>
</nop>
<nop test="full" next="throttled"/>
<nop next="answer">
<action>
<assign assign_to="holdms" value="{int(THROTTLE_HOLD_SECONDS * 1000)}"/>
<log message="THROTTLE [call_id] accepted [$window]"/>
</action>
</nop>
<label id="throttled"/>
<nop>
<action>
<log message="THROTTLE [call_id] refused [$window]"/>
</action>
</nop>
{refused}
<recv request="ACK" next="end"/>"""


@dataclass(frozen=True, slots=True)
class Invite:
    """One call as the carrier saw it: its first INVITE (retransmissions are the same call)."""

    call_id: str
    number: str  # as dialled (the request URI's user part)
    sip_port: int | None  # the sending Asterisk's own SIP port, from its Contact
    at: float | None  # the carrier's clock (Unix seconds) on receipt; None in older logs
    throttle: str | None = None  # the throttling range only: "accepted" or "refused"
    window: int | None = None  # the throttling range only: the window's wall-clock second


@dataclass(frozen=True, slots=True)
class CallCount:
    """What the carrier received: distinct calls (by Call-ID), in total, per dialled number and
    per sending Asterisk server."""

    total: int
    by_number: dict[str, int]
    by_asterisk: dict[str, int]

    def as_json(self) -> dict[str, object]:
        return {
            "total": self.total,
            "by_number": dict(sorted(self.by_number.items())),
            "by_asterisk": dict(sorted(self.by_asterisk.items())),
        }


# `INVITE <call-id> <number> <contact> <at>`; logs from before the timestamp carried
# `INVITE <call-id> <number> INVITE sip:<number>@ <<contact>>`.
_INVITE = re.compile(r"^INVITE (\S+) (\S+)(.*)$")
_CONTACT_PORT = re.compile(r"sip:(?:[^@\s>]*@)?[^:\s>;]+:(\d+)")
_AT = re.compile(r" (\d+\.\d+)\s*$")
_THROTTLE = re.compile(r"^THROTTLE (\S+) (accepted|refused) (\d+)")


def read_invites(log_file: Path) -> list[Invite]:
    """Every distinct call in the carrier's log, in the order received."""
    calls: dict[str, Invite] = {}
    verdicts: dict[str, tuple[str, int]] = {}
    if not log_file.exists():
        return []
    with log_file.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            match = _INVITE.match(line)
            if match:
                call_id, number, rest = match.groups()
                if call_id in calls:
                    continue
                port = _CONTACT_PORT.search(rest)
                at = _AT.search(rest)
                calls[call_id] = Invite(
                    call_id=call_id,
                    number=number,
                    sip_port=int(port.group(1)) if port else None,
                    at=float(at.group(1)) if at else None,
                )
                continue
            verdict = _THROTTLE.match(line)
            if verdict:
                verdicts.setdefault(verdict.group(1), (verdict.group(2), int(verdict.group(3))))
    return [
        replace(call, throttle=verdicts[cid][0], window=verdicts[cid][1])
        if cid in verdicts
        else call
        for cid, call in calls.items()
    ]


def count_calls(log_file: Path, servers: Mapping[int, str] | None = None) -> CallCount:
    """Count distinct calls in the carrier's INVITE log (retransmissions excluded).

    `servers` names the Asterisk servers by their SIP port; a call from another port is counted
    under `port <n>` (or `unknown` when the log line carries no Contact)."""
    names = servers or {}
    invites = read_invites(log_file)
    by_asterisk: Counter[str] = Counter()
    for call in invites:
        if call.sip_port is None:
            by_asterisk["unknown"] += 1
        else:
            by_asterisk[names.get(call.sip_port, f"port {call.sip_port}")] += 1
    return CallCount(
        total=len(invites),
        by_number=dict(Counter(call.number for call in invites)),
        by_asterisk=dict(by_asterisk),
    )
