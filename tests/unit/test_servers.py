"""Dealing dials over several Asterisk servers: least in flight first, each within its own
channel cap, only servers whose AMI is up (engine/servers.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from dialler.ami.calls import CallTracker
from dialler.config import parse_config
from dialler.engine.servers import PENDING_EXPIRY, ServerLoad, Servers, deal_servers
from dialler.errors import ConfigError


def test_dials_go_to_the_least_loaded_server_first() -> None:
    loads = [ServerLoad("a", 3, None), ServerLoad("b", 0, None)]
    assert deal_servers(loads, 5) == ["b", "b", "b", "a", "b"]


def test_equal_servers_take_turns_first_in_config_order() -> None:
    loads = [ServerLoad("a", 0, None), ServerLoad("b", 0, None), ServerLoad("c", 0, None)]
    assert deal_servers(loads, 4) == ["a", "b", "c", "a"]


def test_a_server_at_its_cap_takes_no_more_and_all_full_deals_fewer() -> None:
    loads = [ServerLoad("a", 0, 2), ServerLoad("b", 1, 2)]
    assert deal_servers(loads, 5) == ["a", "a", "b"]
    assert deal_servers([ServerLoad("a", 4, 4)], 3) == []
    assert deal_servers([], 3) == []


@dataclass
class _Ami:
    name: str
    ready: bool = True


@dataclass
class _Tracker:
    ami: _Ami
    calls: dict[str, Any] = field(default_factory=dict)


def _servers(*trackers: _Tracker, caps: dict[str, int | None] | None = None) -> Servers:
    by_name = {t.ami.name: cast(CallTracker, t) for t in trackers}
    return Servers(by_name, caps or {})


def test_only_servers_whose_ami_is_up_are_dealt_to_and_come_back_when_up() -> None:
    a, b = _Tracker(_Ami("lab")), _Tracker(_Ami("lab-2", ready=False))
    servers = _servers(a, b)
    assert servers.deal(3) == ["lab", "lab", "lab"]
    a.ami.ready = False
    assert not servers.any_up() and servers.deal(2) == []
    b.ami.ready = True  # back: dealt to again
    assert servers.up() == ["lab-2"] and servers.deal(1) == ["lab-2"]


def test_followed_calls_and_claimed_dials_count_as_in_flight_until_sent() -> None:
    a, b = _Tracker(_Ami("lab")), _Tracker(_Ami("lab-2"))
    a.calls = {"x": object(), "y": object()}
    servers = _servers(a, b, caps={"lab-2": 2})
    claimed = [uuid.uuid4(), uuid.uuid4()]
    servers.reserve((attempt, "lab-2") for attempt in claimed)
    assert servers.in_flight("lab") == 2 and servers.in_flight("lab-2") == 2
    assert servers.deal(2) == ["lab", "lab"]  # lab-2 is at its cap of 2
    servers.release(claimed[0])
    assert servers.in_flight("lab-2") == 1
    assert servers.deal(1) == ["lab-2"]


def test_a_reservation_whose_claim_never_committed_lapses() -> None:
    now = [100.0]
    tracker = cast(CallTracker, _Tracker(_Ami("lab")))
    servers = Servers({"lab": tracker}, {"lab": 1}, clock=lambda: now[0])
    servers.reserve([(uuid.uuid4(), "lab")])
    assert servers.deal(1) == []
    now[0] += PENDING_EXPIRY + 1
    assert servers.deal(1) == ["lab"]


def _config(second: dict[str, Any]) -> dict[str, Any]:
    return {
        "database": {"dsn": "postgresql://x@127.0.0.1/db"},
        "asterisk": [
            {"name": "lab", "ami": {"username": "u", "secret_env": "S"}},
            {"name": "lab-2", "ami": {"username": "u", "secret_env": "S"}, **second},
        ],
        "carriers": [{"name": "c"}],
        "numbers": [{"number": "+441632960001", "carrier": "c"}],
        "listeners": {"agi": {"secret_env": "S"}},
    }


def test_max_channels_is_optional_per_server_and_at_least_one() -> None:
    env = {"S": "secret-value-123"}
    config = parse_config(_config({"max_channels": 40}), "t.yaml", env=env)
    assert [a.max_channels for a in config.asterisk] == [None, 40]
    with pytest.raises(ConfigError) as refused:
        parse_config(_config({"max_channels": 0}), "t.yaml", env=env)
    assert "asterisk[1].max_channels" in str(refused.value)
