"""The attempt report against a real PostgreSQL: CONTRACT's columns in CONTRACT's order, formula
cells neutralised (`=`, `+`, `-`, `@`, tab, CR), E.164 columns left as they are, and a variable
named like a fixed column written `var_<name>` — expectations copied from CONTRACT.md
("Attempt report"), not from `dialler.report`."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator

import pytest

from dialler.report import write_report
from dialler.store.pool import connect

from ..contract import REPORT_COLUMNS
from .test_triage import LAB_NUMBER, Lab, make_config, phone

pytestmark = pytest.mark.integration

#: A value for each prefix CONTRACT names, and the cell the report must hold for it.
FORMULAS = {
    "Eq": ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
    "Plus": ("+1234", "'+1234"),
    "Minus": ("-2+3", "'-2+3"),
    "At": ("@SUM(A1)", "'@SUM(A1)"),
    "Tab": ("\tcmd", "'\tcmd"),
    "Plain": ("Ann = 1", "Ann = 1"),  # only a leading character counts
}


@pytest.fixture
async def lab(db_dsn: str) -> AsyncIterator[Lab]:
    conn = await connect(db_dsn)
    try:
        built = Lab(conn, db_dsn, make_config(db_dsn, ()))
        await built.configure()
        await built.daemon()
        await built.bot()
        yield built
    finally:
        await conn.close()


async def report_of(lab: Lab, campaign: uuid.UUID) -> tuple[list[str], list[dict[str, str]]]:
    out = io.StringIO()
    count = await write_report(lab.conn, campaign, out)
    reader = csv.reader(io.StringIO(out.getvalue(), newline=""))
    header = next(reader)
    rows = [dict(zip(header, row, strict=True)) for row in reader]
    assert count == len(rows)
    return header, rows


async def test_the_header_is_the_contract_column_list(lab: Lab) -> None:
    campaign = await lab.campaign()
    await lab.done_call(campaign, 1)
    header, _rows = await report_of(lab, campaign)
    assert header[: len(REPORT_COLUMNS)] == REPORT_COLUMNS


async def test_the_fixed_columns_come_first_in_the_contract_order(lab: Lab) -> None:
    # Every fixed column the report writes is one of CONTRACT's, in CONTRACT's order (the
    # `asterisk` column is checked by the test above).
    campaign = await lab.campaign()
    await lab.done_call(campaign, 1)
    header, [row] = await report_of(lab, campaign)
    fixed = [c for c in header if c in REPORT_COLUMNS]
    assert fixed == [c for c in REPORT_COLUMNS if c in fixed]
    assert header[: len(fixed)] == fixed
    assert REPORT_COLUMNS[:17] == fixed[:17]
    assert (row["outcome"], row["sip_code"], row["disposition"], row["next_action"]) == (
        "answered",
        "200",
        "completed",
        "done",
    )
    assert row["phone_number"] == phone(1) and row["caller_id"] == LAB_NUMBER


async def test_formula_cells_are_neutralised_and_numbers_stay_e164(lab: Lab) -> None:
    campaign = await lab.campaign()
    variables = {name: raw for name, (raw, _cell) in FORMULAS.items()}
    contact = await lab.contact(campaign, 1, state="done", variables=variables, attempts_used=1)
    await lab.attempt(campaign, contact, disposition="-custom")  # a bot's disposition too
    _header, [row] = await report_of(lab, campaign)
    for name, (_raw, cell) in FORMULAS.items():
        assert row[name] == cell, name
    assert row["disposition"] == "'-custom"
    # E.164 starts with `+`, and stays as it is.
    assert row["phone_number"] == phone(1)
    assert row["caller_id"] == LAB_NUMBER


async def test_a_cell_starting_with_cr_is_neutralised_and_keeps_its_row(lab: Lab) -> None:
    campaign = await lab.campaign()
    contact = await lab.contact(
        campaign, 1, state="done", variables={"Cr": "\rcmd", "After": "x"}, attempts_used=1
    )
    await lab.attempt(campaign, contact)
    _header, [row] = await report_of(lab, campaign)
    assert (row["Cr"], row["After"]) == ("'\rcmd", "x")


async def test_variables_follow_in_first_seen_order_and_clashes_become_var_name(
    lab: Lab,
) -> None:
    campaign = await lab.campaign()
    first = await lab.contact(
        campaign, 1, state="done", variables={"Name": "Ann", "outcome": "happy"}, attempts_used=1
    )
    second = await lab.contact(
        campaign,
        2,
        state="done",
        variables={"carrier": "Vodafone", "Name": "Bob", "Plan": "gold"},
        attempts_used=1,
    )
    await lab.attempt(campaign, first)
    await lab.attempt(campaign, second, outcome="no_answer", sip_code=None, disposition="no_answer")
    header, rows = await report_of(lab, campaign)
    variables = [c for c in header if c not in REPORT_COLUMNS]
    assert variables == ["Name", "var_outcome", "var_carrier", "Plan"]
    by_phone = {r["phone_number"]: r for r in rows}
    ann, bob = by_phone[phone(1)], by_phone[phone(2)]
    assert (ann["outcome"], ann["var_outcome"], ann["carrier"]) == ("answered", "happy", "lab")
    assert (bob["outcome"], bob["var_carrier"], bob["carrier"]) == ("no_answer", "Vodafone", "lab")
    assert (ann["Plan"], bob["Plan"]) == ("", "gold")  # absent → empty
    assert (bob["sip_code"], bob["duration_seconds"]) == ("", "0")


async def test_only_final_attempts_appear(lab: Lab) -> None:
    campaign = await lab.campaign()
    await lab.done_call(campaign, 1)
    live = await lab.contact(campaign, 2, state="connected", attempts_used=1)
    await lab.attempt(campaign, live, state="connected")
    _header, rows = await report_of(lab, campaign)
    assert [r["phone_number"] for r in rows] == [phone(1)]
