"""The lab at scale (issues 12 and 13): several Asterisk servers trunked to the one carrier,
which tells them apart by itself; and the throttling carrier, which answers 5 calls per
1-second window and refuses the rest with 429 — all counted from the carrier's own log."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from dialler.ami.calls import CallTracker
from dialler.ami.client import AmiClient, OriginateRequest
from dialler.config import AsteriskConfig, Config, load_config
from dialler.domain.outcomes import Outcome
from dialler.lab.lab import DEFAULT_STATE_DIR, Lab
from dialler.lab.numberplan import THROTTLE_LIMIT, THROTTLE_PREFIX

from .lab_helpers import dialler

pytestmark = pytest.mark.e2e

RING_TIMEOUT = 4.0


def request(config: Config, server: AsteriskConfig, number: str) -> OriginateRequest:
    return OriginateRequest(
        attempt_id=str(uuid.uuid4()),
        channel=f"PJSIP/{number}@{config.carriers[0].endpoint}",
        context=server.originate_context,
        caller_id=config.numbers[0].number,
        ring_timeout=RING_TIMEOUT,
    )


def lab_status() -> dict[str, object]:
    proc = dialler("lab", "status", "--json", check=False)
    status: dict[str, object] = json.loads(proc.stdout)
    return status


def by_asterisk() -> dict[str, int]:
    counts: dict[str, int] = json.loads(dialler("lab", "calls", "--json").stdout)["by_asterisk"]
    return counts


def ami_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            return sock.recv(64).startswith(b"Asterisk Call Manager")
    except OSError:
        return False


def state() -> dict[str, int]:
    data: dict[str, int] = json.loads((DEFAULT_STATE_DIR / "state.json").read_text())
    return data


@pytest.fixture
def two_servers(lab_config_path: Path) -> Iterator[Config]:
    """The lab with two Asterisk servers; back to one afterwards, whatever happened."""
    try:
        proc = dialler("lab", "up", "--asterisk-servers", "2")
        assert Path(proc.stdout.strip().splitlines()[-1]) == lab_config_path
        yield load_config(str(lab_config_path))
    finally:
        dialler("lab", "up", "--asterisk-servers", "1")


async def dial_through(config: Config, server: AsteriskConfig, number: str) -> Outcome:
    """One call originated through `server`'s own AMI; its outcome."""
    ami = AmiClient(server)
    await ami.start()
    try:
        await ami.wait_ready(15)
        call = await CallTracker(ami).dial(request(config, server, number))
        result = await asyncio.wait_for(call.result, 15)
        return result.outcome
    finally:
        await ami.close()


async def test_second_server_up_counted_per_server_and_stopped(
    two_servers: Config, lab_config_path: Path
) -> None:
    first_pid = state()["asterisk"]
    status = lab_status()
    servers = status["asterisk_servers"]
    assert isinstance(servers, list)
    assert [s["name"] for s in servers] == ["lab", "lab-2"], servers
    assert all(s["up"] and str(s["version"]).startswith("22.") for s in servers), servers
    assert len({s["sip_port"] for s in servers}) == 2 and len({s["ami_port"] for s in servers}) == 2
    first = status["asterisk"]
    assert isinstance(first, dict)
    assert (first["ami_port"], first["sip_port"]) == (
        servers[0]["ami_port"],
        servers[0]["sip_port"],
    )
    assert status["up"] is True
    assert [s.name for s in two_servers.asterisk] == ["lab", "lab-2"]  # the lab config lists both
    assert [s.ami.port for s in two_servers.asterisk] == [s["ami_port"] for s in servers]

    # A call through each server's own AMI: the carrier says which server sent each INVITE.
    before = by_asterisk()
    for server in two_servers.asterisk:
        assert await dial_through(two_servers, server, "+447700900486") == Outcome.REJECTED
    after = by_asterisk()
    delta = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    assert delta == {"lab": 1, "lab-2": 1}

    # Back to one server: the second stops, the first runs on untouched.
    proc = dialler("lab", "up", "--asterisk-servers", "1")
    assert Path(proc.stdout.strip().splitlines()[-1]) == lab_config_path
    status = lab_status()
    remaining = status["asterisk_servers"]
    assert isinstance(remaining, list) and [s["name"] for s in remaining] == ["lab"], remaining
    assert status["up"] is True
    assert not ami_answers(servers[1]["ami_port"])
    assert state()["asterisk"] == first_pid
    assert "asterisk-lab-2" not in state()
    assert [s.name for s in load_config(str(lab_config_path)).asterisk] == ["lab"]


async def test_throttling_carrier_answers_five_per_window_and_refuses_the_rest(
    tracker: CallTracker, lab_config: Config
) -> None:
    lab = Lab()
    seen = {call.call_id for call in lab.invites()}
    total_before = json.loads(dialler("lab", "calls", "--json").stdout)["total"]
    numbers = [f"{THROTTLE_PREFIX}{n:02d}" for n in range(20)]
    server = lab_config.asterisk[0]

    # 20 calls at once: Asterisk sends their INVITEs within well under a second.
    calls = await asyncio.gather(
        *(tracker.dial(request(lab_config, server, number)) for number in numbers)
    )
    results = await asyncio.gather(*(asyncio.wait_for(call.result, 20) for call in calls))

    new = [call for call in lab.invites() if call.call_id not in seen]
    assert sorted(call.number for call in new) == numbers  # each INVITE reached the carrier
    stamps = [call.at for call in new if call.at is not None]
    assert len(stamps) == 20 and max(stamps) - min(stamps) < 1.0, stamps

    # The carrier's own decisions: in each window, the first five answered, the rest refused.
    arrived = Counter(call.window for call in new)
    accepted = Counter(call.window for call in new if call.throttle == "accepted")
    refused = [call for call in new if call.throttle == "refused"]
    assert None not in arrived, new
    for window, n in arrived.items():
        assert accepted[window] == min(THROTTLE_LIMIT, n), (window, n, accepted)
    assert len(refused) == 20 - sum(accepted.values()) >= 20 - 2 * THROTTLE_LIMIT

    # What the caller saw matches: 200 for the accepted, 429 for the refused.
    outcome = {
        number: (result.outcome, result.sip_code)
        for number, result in zip(numbers, results, strict=True)
    }
    for call in new:
        expected = (
            (Outcome.ANSWERED, 200) if call.throttle == "accepted" else (Outcome.REJECTED, 429)
        )
        assert outcome[call.number] == expected, (call, outcome[call.number])

    # `lab calls` counts every INVITE, the refused ones included.
    total_after = json.loads(dialler("lab", "calls", "--json").stdout)["total"]
    assert total_after - total_before == 20
