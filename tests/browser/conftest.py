"""Browser fixtures: the lab (the e2e fixtures, reused), one `dialler run` for the whole browser
session, and Debian's Chromium driven by Playwright (its own browser download is not used).

Run under the lab lock (docs/console.md, "Tests"):
`flock /tmp/dialler-lab.lock .venv/bin/pytest tests/browser -q`. Screenshots of every page and
the Chromium version the suite ran with go to `test-artifacts/`.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Dialog,
    Error,
    Page,
    Playwright,
    sync_playwright,
)

from dialler.config import Config

from ..e2e.campaigns import Daemon, running

# Every fixture of the end-to-end suite (the lab, the leftover-campaign and daemon-log checks),
# reused as it is: the browser tests run on the same lab the same way.
from ..e2e.conftest import *  # noqa: F403

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
#: How long a page element has to show what the test waits for (Playwright's unit: ms).
WAIT_MS = 30_000


@pytest.fixture(scope="package")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def _wait_healthy(url: str, daemon: Daemon, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if daemon.proc is not None and daemon.proc.poll() is not None:
            raise AssertionError(f"daemon exited {daemon.proc.returncode}: {daemon.log_tail()}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (OSError, urllib.error.URLError) as exc:
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"daemon not answering {url}/healthz after {timeout}s: {last}")


@pytest.fixture(scope="package")
def viewer_token() -> str:
    """A read-only token: the session's daemon signs viewers in with it."""
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="package")
def console_config(
    lab_config_path: Path, viewer_token: str, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The lab's config plus a viewer token (the lab writes none)."""
    directory = tmp_path_factory.mktemp("console-config")
    viewers = directory / "viewer-tokens"
    viewers.write_text(viewer_token + "\n")
    viewers.chmod(0o600)
    data = yaml.safe_load(lab_config_path.read_text())
    data.setdefault("api", {})["viewer_tokens_file"] = str(viewers)
    path = directory / "dialler.yaml"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="package")
def console_url(
    console_config: Path, lab_config: Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One daemon for the browser session, on the lab config's HTTP listener."""
    log = tmp_path_factory.mktemp("console-daemon") / "daemon.log"
    http = lab_config.listeners.http
    url = f"http://{http.host}:{http.port}"
    with running(console_config, log) as daemon:
        _wait_healthy(url, daemon)
        yield url


@pytest.fixture(scope="package")
def operator_token(lab_config: Config) -> str:
    return lab_config.api.tokens[0]


@pytest.fixture(scope="package")
def playwright(cancel_our_leftovers: None) -> Iterator[Playwright]:
    """Playwright's sync API runs an event loop in this thread while it is open: the lab
    fixtures that call `asyncio.run` (`cancel_our_leftovers`) go first, and it is closed when
    the browser tests end (package scope), before any other test's event loop needs the
    thread; so is the browser session's daemon, which must not dial other tests' campaigns."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright, artifacts: Path) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    # Debian's Chromium moves with security updates: say which one this run used.
    (artifacts / "chromium-version.txt").write_text(f"Chromium {browser.version}\n")
    print(f"browser tests ran with Chromium {browser.version}")
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser, console_url: str) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=console_url, viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=console_url)
    context.set_default_timeout(WAIT_MS)
    yield context
    context.close()


def sign_in(page: Page, token: str) -> None:
    """Sign in as a user does: the token, then Enter."""
    page.goto("/login")
    page.fill("input[name=token]", token)
    page.press("input[name=token]", "Enter")
    page.wait_for_url("**/campaigns")


@pytest.fixture
def page(context: BrowserContext, operator_token: str) -> Iterator[Page]:
    """A signed-in page; any JavaScript dialog (an `alert` injected through data) fails the
    test."""
    page = context.new_page()
    dialogs: list[str] = []
    errors: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    def on_error(exc: Error) -> None:
        errors.append(str(exc))

    page.on("dialog", on_dialog)
    page.on("pageerror", on_error)
    sign_in(page, operator_token)
    yield page
    assert not dialogs, f"a dialog opened: {dialogs}"
    assert not errors, f"the page's script failed: {errors}"


def api(url: str, token: str, path: str) -> Any:
    """GET a `/v1` route with the operator token (the API, for comparisons)."""
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())
