"""The operator console in a real Chromium against a running daemon on the lab: every screen the
triage guide names, followed as an operator follows it (docs/console.md has the guide sentence →
page → element → test table)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import BrowserContext, Page, expect

from ..e2e.campaigns import E2E_PREFIX, cli, create_campaign, show
from ..e2e.lab_helpers import lab_calls
from .conftest import WAIT_MS, api

pytestmark = pytest.mark.e2e


def shot(page: Page, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll `check` until it returns something true; fail saying what was last seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    raise AssertionError(f"{what}: not after {timeout}s (last seen: {last!r})")


def next_enabled(page: Page) -> None:
    expect(page.get_by_test_id("wizard-next")).to_be_enabled()


def next_disabled(page: Page) -> None:
    expect(page.get_by_test_id("wizard-next")).to_be_disabled()


def current_step(page: Page, step: str) -> None:
    expect(page.locator('[data-testid=wizard-step][aria-current="step"]')).to_have_attribute(
        "data-step", step
    )


# --- sign-in, sessions, CSRF -----------------------------------------------------------------


def test_sign_in_sign_out_and_the_guards(
    context: BrowserContext,
    operator_token: str,
    artifacts: Path,
    lab_config_path: Path,
    tmp_path: Path,
) -> None:
    page = context.new_page()
    page.goto("/campaigns")  # no session yet
    page.wait_for_url("**/login")
    shot(page, artifacts, "login")
    page.fill("input[name=token]", "not-a-token")
    page.press("input[name=token]", "Enter")
    expect(page.get_by_role("alert")).to_contain_text("does not sign in")
    page.fill("input[name=token]", operator_token)
    page.press("input[name=token]", "Enter")
    page.wait_for_url("**/campaigns")
    cookie = next(c for c in context.cookies() if c["name"] == "dialler_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > time.time()
    csp = page.request.get("/campaigns").headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp

    # A state-changing request without the CSRF token is refused, with the session cookie.
    draft = cli(lab_config_path, "campaign", "create", str(_draft_file(tmp_path))).stdout.strip()
    refused = page.request.post(f"/campaigns/{draft}/start")
    assert refused.status == 403, refused.text()
    assert show(lab_config_path, draft)["state"] == "draft"

    page.get_by_test_id("sign-out").click()
    page.wait_for_url("**/login")
    page.goto(f"/campaigns/{draft}")
    page.wait_for_url("**/login")


def make_bot(config: Path, directory: Path, prompt: str) -> str:
    """A bot created through the CLI; its name."""
    name = f"bot-{uuid.uuid4().hex[:8]}"
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "prompt": prompt}))
    cli(config, "bot", "create", str(path))
    return name


def _draft_file(directory: Path, **fields: Any) -> Path:
    """A draft without a bot and with an empty pool (allowed in a draft)."""
    spec: dict[str, Any] = {"name": f"draft-{uuid.uuid4().hex[:8]}", "numbers": []}
    spec.update(fields)
    path = directory / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


# --- copy, refused start, escaping -----------------------------------------------------------


def test_copy_id_and_a_refused_start_lists_each_problem(
    page: Page, lab_config_path: Path, tmp_path: Path, artifacts: Path
) -> None:
    draft = cli(
        lab_config_path, "campaign", "create", str(_draft_file(tmp_path, concurrency=0))
    ).stdout.strip()
    page.goto("/campaigns")
    row = page.locator(f'[data-testid=campaign-row][data-id="{draft}"]')
    expect(row).to_contain_text(draft)
    expect(row.get_by_test_id("state-badge")).to_have_attribute("data-state", "draft")
    row.get_by_test_id("copy-id").click()
    expect(row.get_by_test_id("copy-id")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == draft
    shot(page, artifacts, "campaigns")

    page.goto(f"/campaigns/{draft}")
    expect(page.get_by_test_id("live-activity")).to_have_text("Draft")
    expect(page.get_by_test_id("live-activity")).to_have_attribute("data-colour", "grey")
    page.get_by_test_id("start").click()
    problems = page.get_by_test_id("problem")
    expect(problems.first).to_be_visible()
    texts = problems.all_text_contents()
    # no bot, empty pool, concurrency below 1, no contacts: one line each
    assert len(texts) >= 4, texts
    assert any("bot" in t for t in texts) and any("concurrency" in t for t in texts), texts
    page.get_by_test_id("copy-id").first.click()
    assert page.evaluate("navigator.clipboard.readText()") == draft
    shot(page, artifacts, "start-refused")


def test_names_and_csv_values_render_as_text(
    page: Page, lab_config_path: Path, tmp_path: Path
) -> None:
    evil = f"<img src=x onerror=alert(1)> {uuid.uuid4().hex[:6]}"
    bot = make_bot(lab_config_path, tmp_path, "Hello {{Note}}")
    draft = cli(
        lab_config_path,
        "campaign",
        "create",
        str(_draft_file(tmp_path, name=evil, bot=bot, numbers=["+441632960001"])),
    ).stdout.strip()
    page.goto("/campaigns")
    expect(page.locator(f'[data-testid=campaign-row][data-id="{draft}"]')).to_contain_text(evil)
    assert page.locator("img").count() == 0
    page.goto(f"/campaigns/{draft}/edit")
    for _ in range(3):
        page.get_by_test_id("wizard-next").click()
    current_step(page, "csv")
    upload = tmp_path / "evil.csv"
    upload.write_text(
        "phone_number,Note\n<script>alert(2)</script>,x\n+447700900001,<script>x</script>\n"
    )
    page.set_input_files("#f-csv", str(upload))
    expect(page.get_by_test_id("csv-rejected")).to_have_text("1")
    expect(page.locator("#csv-rows")).to_contain_text("<script>")
    assert page.locator("script:not([src])").count() == 0


# --- bots and the wizard ---------------------------------------------------------------------


def create_bot_in_page(page: Page, name: str, prompt: str) -> None:
    """The Bots page's form; lands on the new bot's page."""
    page.goto("/bots")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_label("Speech-to-Text").fill("deepgram")
    page.get_by_label("Language model").fill("gpt-4o")
    page.get_by_label("Text-to-Speech").fill("eleven")
    page.get_by_role("button", name="Create bot").click()
    page.wait_for_url(f"**/bots/{name}")
    expect(page.locator("mark.variable").first).to_have_text("{{CustomerName}}")


def walk_wizard(
    page: Page,
    name: str,
    bot: str,
    numbers: list[str],
    csv_path: Path,
    artifacts: Path,
    *,
    rejected: int | None = None,
    warnings: tuple[str, ...] = (),
) -> str:
    """Create a campaign through the four steps, checking at each that Next stays disabled
    until the step is valid; returns the campaign's id."""
    page.goto("/campaigns")
    page.get_by_test_id("new-campaign").click()
    page.wait_for_url("**/campaigns/new")
    current_step(page, "basics")
    next_disabled(page)  # no name, no bot
    page.get_by_label("Campaign name").fill(name)
    expect(page.locator('[data-testid=field-error][data-field="bot"]')).to_be_visible()
    next_disabled(page)  # still no bot
    page.get_by_label("Bot").select_option(bot)
    expect(page.locator("[data-testid=field-error][data-field=bot]")).to_have_count(0)
    next_enabled(page)
    shot(page, artifacts, "wizard-basics")
    page.get_by_test_id("wizard-next").click()

    current_step(page, "numbers")
    next_disabled(page)  # an empty pool blocks dialling
    expect(page.locator('[data-testid=field-error][data-field="numbers"]')).to_be_visible()
    for number in numbers:
        page.get_by_label(number, exact=False).check()
    next_enabled(page)
    shot(page, artifacts, "wizard-numbers")
    page.get_by_test_id("wizard-next").click()

    current_step(page, "config")
    expect(page.get_by_label("Concurrency")).to_have_attribute("placeholder", "50")
    page.get_by_label("Start (HH:MM)").fill("25:00")
    expect(page.locator('[data-testid=field-error][data-field="window.start"]')).to_be_visible()
    next_disabled(page)
    page.get_by_label("Start (HH:MM)").fill("00:00")
    page.get_by_label("End (HH:MM)").fill("24:00")
    for day in ("sat", "sun"):
        page.locator(f"#d-{day}").check()
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
        page.locator(f"#d-{day}").uncheck()
    expect(page.locator('[data-testid=field-error][data-field="window.days"]')).to_be_visible()
    next_disabled(page)
    for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"):
        page.locator(f"#d-{day}").check()
    page.get_by_label("Concurrency").fill("0")
    expect(page.locator('[data-testid=field-error][data-field="concurrency"]')).to_be_visible()
    next_disabled(page)
    page.get_by_label("Concurrency").fill("2")
    page.get_by_label("Ring timeout").fill("5s")
    page.get_by_label("Max Attempts").fill("1")
    page.get_by_label("Stop redials after a meaningful connect longer than").fill("10s")
    page.get_by_label("Redial after a short connect shorter than").fill("20s")
    expect(page.get_by_test_id("redial-overlap-warning")).to_be_visible()
    page.get_by_label("Redial after a short connect shorter than").fill("")
    expect(page.get_by_test_id("redial-overlap-warning")).to_be_hidden()
    next_enabled(page)
    shot(page, artifacts, "wizard-config")
    page.get_by_test_id("wizard-next").click()

    current_step(page, "csv")
    expect(page.get_by_test_id("wizard-finish")).to_be_disabled()  # no contacts yet
    page.set_input_files("#f-csv", str(csv_path))
    expect(page.get_by_test_id("csv-imported")).not_to_have_text("0")
    if rejected is not None:
        expect(page.get_by_test_id("csv-rejected")).to_have_text(str(rejected))
        expect(page.get_by_test_id("csv-rejected-row")).to_contain_text(["Line 3"])
    for text in warnings:
        expect(page.get_by_test_id("csv-warning").first).to_contain_text(text)
    shot(page, artifacts, "wizard-csv")
    expect(page.get_by_test_id("wizard-finish")).to_be_enabled()
    page.get_by_test_id("wizard-finish").click()
    page.wait_for_url("**/campaigns/*-*")
    return page.url.rsplit("/", 1)[-1]


