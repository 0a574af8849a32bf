"""SIGHUP reload: a bad file keeps the running config, live changes apply, restart-only ones
are refused — each message naming its key, never a secret."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialler.config import Config, load_config
from dialler.reload import describe_changes, reload_config

SECRET = "s3cr3t-Ami-Passw0rd"
TOKEN = "tok-0123456789abcdef"
ENV = {"DIALLER_AMI_SECRET": SECRET, "DIALLER_AGI_SECRET": "agi-secret-0123456789"}


def base(tokens_file: Path) -> dict[str, Any]:
    return {
        "database": {"dsn": "postgresql://dialler:pw-in-dsn@127.0.0.1:5432/dialler"},
        "asterisk": [
            {"name": "pbx1", "ami": {"username": "dialler", "secret_env": "DIALLER_AMI_SECRET"}}
        ],
        "carriers": [
            {"name": "lab", "max_channels": 100, "calls_per_second": 10},
            {"name": "backup", "max_channels": 10},
        ],
        "numbers": [{"number": "+441632960001", "carrier": "lab"}],
        "listeners": {"http": {"port": 8080}, "agi": {"secret_env": "DIALLER_AGI_SECRET"}},
        "scheduler": {"poll_interval": "1s"},
        "logging": {"level": "info", "format": "logfmt"},
        "api": {"tokens_file": str(tokens_file)},
        "fleet": {"workers": [{"name": "w1", "port": 57000, "capacity": 4}]},
    }


class Files:
    """The config file on disk, and the config the daemon runs with (loaded from it)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tokens = tmp_path / "tokens"
        self.tokens.write_text(TOKEN + "\n")
        self.path = tmp_path / "dialler.yaml"
        self.data = base(self.tokens)
        self.write(self.data)
        self.current = load_config(str(self.path), ENV)

    def write(self, data: dict[str, Any]) -> None:
        self.path.write_text(yaml.safe_dump(data, sort_keys=False))

    def changed(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)

    def reload(self, env: dict[str, str] | None = None) -> tuple[Config, list[str]]:
        return reload_config(str(self.path), self.current, ENV if env is None else env)


@pytest.fixture
def files(tmp_path: Path) -> Files:
    return Files(tmp_path)


# --- a bad file: the running config stays ------------------------------------------------


def test_invalid_value_keeps_the_current_config_and_names_the_key(files: Files) -> None:
    data = files.changed()
    data["carriers"][0]["max_channels"] = 0
    data["scheduler"]["poll_interval"] = "soon"
    files.write(data)
    config, messages = files.reload()
    assert config is files.current
    assert any(m.startswith("carriers[0].max_channels:") for m in messages), messages
    assert any(m.startswith("scheduler.poll_interval:") for m in messages), messages


def test_unknown_key_is_refused(files: Files) -> None:
    data = files.changed()
    data["scheduler"]["pol_interval"] = "2s"
    files.write(data)
    config, messages = files.reload()
    assert config is files.current
    assert messages == ["scheduler.pol_interval: unknown key (did you mean 'poll_interval'?)"]


def test_yaml_syntax_error_is_refused(files: Files) -> None:
    files.path.write_text("database: {dsn: [\n")
    config, messages = files.reload()
    assert config is files.current
    assert len(messages) == 1 and "invalid YAML" in messages[0]


def test_missing_file_is_refused(files: Files) -> None:
    files.path.unlink()
    config, messages = files.reload()
    assert config is files.current
    assert messages == ["file not found"]


def test_missing_secret_is_refused(files: Files) -> None:
    config, messages = files.reload(env={"DIALLER_AGI_SECRET": ENV["DIALLER_AGI_SECRET"]})
    assert config is files.current
    assert messages == [
        "asterisk[0].ami.secret_env: environment variable DIALLER_AMI_SECRET is not set"
    ]


# --- live changes: applied and described -------------------------------------------------


def test_live_changes_are_applied_and_described(files: Files) -> None:
    data = files.changed()
    data["carriers"][0].update(max_channels=50, calls_per_second=2.5)
    data["numbers"].append({"number": "+441632960002", "carrier": "backup"})
    data["numbers"][0]["enabled"] = False
    data["scheduler"]["poll_interval"] = "2s"
    data["logging"] = {"level": "debug", "format": "json"}
    data["fleet"]["workers"][0]["capacity"] = 8
    data["fleet"]["workers"].append({"name": "w2", "port": 57001})
    files.write(data)
    config, messages = files.reload()
    assert config is not files.current
    assert config.carrier("lab").max_channels == 50
    assert config.scheduler.poll_interval == 2.0
    assert config.logging.level == "debug"
    assert messages == [
        "carriers[lab].max_channels: 100 → 50",
        "carriers[lab].calls_per_second: 10 → 2.5",
        "numbers[+441632960001].enabled: true → false",
        "numbers[+441632960002]: added",
        "scheduler.poll_interval: 1 → 2",
        "logging.level: info → debug",
        "logging.format: logfmt → json",
        "fleet.workers[w1].capacity: 4 → 8",
        "fleet.workers[w2]: added",
    ]


