"""What the console costs the daemon: its CPU over the same span with no page open, then with
five campaign detail pages open (each polling its live panel and call list every 2 s, the
triage panel every 15 s), on the same running lab campaign.

    flock /tmp/dialler-lab.lock .venv/bin/python bench/console_load.py [--seconds 60] [--pages 5]

Needs root and the lab (`dialler lab up`, run by this script) and Debian's Chromium. The
campaign dials numbers that answer and hold 2 s, 5 at a time, for the whole measurement; it is
cancelled at the end. CPU is the daemon process's user + system time (/proc/PID/stat), as a
share of one core. Prints both figures, their difference and ratio; docs/benchmarks.md has a run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import yaml
from playwright.sync_api import sync_playwright

from dialler.config import load_config

CHROMIUM = "/usr/bin/chromium"
ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def cli(config: Path | None, *args: str) -> str:
    prefix = ["--config", str(config)] if config else []
    return subprocess.run(
        [sys.executable, "-m", "dialler.cli", *prefix, *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(pid: int, seconds: float) -> float:
    """The share of one core `pid` used over the next `seconds`."""
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)


def campaign(config: Path, directory: Path, contacts: int) -> str:
    name = f"console-load-{uuid.uuid4().hex[:8]}"
    bot = directory / "bot.yaml"
    bot.write_text(yaml.safe_dump({"name": name, "prompt": "Hello {{Name}}"}))
    cli(config, "bot", "create", str(bot))
    spec = {
        "name": name,
        "bot": name,
        "numbers": ["+441632960001", "+441632960002"],
        "concurrency": 5,
        "window": {"start": "00:00", "end": "24:00", "days": ALL_DAYS, "timezone": "UTC"},
        "ring_timeout": "5s",
    }
    path = directory / "campaign.yaml"
    path.write_text(yaml.safe_dump(spec))
    campaign_id = cli(config, "campaign", "create", str(path))
    rows = directory / "contacts.csv"
    # +447700911xxx: answer after about 1 s and hold the lab's default 2 s
    rows.write_text(
        "phone_number,Name\n"
        + "".join(f"+447700911{i:03d},Customer {i}\n" for i in range(contacts))
    )
    cli(config, "contacts", "import", campaign_id, str(rows))
    cli(config, "campaign", "start", campaign_id)
    return campaign_id


def wait_healthy(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the daemon does not answer {url}/healthz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="each measurement's span")
    parser.add_argument("--pages", type=int, default=5)
    args = parser.parse_args()
    config_path = Path(cli(None, "lab", "up").splitlines()[-1])
    config = load_config(str(config_path))
    url = f"http://{config.listeners.http.host}:{config.listeners.http.port}"
    # enough contacts to keep dialling through both spans (5 calls per ~3 s)
    contacts = min(999, int(args.seconds * 2 * 5 / 3) + 200)
    with tempfile.TemporaryDirectory() as tmp:
        campaign_id = campaign(config_path, Path(tmp), contacts)
        log = Path(tmp) / "daemon.log"
        with log.open("wb") as out:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "dialler.cli", "--config", str(config_path), "run"],
                stdout=out,
                stderr=out,
            )
        try:
            wait_healthy(url)
            time.sleep(5)  # past the start: the first claims, the first calls
            without = measure(daemon.pid, args.seconds)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                context = browser.new_context(base_url=url)
                page = context.new_page()
                page.goto("/login")
                page.fill("input[name=token]", config.api.tokens[0])
                page.press("input[name=token]", "Enter")
                page.wait_for_url("**/campaigns")
                pages = [page] + [context.new_page() for _ in range(args.pages - 1)]
                for each in pages:
                    each.goto(f"/campaigns/{campaign_id}")
                    each.bring_to_front()
                hidden = [e for e in pages if e.evaluate("document.visibilityState") != "visible"]
                if hidden:  # hidden tabs do not poll: the figure would say nothing
                    raise SystemExit(f"{len(hidden)} of the pages are hidden")
                time.sleep(2)
                with_pages = measure(daemon.pid, args.seconds)
                browser.close()
            state = json.loads(cli(config_path, "campaign", "show", campaign_id, "--json"))
        finally:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "dialler.cli",
                    "--config",
                    str(config_path),
                    "campaign",
                    "cancel",
                    campaign_id,
                ],
                check=False,
                capture_output=True,
            )
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(120)
    print(f"campaign {campaign_id}: {state['stats']['done']} contacts done, state {state['state']}")
    print(f"daemon CPU without the console: {without * 100:.2f} % of one core")
    print(f"daemon CPU with {args.pages} detail pages open: {with_pages * 100:.2f} % of one core")
    print(f"the pages' cost: {(with_pages - without) * 100:+.2f} % of one core")
    print(f"ratio with/without: {with_pages / without:.2f}" if without else "ratio: n/a")


if __name__ == "__main__":
    main()
