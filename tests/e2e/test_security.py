"""Issue 11, "Done when", with the lab up: scoped tokens against the lab's worker, worker
hosts that would inject into the AGI line, a 17 MiB CSV field through the upload, `test-call`
to a suppressed number, a YAML alias bomb, a report header that is a formula — and the lab's
dialplan passing the FastAGI secret (a test call is attached)."""

from __future__ import annotations

import csv
import io
import json
import socket
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialler.config import Config, load_config

from .campaigns import cli, create_campaign, lab_delta
from .lab_helpers import lab_calls
from .test_test_call import daemon_up

pytestmark = pytest.mark.e2e


def free_port_pair() -> tuple[int, int]:
    """Two TCP ports free right now on loopback."""
    with socket.socket() as one, socket.socket() as two:
        one.bind(("127.0.0.1", 0))
        two.bind(("127.0.0.1", 0))
        return one.getsockname()[1], two.getsockname()[1]


@pytest.fixture
def own_listeners(lab_config_path: Path, tmp_path: Path) -> tuple[Path, Config]:
    """The lab config with this test's own HTTP and metrics ports: the requests below reach
    the daemon this test starts, whatever else listens on the lab's ports."""
    data = yaml.safe_load(lab_config_path.read_text())
    http, metrics = free_port_pair()
    data["listeners"]["http"]["port"] = http
    data["listeners"]["metrics"]["port"] = metrics
    path = tmp_path / "dialler.yaml"
    path.write_text(yaml.safe_dump(data))
    return path, load_config(str(path))


