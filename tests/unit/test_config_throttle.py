"""A carrier's `throttle:` settings (docs/config.md, `carriers[].throttle`)."""

from __future__ import annotations

from typing import Any

import pytest

from dialler.config import Config, parse_config
from dialler.domain.throttle import ThrottleSettings
from dialler.errors import ConfigError

ENV = {"S": "secret", "A": "agi-secret-0123456789"}


def parse(throttle: Any) -> Config:
    carrier: dict[str, Any] = {"name": "lab"}
    if throttle is not None:
        carrier["throttle"] = throttle
    return parse_config(
        {
            "database": {"dsn": "postgresql://dialler@localhost/dialler"},
            "asterisk": [{"name": "pbx", "ami": {"username": "u", "secret_env": "S"}}],
            "listeners": {"agi": {"secret_env": "A"}},
            "carriers": [carrier],
        },
        "dialler.yaml",
        env=ENV,
    )


def test_absent_it_takes_the_documented_defaults() -> None:
    settings = parse(None).carriers[0].throttle
    assert settings == ThrottleSettings()
    assert settings.codes == {429, 503}
    assert (settings.threshold, settings.min_refusals, settings.decrease) == (0.2, 5, 0.5)
    assert (settings.cooldown, settings.window, settings.requeue_after) == (2.0, 10.0, 1.0)


def test_every_key_is_read() -> None:
    settings = (
        parse(
            {
                "codes": [429],
                "threshold": 0.5,
                "min_refusals": 3,
                "decrease": 0.25,
                "increase": 2,
                "cooldown": "5s",
                "min_rate": 0.5,
                "window": "1m",
                "max_requeues": 0,
                "requeue_after": "3s",
            }
        )
        .carriers[0]
        .throttle
    )
    assert settings == ThrottleSettings(
        codes=frozenset({429}),
        threshold=0.5,
        min_refusals=3,
        decrease=0.25,
        increase=2.0,
        cooldown=5.0,
        min_rate=0.5,
        window=60.0,
        max_requeues=0,
        requeue_after=3.0,
    )


@pytest.mark.parametrize(
    ("throttle", "message"),
    [
        ({"codes": []}, "carriers[0].throttle.codes: expected a non-empty list of SIP codes"),
        ({"codes": [200]}, "carriers[0].throttle.codes[0]: expected a SIP failure code"),
        ({"codes": "429"}, "carriers[0].throttle.codes: expected a non-empty list"),
        ({"threshold": 0}, "carriers[0].throttle.threshold: 0 is out of range"),
        ({"threshold": 1.5}, "carriers[0].throttle.threshold: 1.5 is out of range"),
        ({"decrease": 1}, "carriers[0].throttle.decrease: 1 is out of range; must be greater"),
        ({"min_refusals": 0}, "carriers[0].throttle.min_refusals: 0 is out of range"),
        ({"increase": -1}, "carriers[0].throttle.increase: -1 is out of range"),
        ({"cooldown": "0s"}, "carriers[0].throttle.cooldown: must be greater than 0"),
        ({"max_requeues": -1}, "carriers[0].throttle.max_requeues: -1 is out of range"),
        (
            {"requeue_after": "2h"},
            "carriers[0].throttle.requeue_after: '2h' is too long (at most 1h)",
        ),
        ({"retry_after": "1s"}, "carriers[0].throttle.retry_after: unknown key"),
        ("fast", "carriers[0].throttle: expected a mapping"),
    ],
)
def test_a_wrong_value_is_refused_with_its_key(throttle: Any, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse(throttle)
    assert message in str(refused.value)
