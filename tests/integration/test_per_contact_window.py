"""The callee's own calling window against a real PostgreSQL (CONTRACT, "Campaign window per
contact"): zone keys set at import and by `contacts add`, contacts that can never be called
cancelled and reported, the claim's due step per open zone group, and the split `campaign
show` needs."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dialler.campaigns.checks import StartFacts, never_open_warnings
from dialler.campaigns.spec import CampaignSpec
from dialler.contacts.importer import import_contacts
from dialler.contacts.single import add_contact
from dialler.domain.zones import CAMPAIGN_ZONE_KEY
from dialler.errors import InvalidField
from dialler.store import zones as zones_store
from dialler.store.pool import connect

from .test_campaign_cli import Lab, good_campaign

pytestmark = pytest.mark.integration

NEW_YORK = "+12125550101"
LOS_ANGELES = "+13105550102"
LONDON = "+442079460103"
SYDNEY = "+61291230104"
RUSSIAN_MOBILE = "+79161230105"  # every zone of Russia: no nine-to-five moment in common
FICTIONAL = "+447700900106"  # no zone data: the campaign's zone


@pytest.fixture
async def conn(db_dsn: str) -> AsyncIterator[Any]:
    connection = await connect(db_dsn)
    try:
        yield connection
    finally:
        await connection.close()


async def make_campaign(
    conn: Any, name: str = "Nationwide", *, per_contact: bool = True, zone: str = "UTC"
) -> uuid.UUID:
    bot_id = await conn.fetchval(
        "INSERT INTO bots (name, prompt) VALUES ($1, 'Hello') RETURNING id", f"bot-{name}"
    )
    campaign_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO campaigns (name, bot_id, window_start, window_end, timezone,"
        " window_per_contact) VALUES ($1, $2, '09:00', '18:00', $3, $4) RETURNING id",
        name,
        bot_id,
        zone,
        per_contact,
    )
    return campaign_id


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


async def keys_by_phone(conn: Any, campaign_id: uuid.UUID) -> dict[str, tuple[str, str, Any]]:
    rows = await conn.fetch(
        "SELECT phone_number, zone_key, state, state_reason FROM contacts WHERE campaign_id = $1",
        campaign_id,
    )
    return {
        row["phone_number"]: (row["zone_key"], row["state"], row["state_reason"]) for row in rows
    }


async def test_import_sets_zone_keys_and_cancels_contacts_never_callable(
    conn: Any, tmp_path: Path
) -> None:
    campaign_id = await make_campaign(conn)
    source = write_csv(
        tmp_path / "contacts.csv",
        [
            ["phone_number", "name", "timezone"],
            [NEW_YORK, "Ann", ""],
            [LOS_ANGELES, "Bob", ""],
            [LONDON, "Cy", "Europe/Paris"],  # the column overrides the number
            [SYDNEY, "Di", "Australia/Sidney"],  # a row error, named in the errors file
            [RUSSIAN_MOBILE, "Ed", ""],
            [FICTIONAL, "Fay", ""],
        ],
    )
    summary = await import_contacts(conn, campaign_id, source, "US", None)

    assert (summary.imported, summary.rejected, summary.no_common_window) == (5, 1, 1)
    assert "1 cancelled: their time zones never share an open moment" in summary.describe()
    [warning] = summary.warnings
    assert warning.startswith("1 contact(s) cancelled: the calling window is never open")
    assert "Asia/Kamchatka" in warning and "Europe/Moscow" in warning
    keys = await keys_by_phone(conn, campaign_id)
    assert keys[NEW_YORK] == ("America/New_York", "pending", None)
    assert keys[LOS_ANGELES] == ("America/Los_Angeles", "pending", None)
    assert keys[LONDON] == ("Europe/Paris", "pending", None)
    assert keys[FICTIONAL] == (CAMPAIGN_ZONE_KEY, "pending", None)
    russian_key, state, reason = keys[RUSSIAN_MOBILE]
    assert (state, reason) == ("cancelled", "no_common_window")
    assert "Europe/Moscow" in russian_key.split()
    # The override stays a variable too.
    variables = await conn.fetchval(
        "SELECT variables::text FROM contacts WHERE phone_number = $1", LONDON
    )
    assert json.loads(variables) == {"name": "Cy", "timezone": "Europe/Paris"}
    assert summary.errors_path is not None
    with summary.errors_path.open(newline="", encoding="utf-8") as handle:
        errors = list(csv.reader(handle))
    assert errors[1][:2] == [
        "5",
        "timezone: unknown time zone 'Australia/Sidney' (did you mean 'Australia/Sydney'?)",
    ]


async def test_without_per_contact_windows_keys_are_kept_and_nobody_is_cancelled(
    conn: Any, tmp_path: Path
) -> None:
    campaign_id = await make_campaign(conn, per_contact=False)
    source = write_csv(tmp_path / "contacts.csv", [["phone_number"], [NEW_YORK], [RUSSIAN_MOBILE]])
    summary = await import_contacts(conn, campaign_id, source, "US", None)
    assert (summary.imported, summary.no_common_window, summary.warnings) == (2, 0, [])
    keys = await keys_by_phone(conn, campaign_id)
    assert keys[NEW_YORK] == ("America/New_York", "pending", None)
    assert keys[RUSSIAN_MOBILE][1] == "pending"
    # Set to per-contact later (a draft's edit), the start check reports them.
    counts = await zones_store.campaign_zone_keys(conn, campaign_id)
    spec = CampaignSpec(name="Nationwide", window_per_contact=True)
    facts = StartFacts(
        spec=spec,
        bots=["bot"],
        pool={},
        has_contacts=True,
        zone_keys={count.zone_key: count.n for count in counts},
    )
    [warning] = never_open_warnings(facts)
    assert warning.startswith("1 contact(s) will be cancelled: the calling window 09:00-18:00")
    cancelled = await zones_store.cancel_never_open(conn, campaign_id, [keys[RUSSIAN_MOBILE][0]])
    assert [count.n for count in cancelled] == [1]
    assert (await keys_by_phone(conn, campaign_id))[RUSSIAN_MOBILE][1:] == (
        "cancelled",
        "no_common_window",
    )


async def test_contacts_add_takes_a_timezone_field(conn: Any) -> None:
    campaign_id = await make_campaign(conn)
    added = await add_contact(conn, campaign_id, NEW_YORK, {"timezone": "Asia/Tokyo"}, "US")
    assert added.warnings == []
    never = await add_contact(conn, campaign_id, RUSSIAN_MOBILE, {}, "US")
    assert any("never open at the same time" in warning for warning in never.warnings)
    with pytest.raises(InvalidField, match="unknown time zone 'Mars/Base'") as bad:
        await add_contact(conn, campaign_id, LOS_ANGELES, {"timezone": "Mars/Base"}, "US")
    assert bad.value.field == "metadata.timezone"
    keys = await keys_by_phone(conn, campaign_id)
    assert keys[NEW_YORK] == ("Asia/Tokyo", "pending", None)
    assert keys[RUSSIAN_MOBILE][1:] == ("cancelled", "no_common_window")
    assert LOS_ANGELES not in keys


async def test_many_zone_groups_are_found_by_a_skip_scan(conn: Any) -> None:
    campaign_id = await make_campaign(conn)
    await conn.execute(
        "INSERT INTO contacts (campaign_id, phone_number, zone_key)"
        " SELECT $1, '+1555' || lpad(n::text, 7, '0'), 'Zone/' || (n % 7)"
        " FROM generate_series(1, 5000) AS n",
        campaign_id,
    )
    keys = await zones_store.waiting_zone_keys(conn, campaign_id)
    assert keys == [f"Zone/{n}" for n in range(7)]


# --- through the CLI: settings, start, `campaign show`, the call list -------------------------


def etc_zone(offset: int) -> str:
    """The fixed-offset IANA zone `offset` hours east of UTC (`Etc/GMT-3` is UTC+3)."""
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def open_and_closed_zones(now: datetime) -> tuple[str, str]:
    """A zone where it is about noon at `now`, and one where it is about midnight: a 09:00 to
    15:00 window is open in the first and closed in the second for three hours either way."""
    noon = 12 - now.hour  # within -11..12
    midnight = noon - 12 if noon >= 0 else noon + 12  # within -12..12
    return etc_zone(noon), etc_zone(midnight)


PER_CONTACT = '{start: "09:00", end: "15:00", days: [mon, tue, wed, thu, fri, sat, sun]'


@pytest.fixture
async def lab(tmp_path: Path, db_dsn: str) -> Lab:
    return Lab(tmp_path, db_dsn)


async def test_per_contact_round_trips_through_create_edit_and_show(lab: Lab) -> None:
    await lab.bot()
    campaign_id = await lab.campaign(good_campaign(window=PER_CONTACT + ", per_contact: true}"))
    shown = json.loads((await lab.ok("campaign", "show", campaign_id, "--json")).out)
    assert shown["settings"]["window"] == {
        "start": "09:00",
        "end": "15:00",
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "timezone": "UTC",
        "per_contact": True,
    }
    await lab.ok("campaign", "edit", campaign_id, lab.file("c.yaml", good_campaign()))
    shown = json.loads((await lab.ok("campaign", "show", campaign_id, "--json")).out)
    assert shown["settings"]["window"]["per_contact"] is False
    assert shown["waiting_for_local_window"] == 0


async def test_start_cancels_contacts_whose_zones_never_share_an_open_moment(
    lab: Lab, conn: Any
) -> None:
    await lab.bot()
    # Imported while the window is the campaign's own: nobody is cancelled at import.
    campaign_id = await lab.campaign(good_campaign(window=PER_CONTACT + "}"))
    lab.file("contacts.csv", f"phone_number\n{NEW_YORK}\n{RUSSIAN_MOBILE}\n{LONDON}\n")
    imported = await lab.ok("contacts", "import", campaign_id, "contacts.csv")
    assert "cancelled" not in imported.out + imported.err
    await lab.ok(
        "campaign",
        "edit",
        campaign_id,
        lab.file("c.yaml", good_campaign(window=PER_CONTACT + ", per_contact: true}")),
    )
    started = await lab.ok("campaign", "start", campaign_id)
    [warning] = [line for line in started.err.splitlines() if "cancelled" in line]
    assert warning.startswith(
        "dialler: warning: 1 contact(s) were cancelled: the calling window 09:00-15:00 is "
        "never open at the same time in all of "
    )
    assert "Asia/Kamchatka" in warning and "(16 in all)" in warning
    calls = json.loads((await lab.ok("calls", campaign_id, "--json")).out)
    by_phone = {call["phone_number"]: call for call in calls}
    assert (by_phone[RUSSIAN_MOBILE]["state"], by_phone[RUSSIAN_MOBILE]["reason"]) == (
        "cancelled",
        "no_common_window",
    )
    assert by_phone[NEW_YORK]["state"] == "pending" and by_phone[NEW_YORK]["reason"] is None
    assert by_phone[LONDON]["reason"] is None
    # Zone keys went in with the rows (no staging table of their own).
    keys = await keys_by_phone(conn, uuid.UUID(campaign_id))
    assert keys[NEW_YORK][0] == "America/New_York"
    assert keys[LONDON][0] == "Europe/London"


async def test_show_counts_contacts_waiting_for_their_local_window(lab: Lab) -> None:
    open_zone, closed_zone = open_and_closed_zones(datetime.now(UTC))
    await lab.bot()
    # The campaign's own zone is closed: only the contacts' clocks can open it.
    window = PER_CONTACT + f", timezone: {closed_zone}, per_contact: true}}"
    campaign_id = await lab.campaign(good_campaign(window=window))
    rows = [f"+4477009001{n:02d},{open_zone}" for n in range(3)]
    rows += [f"+4477009002{n:02d},{closed_zone}" for n in range(2)]
    lab.file("contacts.csv", "phone_number,timezone\n" + "\n".join(rows) + "\n")
    await lab.ok("contacts", "import", campaign_id, "contacts.csv")
    await lab.ok("campaign", "start", campaign_id)

    shown = json.loads((await lab.ok("campaign", "show", campaign_id, "--json")).out)
    assert shown["waiting_for_local_window"] == 2, (open_zone, closed_zone, shown)
    assert shown["activity"] == "idle_waiting_for_retries", shown
    assert shown["stats"]["pending"] == 5

    # Every contact in the closed zone: nobody is callable, the campaign is outside its window.
    closed_only = await lab.campaign(good_campaign("Night", window=window), name="night.yaml")
    lab.file("night.csv", "phone_number,timezone\n" + "\n".join(rows[3:]) + "\n")
    await lab.ok("contacts", "import", closed_only, "night.csv")
    await lab.ok("campaign", "start", closed_only)
    night = json.loads((await lab.ok("campaign", "show", closed_only, "--json")).out)
    assert (night["activity"], night["waiting_for_local_window"]) == ("paused_outside_window", 2)
    assert night["stalled"] is False