def test_removed_entries_are_described(files: Files) -> None:
    data = files.changed()
    data["carriers"] = data["carriers"][:1]
    data["fleet"]["workers"] = []
    files.write(data)
    config, messages = files.reload()
    assert [c.name for c in config.carriers] == ["lab"]
    assert messages == ["carriers[backup]: removed", "fleet.workers[w1]: removed"]


def test_reordered_entries_are_not_a_change_of_each(files: Files) -> None:
    data = files.changed()
    data["carriers"].reverse()
    files.write(data)
    config, messages = files.reload()
    assert [c.name for c in config.carriers] == ["backup", "lab"]
    assert messages == ["carriers: order changed"]


def test_new_api_token_applies_without_showing_it(files: Files) -> None:
    files.tokens.write_text(TOKEN + "\nnew-token-fedcba9876543210\n")
    config, messages = files.reload()
    assert config.api.tokens == (TOKEN, "new-token-fedcba9876543210")
    assert messages == ["api.tokens: changed"]


def test_unchanged_file_changes_nothing(files: Files) -> None:
    files.path.write_text("# rewritten, same settings\n" + files.path.read_text())
    config, messages = files.reload()
    assert config is files.current
    assert messages == []


# --- restart-only changes: refused, saying why --------------------------------------------


def test_database_change_is_refused_without_showing_the_dsn(files: Files) -> None:
    data = files.changed()
    data["database"]["dsn"] = "postgresql://dialler:other-pw@10.0.0.5:5432/dialler"
    files.write(data)
    config, messages = files.reload()
    assert config is files.current
    assert messages == ["database.dsn: changed (needs a restart)"]
    assert not any("pw" in m or "10.0.0.5" in m for m in messages)


def test_asterisk_connection_change_is_refused(files: Files) -> None:
    data = files.changed()
    data["asterisk"][0]["ami"].update(host="192.0.2.7", port=5039)
    files.write(data)
    config, messages = files.reload(env={**ENV, "DIALLER_AMI_SECRET": "another-secret"})
    assert config is files.current
    assert messages == [
        "asterisk[pbx1].ami.host: 127.0.0.1 → 192.0.2.7 (needs a restart)",
        "asterisk[pbx1].ami.port: 5038 → 5039 (needs a restart)",
        "asterisk[pbx1].ami.secret: changed (needs a restart)",
    ]
    assert not any("another-secret" in m or SECRET in m for m in messages)


def test_listener_change_is_refused_with_the_live_ones_it_holds_back(files: Files) -> None:
    data = files.changed()
    data["listeners"]["http"]["port"] = 8081
    data["carriers"][0]["max_channels"] = 50
    files.write(data)
    config, messages = files.reload()
    assert config is files.current
    assert messages == [
        "listeners.http.port: 8080 → 8081 (needs a restart)",
        "so these were not applied either: carriers[lab].max_channels: 100 → 50",
    ]


def test_describe_changes_splits_live_and_restart_only(files: Files) -> None:
    data = files.changed()
    data["listeners"]["http"]["port"] = 8081
    data["scheduler"]["poll_interval"] = "3s"
    files.write(data)
    new = load_config(str(files.path), ENV)
    assert describe_changes(files.current, new) == (
        ["scheduler.poll_interval: 1 → 3"],
        ["listeners.http.port: 8080 → 8081"],
    )
    assert describe_changes(files.current, files.current) == ([], [])


def test_a_new_state_directory_needs_a_restart(files: Files) -> None:
    data = files.changed()
    data["scheduler"]["state_dir"] = "/data/dialler"
    data["scheduler"]["poll_interval"] = "3s"
    files.write(data)
    config, messages = files.reload()
    assert config is files.current  # the journal stays where it was opened and locked
    assert messages == [
        "scheduler.state_dir: unset → /data/dialler (needs a restart)",
        "so these were not applied either: scheduler.poll_interval: 1 → 3",
    ]
