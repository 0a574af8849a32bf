"""Everything the triage rows look at, read once (`gather`) into typed facts.

The queries are the store's (`store.triage`, plus the shared prompt, fleet and stats reads);
the live activity is `stats.campaign_show`'s, so "stalled" means the same everywhere. All of it
is read in one repeatable-read snapshot: counts from one query and rows from another must
describe the same moment, or a call ending in between would look like a contact stuck without
its attempt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from ..campaigns.repo import Campaign, bot_names, get_campaign
from ..config import Config, SchedulerConfig
from ..domain.prompt import placeholders
from ..domain.states import IN_FLIGHT, CampaignState, ContactState
from ..domain.window import Window, WindowError
from ..stats import campaign_show, local_windows
from ..store import Connection
from ..store import fleet as fleet_store
from ..store import prompts as prompts_store
from ..store import stats as stats_store
from ..store import triage as store
from ..store import zones as zones_store
from ..store.triage import (
    BotTestCall,
    FinishingDecision,
    OpenAttempt,
    OverdueAttempt,
    PoolNumber,
    RecentAttempt,
    WaitingContacts,
)

__all__ = ["RECENT_ATTEMPTS", "Activity", "Facts", "gather", "prompt_names"]

#: Final attempts looked at for outcome and SIP patterns (the newest ones).
RECENT_ATTEMPTS = 200

#: The waiting states whose overdue contacts name a call (retries and callbacks).
_OVERDUE_STATES = (ContactState.RETRY_SCHEDULED, ContactState.CALLBACK_SCHEDULED)


@dataclass(frozen=True, slots=True)
class Activity:
    """What `campaign show` says of the campaign: its live activity and stats grid."""

    activity: str  # live | idle_waiting_for_retries | … | the state
    stalled: bool
    effective_concurrency: int
    counts: Mapping[str, int]  # contacts by ContactState (every state present)
    retries_left: int

    @classmethod
    def from_show(cls, show: Mapping[str, Any]) -> Activity:
        """From the JSON of `campaign show ID --json`."""
        stats = show["stats"]
        return cls(
            activity=show["activity"],
            stalled=bool(show["stalled"]),
            effective_concurrency=int(show["effective_concurrency"]),
            counts={state: int(stats[state]) for state in ContactState},
            retries_left=int(stats["retries_left"]),
        )


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the rows look at, read once."""

    now: datetime
    scheduler: SchedulerConfig
    campaign: Campaign
    activity: Activity
    window: Window | None  # None when invalid (a draft)
    bots: Sequence[str]
    pool: Sequence[PoolNumber]
    prompt: str | None  # the prompt of the campaign's bot; None: no bot
    contact_variables: Sequence[str]  # read only when the prompt uses variables
    lacking: Mapping[str, int]  # prompt variable -> contacts without a value
    fleet_capacity: int
    fleet_free: int
    daemons: int  # daemons heart-beating
    recent: Sequence[RecentAttempt]  # the newest final attempts, newest first
    open_attempts: Sequence[OpenAttempt]
    finishing: Sequence[FinishingDecision]
    waiting: Mapping[str, WaitingContacts]  # by waiting state
    overdue_calls: Mapping[str, OverdueAttempt]  # waiting state -> longest overdue
    test_call: BotTestCall | None
    report_rows: int  # final attempts (rows of the attempt report)
    #: A per-contact window (`window.per_contact`): whether some contacts' zones are open now
    #: (`stats.local_windows`); None for a window on the campaign's clock.
    zones_open: bool | None = None

    @property
    def contacts(self) -> int:
        return sum(self.activity.counts.values())

    def count(self, state: ContactState) -> int:
        """Contacts in `state`."""
        return self.activity.counts.get(state, 0)

    @property
    def running(self) -> bool:
        return self.campaign.state == CampaignState.RUNNING and not self.campaign.cancelled

    @property
    def window_open(self) -> bool:
        if self.zones_open is not None:
            return self.zones_open
        return self.window is not None and self.window.is_open(self.now)

    @property
    def in_flight(self) -> int:
        return sum(self.count(state) for state in IN_FLIGHT)

    @property
    def can_dial(self) -> bool:
        """Running inside the window with a free slot (campaign and fleet): a due contact
        is claimed within a poll, oldest due first."""
        return (
            self.running
            and self.window_open
            and self.fleet_free > 0
            and self.in_flight < self.activity.effective_concurrency
        )

    @property
    def stall_after(self) -> float:
        return self.scheduler.stall_after

    def waiting_in(self, state: ContactState) -> WaitingContacts:
        """The waiting contacts in `state` (all counts 0 when there are none)."""
        return self.waiting.get(state) or WaitingContacts(
            state=state, n=0, due=0, waiting=0, next_due_at=None, overdue=0, oldest_overdue_at=None
        )


