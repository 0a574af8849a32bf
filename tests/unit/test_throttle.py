"""Carrier pacing and AIMD throttling (domain/throttle.py): the rules, and the bound the
carrier sees — never more than its rate + 1 calls in any sliding second."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from dialler.domain.throttle import (
    Pacing,
    ThrottleSettings,
    after_refusal,
    at_claim,
    burst,
    fresh,
    refill_rate,
    room,
    seconds_until_token,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
S = ThrottleSettings()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def take(state: Pacing, n: int) -> Pacing:
    """What the attempts insert trigger does: n tokens taken, n dials counted."""
    return Pacing(
        state.configured,
        state.allowed,
        state.tokens - n,
        state.refilled_at,
        state.dials + n,
        state.refusals,
        state.counted_since,
        state.changed_at,
    )


def greedy_dials(rate: float, claims: list[float]) -> list[float]:
    """Claim as much as the bucket allows at each claim time: the dial times."""
    state = fresh(rate, T0)
    dials: list[float] = []
    for t in claims:
        state = at_claim(state, rate, at(t), S)
        n = room(state)
        dials += [t] * n
        state = take(state, n)
    return dials


def max_in_sliding_second(times: list[float]) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_burst_is_a_tenth_of_a_second_and_at_least_one() -> None:
    assert burst(1) == 1
    assert burst(10) == 1.5
    assert burst(5) == 1.5
    assert burst(100) == 10
    assert burst(10) + refill_rate(10) == 11
    assert burst(100) + refill_rate(100) == 101


@settings(max_examples=200, deadline=None)
@given(
    rate=st.sampled_from([1.0, 2.5, 5.0, 10.0, 37.0, 100.0, 500.0]),
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.3), min_size=1, max_size=400),
)
def test_any_claim_timing_gives_at_most_rate_plus_one_in_a_sliding_second(
    rate: float, gaps: list[float]
) -> None:
    claims, t = [], 0.0
    for gap in gaps:
        t += gap
        claims.append(t)
    assert max_in_sliding_second(greedy_dials(rate, claims)) <= rate + 1


def test_claims_when_the_next_token_is_due_reach_the_rate() -> None:
    state, t, dials = fresh(10.0, T0), 0.0, 0
    while t < 10.0:
        state = at_claim(state, 10.0, at(t), S)
        dials += room(state)
        state = take(state, room(state))
        t += max(seconds_until_token(state, at(t)), 0.001)
    assert 94 <= dials <= 101


def test_a_lone_refusal_never_trips_it() -> None:
    state = take(at_claim(fresh(10.0, T0), 10.0, T0, S), 10)
    state, tripped = after_refusal(state, at(0.5), S)
    assert not tripped and not state.throttled


def test_refusals_over_the_threshold_cut_the_rate_once_per_cooldown() -> None:
    state = take(fresh(100.0, T0), 30)
    trips = []
    for i in range(25):
        state, tripped = after_refusal(state, at(0.2 + i * 0.01), S)
        trips.append(tripped)
    assert trips.count(True) == 1
    assert trips.index(True) == 5  # 6 refusals of 30 dials: the 20 % share
    assert state.allowed == 50.0 and state.throttled
    # A cooldown later, with the share still high, it halves again.
    state = take(state, 10)
    later = []
    for i in range(5):
        state, tripped = after_refusal(state, at(2.5 + i * 0.01), S)
        later.append(tripped)
    assert later.count(True) == 1 and state.allowed == 25.0


def test_the_rate_never_goes_below_min_rate() -> None:
    state = fresh(4.0, T0)
    for k in range(10):
        for i in range(S.min_refusals):
            state, _ = after_refusal(state, at(k * S.cooldown + i * 0.01), S)
    assert state.allowed == S.min_rate


def test_clean_cooldowns_raise_it_step_by_step_up_to_the_configured_rate() -> None:
    state = fresh(5.0, T0)
    for i in range(S.min_refusals):
        state, _ = after_refusal(state, at(i * 0.01), S)
    assert state.allowed == 2.5
    seen = []
    for k in range(1, 8):
        state = at_claim(state, 5.0, at(k * S.cooldown + 0.1), S)
        seen.append(state.allowed)
    assert seen == [3.5, 4.5, 5.0, 5.0, 5.0, 5.0, 5.0]
    assert not state.throttled


def test_a_refusal_since_the_last_change_holds_the_rate() -> None:
    state = fresh(5.0, T0)
    for i in range(S.min_refusals):
        state, _ = after_refusal(state, at(i * 0.01), S)
    state = take(state, 50)
    state, tripped = after_refusal(state, at(1.0), S)
    assert not tripped
    assert at_claim(state, 5.0, at(3.0), S).allowed == 2.5


def test_counts_start_over_after_the_window() -> None:
    state = fresh(10.0, T0)
    for i in range(S.min_refusals - 1):
        state, _ = after_refusal(state, at(i), S)
    state, tripped = after_refusal(state, at(S.window + 5), S)
    assert not tripped and state.refusals == 1


def test_a_new_configured_rate_is_followed_unless_throttled() -> None:
    state = at_claim(fresh(10.0, T0), 20.0, at(1), S)
    assert state.allowed == state.configured == 20.0
    for i in range(S.min_refusals):
        state, _ = after_refusal(state, at(2 + i * 0.01), S)
    assert state.allowed == 10.0
    state = at_claim(state, 8.0, at(2.5), S)
    assert state.allowed == 8.0 and not state.throttled


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.sampled_from(["claim", "refusal"]), st.floats(0.0, 3.0)), max_size=200
    ),
    rate=st.sampled_from([1.0, 5.0, 10.0, 100.0]),
)
def test_the_allowed_rate_stays_between_min_rate_and_configured(
    events: list[tuple[str, float]], rate: float
) -> None:
    state, t = fresh(rate, T0), 0.0
    for kind, gap in events:
        t += gap
        if kind == "claim":
            state = at_claim(state, rate, at(t), S)
            state = take(state, room(state))
        else:
            state, _ = after_refusal(state, at(t), S)
        assert min(S.min_rate, rate) <= state.allowed <= rate
        assert state.tokens <= burst(state.allowed)


def test_a_clock_stepped_back_does_not_stall_the_bucket() -> None:
    state = at_claim(fresh(10.0, T0), 10.0, at(3600), S)
    state = take(state, 1)
    back = at_claim(state, 10.0, at(0), S)  # the database's clock went back an hour
    assert back.refilled_at == at(0)
    later = at_claim(back, 10.0, at(0.5), S)
    assert room(later) >= 1


def test_a_read_taken_before_the_lock_lags_without_refilling_twice() -> None:
    state = take(at_claim(fresh(10.0, T0), 10.0, at(5.0), S), 1)
    lagging = at_claim(state, 10.0, at(4.99), S)
    assert lagging.refilled_at == at(5.0) and lagging.tokens == state.tokens