def page_fields(page: Page) -> dict[str, str]:
    """Every figure the detail page shows with the JSON key path it stands for."""
    pairs = page.eval_on_selector_all(
        "[data-field]", "els => els.map(e => [e.dataset.field, e.dataset.value])"
    )
    return {path: value for path, value in pairs if value is not None}


def as_shown(value: Any) -> str:
    """A JSON value as the page's `data-value` writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def at_path(data: dict[str, Any], path: str) -> Any:
    value: Any = data
    for part in path.split("."):
        value = value[part]
    return value


@pytest.mark.timeout(240)
def test_wizard_start_live_report_and_the_same_figures_everywhere(
    page: Page,
    lab_config_path: Path,
    operator_token: str,
    console_url: str,
    tmp_path: Path,
    artifacts: Path,
) -> None:
    bot = f"bot-{uuid.uuid4().hex[:8]}"
    create_bot_in_page(page, bot, "Hello {{CustomerName}}, about your plan.")
    shot(page, artifacts, "bot")
    numbers = [f"+4477009000{n:02d}" for n in range(1, 5)]  # answer, hold 1–4 s
    rows = tmp_path / "contacts.csv"
    # one row that cannot be dialled, and a column misspelling the prompt's variable
    lines = ["phone_number,CustomerNmae", *(f"{n},Customer {n[-1]}" for n in numbers)]
    rows.write_text("\n".join([*lines[:2], "not-a-number,Bob", *lines[2:]]) + "\n")
    name = f"{E2E_PREFIX}console-{uuid.uuid4().hex[:8]}"
    campaign = walk_wizard(
        page,
        name,
        bot,
        ["+441632960001"],
        rows,
        artifacts,
        rejected=1,
        warnings=("did you mean 'CustomerNmae'",),
    )
    before = lab_calls()

    page.get_by_test_id("start").click()
    expect(page.get_by_test_id("state-badge")).to_have_attribute("data-state", "running")
    live = page.get_by_test_id("live-activity")
    expect(live).to_have_text("Live Activity")
    expect(live).to_have_attribute("data-colour", "green")
    expect(page.get_by_test_id("call-row")).to_have_count(len(numbers))
    wait_until(
        "the carrier counts the campaign's calls",
        lambda: {n for n in numbers if lab_calls().get(n, 0) > before.get(n, 0)},
    )
    shot(page, artifacts, "campaign-running")
    wait_until(
        "the campaign completes", lambda: show(lab_config_path, campaign)["state"] == "completed"
    )
    expect(live).to_have_text("Completed", timeout=WAIT_MS)  # the page follows without a reload
    expect(live).to_have_attribute("data-colour", "grey")
    for row in page.get_by_test_id("call-row").all():
        expect(row.get_by_test_id("attempts")).to_have_text("1/1")

    with page.expect_download() as download:
        page.get_by_test_id("report-download").click()
    downloaded = Path(download.value.path()).read_text()
    assert downloaded == cli(lab_config_path, "report", "attempts", campaign).stdout
    assert len(downloaded.strip().splitlines()) == len(numbers) + 1

    # The same figures in `campaign show --json`, the API and the page, field by field.
    page.reload()
    shown = page_fields(page)
    from_cli = show(lab_config_path, campaign)
    from_api = api(console_url, operator_token, f"/v1/campaigns/{campaign}")
    assert len(shown) >= 30, shown
    for path, value in shown.items():
        assert as_shown(at_path(from_cli, path)) == value, (path, value, from_cli)
        assert as_shown(at_path(from_api, path)) == value, (path, value, from_api)
    assert from_cli == from_api
    stale = page.get_by_test_id("stat-last-dial").get_attribute("data-stale")
    assert stale == as_shown(from_cli["stalled"])  # orange exactly when stalled
    shot(page, artifacts, "campaign-completed")


@pytest.mark.timeout(180)
def test_pause_close_the_window_resume_shows_the_orange_text(
    page: Page, lab_config_path: Path, tmp_path: Path, artifacts: Path
) -> None:
    # ten contacts that each hold 10 s, one at a time: the campaign keeps running
    campaign = create_campaign(
        lab_config_path, tmp_path, [f"+4477009000{n}" for n in range(10, 20)], concurrency=1
    )
    page.goto(f"/campaigns/{campaign}")
    live = page.get_by_test_id("live-activity")
    expect(live).to_have_text("Live Activity")
    page.get_by_test_id("pause").click()
    expect(live).to_have_text("Paused")
    expect(live).to_have_attribute("data-colour", "grey")

    page.get_by_role("link", name="Edit in the wizard").click()
    page.wait_for_url("**/edit")
    page.get_by_test_id("wizard-next").click()
    page.get_by_test_id("wizard-next").click()
    current_step(page, "config")
    now = datetime.now(UTC)
    start, end = ("23:00", "23:30") if now.hour < 12 else ("00:00", "00:30")
    page.get_by_label("Start (HH:MM)").fill(start)
    page.get_by_label("End (HH:MM)").fill(end)
    next_enabled(page)
    page.get_by_test_id("wizard-next").click()  # saves the settings
    step = page.locator('[data-testid=wizard-step][aria-current="step"]')
    wait_until(
        "the settings saved (the CSV step) or refused (a message)",
        lambda: (
            step.get_attribute("data-step") == "csv" or page.locator("#wizard-error").inner_text()
        ),
        timeout=WAIT_MS / 1000,
    )
    assert page.locator("#wizard-error").inner_text() == ""
    current_step(page, "csv")
    page.get_by_test_id("wizard-finish").click()
    page.wait_for_url(f"**/campaigns/{campaign}")

    page.get_by_test_id("resume").click()
    expect(live).to_have_text("Paused — Outside time window")
    expect(live).to_have_attribute("data-colour", "orange")
    shot(page, artifacts, "campaign-outside-window")
    page.get_by_test_id("cancel").click()
    page.get_by_test_id("cancel").click()  # the second click confirms
    # cancelled: no new dials; it completes once the live call (10 s at most) ends
    wait_until(
        "the cancelled campaign completes",
        lambda: show(lab_config_path, campaign)["state"] == "completed",
    )


# --- fleet, carriers, suppressions, the test call --------------------------------------------


def test_fleet_carriers_and_suppressions(page: Page, artifacts: Path) -> None:
    page.goto("/bots")
    expect(page.get_by_test_id("bot-row").first).to_be_visible()
    shot(page, artifacts, "bots")
    page.goto("/fleet")
    expect(page.get_by_test_id("worker-row").first).to_be_visible()
    assert page.get_by_test_id("fleet-free").inner_text().isdigit()
    shot(page, artifacts, "fleet")

    page.goto("/carriers")
    expect(page.get_by_test_id("number-row")).to_have_count(10)
    row = page.locator('[data-testid=number-row][data-number="+441632960010"]')
    try:
        row.get_by_test_id("disable").click()
        expect(row).to_have_attribute("data-enabled", "false")
        shot(page, artifacts, "carriers")
        row.get_by_test_id("enable").click()
        expect(row).to_have_attribute("data-enabled", "true")
    finally:
        page.request.post(
            "/carriers/%2B441632960010/enable",
            headers={
                "X-CSRF-Token": page.locator("meta[name=csrf-token]").get_attribute("content") or ""
            },
        )

    number = f"+4477009{uuid.uuid4().int % 10**5:05d}"
    page.goto("/suppressions")
    page.get_by_label("Number", exact=True).fill(number)
    page.get_by_label("Reason", exact=True).fill("asked not to be called")
    page.get_by_role("button", name="Add").click()
    entry = page.locator(f'[data-testid=suppression-row][data-number="{number}"]')
    expect(entry).to_be_visible()
    page.get_by_label("Search", exact=True).fill(number[-5:])
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("suppression-row")).to_have_count(1)
    shot(page, artifacts, "suppressions")
    entry.get_by_role("button", name="Remove").click()
    expect(entry).to_have_count(0)


def test_a_test_call_shows_its_stages_live(
    page: Page, lab_config_path: Path, tmp_path: Path, artifacts: Path
) -> None:
    bot = make_bot(lab_config_path, tmp_path, "Hello {{CustomerName}}")
    page.goto(f"/bots/{bot}")
    page.get_by_label("Number to call").fill("+447700900001")
    page.get_by_test_id("test-call").click()
    stages = page.get_by_test_id("test-call-stage")
    expect(page.locator("[data-testid=test-call-stage][data-stage=result]")).to_be_visible()
    seen = [s.get_attribute("data-stage") for s in stages.all()]
    assert seen[0] == "originated" and "answered" in seen and "attached" in seen, seen
    shot(page, artifacts, "bot-test-call")

    page.get_by_label("Number to call").fill("+447700900486")  # the carrier rejects: busy
    page.get_by_test_id("test-call").click()
    failed = page.locator("[data-testid=test-call-stage][data-stage=failed]")
    expect(failed).to_contain_text("486")
    expect(failed).to_contain_text("never rang")


def test_a_viewer_sees_and_changes_nothing_and_a_worker_token_does_not_sign_in(
    context: BrowserContext,
    viewer_token: str,
    lab_config_path: Path,
    tmp_path: Path,
) -> None:
    worker_token = (lab_config_path.parent / "worker-tokens").read_text().split()[0]
    page = context.new_page()
    page.goto("/login")
    page.fill("input[name=token]", worker_token)
    page.press("input[name=token]", "Enter")
    expect(page.get_by_role("alert")).to_contain_text("does not sign in")

    draft = cli(lab_config_path, "campaign", "create", str(_draft_file(tmp_path))).stdout.strip()
    page.fill("input[name=token]", viewer_token)
    page.press("input[name=token]", "Enter")
    page.wait_for_url("**/campaigns")
    expect(page.get_by_text("(read-only)")).to_be_visible()
    page.goto(f"/campaigns/{draft}")
    for action in ("start", "pause", "resume", "cancel"):
        expect(page.get_by_test_id(action)).to_be_disabled()
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content") or ""
    refused = page.request.post(f"/campaigns/{draft}/start", headers={"X-CSRF-Token": csrf})
    assert refused.status == 403, refused.text()
    assert show(lab_config_path, draft)["state"] == "draft"
