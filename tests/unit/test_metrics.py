"""The metric definitions: names, types, label sets, buckets (docs/metrics.md)."""

from __future__ import annotations

import re
import socket
import urllib.request
from collections.abc import Iterator

import prometheus_client
import pytest
from prometheus_client.metrics import MetricWrapperBase

from dialler import metrics

# Family name (as prometheus_client reports it: counters without `_total`) → type, label names.
EXPECTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "dialler_originations": ("counter", ("campaign", "carrier")),
    "dialler_attempt_outcomes": ("counter", ("campaign", "outcome")),
    "dialler_calls_abandoned": ("counter", ("campaign",)),
    "dialler_sip_responses": ("counter", ("carrier", "code")),
    "dialler_originate_to_answer_seconds": ("histogram", ("carrier",)),
    "dialler_answer_to_attach_seconds": ("histogram", ()),
    "dialler_claim_duration_seconds": ("histogram", ()),
    "dialler_ami_connected": ("gauge", ("asterisk",)),
    "dialler_database_up": ("gauge", ()),
    "dialler_results_unwritten": ("gauge", ()),
    "dialler_calls_in_flight": ("gauge", ("campaign", "state")),
    "dialler_contacts": ("gauge", ("campaign", "state")),
    "dialler_campaign_last_dial_timestamp_seconds": ("gauge", ("campaign",)),
    "dialler_campaign_window_open": ("gauge", ("campaign",)),
    "dialler_campaign_stalled": ("gauge", ("campaign",)),
    "dialler_campaign_contacts_due": ("gauge", ("campaign",)),
    "dialler_stuck_attempts": ("gauge", ("campaign",)),
    "dialler_fleet_slots": ("gauge", ("state",)),
    "dialler_campaign_running": ("gauge", ("campaign",)),
    # Carrier pacing (helper T): shared calls/s and throttling.
    "dialler_carrier_allowed_calls_per_second": ("gauge", ("carrier",)),
    "dialler_carrier_throttled": ("gauge", ("carrier",)),
    # Several Asterisk servers (helper M): how each daemon spreads its calls.
    "dialler_asterisk_originations": ("counter", ("asterisk",)),
    "dialler_asterisk_calls_in_flight": ("gauge", ("asterisk",)),
    # The abandon rate (helper P): campaign show's abandon_rate_30d.
    "dialler_campaign_abandon_rate": ("gauge", ("campaign",)),
}
# Labels that would carry something unbounded or personal (a callee's number, a call).
FORBIDDEN_LABEL = re.compile(r"number|phone|call_?id|attempt|contact|uuid|caller", re.I)
PROBE = "probe-value"


def instruments() -> dict[str, MetricWrapperBase]:
    """The metric objects of `dialler.metrics`, by family name."""
    found: dict[str, MetricWrapperBase] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            family = next(iter(value.describe())).name
            found[family] = value
    return found


@pytest.fixture
def probed() -> Iterator[dict[str, MetricWrapperBase]]:
    """Every labelled metric with one child whose label names are the expected ones.

    `labels(**names)` raises unless the names are exactly the metric's label names; the
    children are removed afterwards so the registry is left as it was.
    """
    made: list[tuple[MetricWrapperBase, tuple[str, ...]]] = []
    objects = instruments()
    try:
        for family, (_, labels) in EXPECTED.items():
            if labels:
                objects[family].labels(**{name: PROBE for name in labels})
                made.append((objects[family], labels))
        yield objects
    finally:
        for metric, labels in made:
            metric.remove(*(PROBE for _ in labels))


def test_own_registry_not_the_global_one() -> None:
    assert metrics.REGISTRY is not prometheus_client.REGISTRY
    global_names = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not {name for name in global_names if name.startswith("dialler_")}


def test_registry_holds_exactly_the_documented_metrics() -> None:
    families = {m.name: m.type for m in metrics.REGISTRY.collect()}
    assert families == {name: kind for name, (kind, _) in EXPECTED.items()}
    assert set(instruments()) == set(EXPECTED)
    for name, metric in instruments().items():
        assert metric.describe()[0].documentation, f"{name} has no help text"


def test_label_names_are_exactly_the_documented_ones(probed: dict[str, MetricWrapperBase]) -> None:
    for family, (_, labels) in EXPECTED.items():
        metric = probed[family]
        if not labels:
            with pytest.raises(ValueError, match="No label names"):
                metric.labels()
        with pytest.raises(ValueError):  # one label more than defined
            metric.labels(**{name: PROBE for name in (*labels, "extra")})


def test_no_label_could_carry_a_number_or_a_call(probed: dict[str, MetricWrapperBase]) -> None:
    seen: set[str] = set()
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            seen.update(sample.labels)
    seen.discard("le")
    assert seen == {label for _, labels in EXPECTED.values() for label in labels}
    assert not {label for label in seen if FORBIDDEN_LABEL.search(label)}


def test_names_use_the_prefix_and_base_units() -> None:
    for name in EXPECTED:
        assert name.startswith("dialler_")
        assert not re.search(r"_(milliseconds|ms|minutes|hours|percent)$", name)


def test_latency_histograms_have_a_two_second_bucket(probed: dict[str, MetricWrapperBase]) -> None:
    bounds: dict[str, set[float]] = {}
    for family in metrics.REGISTRY.collect():
        if family.type == "histogram":
            bounds[family.name] = {
                float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")
            }
    assert 2.0 in bounds["dialler_originate_to_answer_seconds"]
    assert 2.0 in bounds["dialler_answer_to_attach_seconds"]
    assert min(bounds["dialler_claim_duration_seconds"]) == 0.001
    assert max(bounds["dialler_claim_duration_seconds"] - {float("inf")}) == 1.0


def test_sip_code_label() -> None:
    assert metrics.sip_code_label(486) == "486"
    assert metrics.sip_code_label(None) == "none"


def test_start_server_serves_the_registry() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    metrics.start_server("127.0.0.1", port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    assert "# TYPE dialler_fleet_slots gauge" in body
    assert "# TYPE dialler_originations_total counter" in body
    assert "python_gc_objects_collected_total" not in body  # not the global registry