def prompt_names(prompt: str | None) -> list[str]:
    """The variables `prompt` uses, once each, in order."""
    if prompt is None:
        return []
    return list(dict.fromkeys(p.name for p in placeholders(prompt) if p.name is not None))


async def gather(conn: Connection, config: Config, campaign_id: UUID, now: datetime) -> Facts:
    """Read the facts, in one read-only snapshot (or the caller's transaction)."""
    async with store.snapshot(conn):
        return await _read(conn, config, campaign_id, now)


async def _read(conn: Connection, config: Config, campaign_id: UUID, now: datetime) -> Facts:
    campaign = await get_campaign(conn, campaign_id)
    activity = Activity.from_show(await campaign_show(conn, config, campaign_id, now))
    try:
        window: Window | None = campaign.window()
    except WindowError:
        window = None
    prompt = (
        None
        if campaign.bot_name is None
        else await prompts_store.bot_prompt(conn, campaign.bot_name)
    )
    used = prompt_names(prompt)
    variables: list[str] = []
    lacking: dict[str, int] = {}
    if used and sum(activity.counts.values()):
        variables = await prompts_store.contact_variable_names(conn, campaign_id)
        lacking = await store.variable_coverage(conn, campaign_id, used)
    scheduler = config.scheduler
    stall = now - timedelta(seconds=scheduler.stall_after)
    alive_since = now - timedelta(seconds=3 * scheduler.heartbeat_interval)
    timeout = config.fleet.heartbeat_timeout
    overdue: dict[str, OverdueAttempt] = {}
    for state in _OVERDUE_STATES:
        attempt = await store.overdue_attempt(conn, campaign_id, state, stall)
        if attempt is not None:
            overdue[state] = attempt
    zones_open = None
    if campaign.window_per_contact:
        tallies = (await zones_store.due_by_zone_key(conn, [campaign_id])).get(campaign_id, [])
        zones_open = local_windows(campaign, tallies, now).any_open
    return Facts(
        zones_open=zones_open,
        now=now,
        scheduler=scheduler,
        campaign=campaign,
        activity=activity,
        window=window,
        bots=await bot_names(conn),
        pool=await store.pool(conn, campaign_id),
        prompt=prompt,
        contact_variables=variables,
        lacking=lacking,
        fleet_capacity=await fleet_store.fleet_capacity(conn, timeout),
        fleet_free=sum(w.free for w in await fleet_store.fleet_free(conn, timeout)),
        daemons=await store.live_daemons(conn, alive_since),
        recent=await store.recent_attempts(conn, campaign_id, RECENT_ATTEMPTS),
        open_attempts=await store.open_attempts(conn, campaign_id),
        finishing=await store.finishing_decisions(conn, campaign_id),
        waiting={
            row.state: row for row in await store.waiting_contacts(conn, campaign_id, now, stall)
        },
        overdue_calls=overdue,
        test_call=(
            None
            if campaign.bot_name is None
            else await store.last_test_call(conn, campaign.bot_name)
        ),
        report_rows=(await stats_store.attempt_rates(conn, campaign_id)).attempts,
    )