def _request(
    config: Config,
    method: str,
    path: str,
    token: str,
    body: Any = None,
    *,
    data: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, Any]:
    """One request to the lab daemon's API; (status, JSON answer)."""
    url = f"http://127.0.0.1:{config.listeners.http.port}{path}"
    payload = (
        data if data is not None else (json.dumps(body).encode() if body is not None else None)
    )
    request = urllib.request.Request(
        url,
        method=method,
        data=payload,
        headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            text = answer.read()
            return answer.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _worker_token(config: Config) -> str:
    (token,) = [w.token for w in config.api.worker_tokens if "lab-worker" in w.workers]
    return token


def _lab_worker(config: Config, **changes: Any) -> dict[str, Any]:
    (static,) = [w for w in config.fleet.workers if w.name == "lab-worker"]
    return {
        "name": "lab-worker",
        "host": static.host,
        "port": static.port,
        "capacity": static.capacity,
        **changes,
    }


def test_the_lab_writes_both_kinds_of_token(lab_config_path: Path, lab_config: Config) -> None:
    state = lab_config_path.parent
    assert (state / "api-tokens").read_text().split()[0] == lab_config.api.tokens[0]
    assert (state / "worker-tokens").read_text().split()[1:] == ["lab-worker"]
    for name in ("api-tokens", "worker-tokens", "agi-secret"):
        assert (state / name).stat().st_mode & 0o077 == 0, name
    assert cli(lab_config_path, "config", "check", str(lab_config_path)).returncode == 0


def test_tokens_and_worker_hosts(lab_config_path: Path, lab_config: Config, tmp_path: Path) -> None:
    operator, worker = lab_config.api.tokens[0], _worker_token(lab_config)
    with daemon_up(lab_config_path, tmp_path / "daemon.log"):
        # The operator token cannot change lab-worker (nor heartbeat it).
        moved = _lab_worker(lab_config, host="10.66.66.66")
        status, answer = _request(lab_config, "POST", "/v1/workers", operator, moved)
        assert (status, answer["error"]["code"]) == (403, "forbidden")
        # Its own token cannot change it either, only heartbeat it with the config's values.
        status, answer = _request(lab_config, "POST", "/v1/workers", worker, moved)
        assert (status, answer["error"]["code"]) == (403, "forbidden")
        status, _ = _request(lab_config, "POST", "/v1/workers", worker, _lab_worker(lab_config))
        assert status == 200
        # A worker token acts for its own worker only, and on no operator route.
        status, answer = _request(lab_config, "GET", "/v1/campaigns", worker)
        assert (status, answer["error"]["code"]) == (403, "forbidden")
        # A host with a quote, a comma or a line break never reaches the AGI line.
        for host in ('127.0.0.1" ,x', "127.0.0.1,9", "127.0.0.1\nEXEC Dial"):
            status, answer = _request(
                lab_config, "POST", "/v1/workers", worker, _lab_worker(lab_config, host=host)
            )
            assert (status, answer["error"]["field"]) == (422, "host"), answer


def test_a_17_mib_csv_field_is_one_rejected_row(
    lab_config_path: Path, own_listeners: tuple[Path, Config], tmp_path: Path
) -> None:
    config_path, lab_config = own_listeners
    campaign_id = create_campaign(lab_config_path, tmp_path, ["+447700900009"], start=False)
    body = (
        "phone_number,Name\n+447700900001,Ann\n"
        + '+447700900002,"'
        + "x" * (17 * 1024 * 1024)
        + '"\n+447700900003,Cy\n'
    ).encode()
    with daemon_up(config_path, tmp_path / "daemon.log"):
        status, answer = _request(
            lab_config,
            "POST",
            f"/v1/campaigns/{campaign_id}/contacts/import",
            lab_config.api.tokens[0],
            data=body,
            content_type="text/csv",
        )
    assert status == 200, answer
    assert (answer["imported"], answer["rejected"]) == (2, 1)
    assert [row["line"] for row in answer["rejected_rows"]] == [3]


def test_test_call_to_a_suppressed_number_is_refused(lab_config_path: Path, tmp_path: Path) -> None:
    number = "+447700900077"
    bot = tmp_path / "bot.yaml"
    name = f"sec-{uuid.uuid4().hex[:6]}"
    bot.write_text(yaml.safe_dump({"name": name, "prompt": "Hi"}))
    cli(lab_config_path, "bot", "create", str(bot))
    cli(lab_config_path, "suppress", "add", number, check=False)
    before = lab_calls()
    try:
        with daemon_up(lab_config_path, tmp_path / "daemon.log"):
            refused = cli(lab_config_path, "test-call", "--bot", name, "--to", number, check=False)
            # The FastAGI secret the lab's dialplan passes: a test call is attached.
            allowed = cli(lab_config_path, "test-call", "--bot", name, "--to", "+447700900003")
    finally:
        cli(lab_config_path, "suppress", "remove", number, check=False)
    assert refused.returncode != 0
    assert "do-not-call list" in refused.stdout + refused.stderr
    assert "attached" in allowed.stdout
    assert lab_delta(before, lab_calls()) == {"+447700900003": 1}  # none to the suppressed one


def test_a_yaml_alias_bomb_is_refused_at_once(lab_config_path: Path, tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    proc = cli(lab_config_path, "campaign", "create", str(bomb), check=False)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    assert "aliases expand it" in proc.stderr
    # The refusal itself takes milliseconds (tests/unit/test_fuzz_readers.py times it
    # in-process); the rest is the CLI's start-up.
    assert elapsed < 5, elapsed


def test_a_formula_in_the_report_header_is_neutralised(
    lab_config_path: Path, tmp_path: Path
) -> None:
    formula = '=HYPERLINK("http://example.com","x")'
    campaign_id = create_campaign(
        lab_config_path,
        tmp_path,
        ["+447700900005"],
        variables={formula: ["=1+1"]},
        start=False,
    )
    out = tmp_path / "report.csv"
    cli(lab_config_path, "report", "attempts", campaign_id, "-o", str(out))
    header = next(csv.reader(io.StringIO(out.read_text())))
    assert "'" + formula in header and formula not in header
    assert out.stat().st_mode & 0o077 == 0
