from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dialler.config import (
    CarrierConfig,
    Config,
    ListenerConfig,
    load_config,
    parse_config,
)
from dialler.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "dialler.example.yaml"
SECRET = "s3cr3t-Ami-Passw0rd"
AGI_SECRET = "agi-secret-0123456789"
ENV = {"DIALLER_AMI_SECRET": SECRET, "DIALLER_AGI_SECRET": AGI_SECRET}


def minimal() -> dict[str, Any]:
    """The smallest valid config (as parsed YAML), with the secret from the environment."""
    return {
        "database": {"dsn": "postgresql://dialler@127.0.0.1:5432/dialler"},
        "asterisk": [
            {"name": "pbx1", "ami": {"username": "dialler", "secret_env": "DIALLER_AMI_SECRET"}}
        ],
        "carriers": [{"name": "lab"}],
        "numbers": [{"number": "+441632960001", "carrier": "lab"}],
        "listeners": {"agi": {"secret_env": "DIALLER_AGI_SECRET"}},
    }


def problems(data: object, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "test.yaml", ENV if env is None else env)
    assert info.value.source == "test.yaml"
    return list(info.value.problems)


def ami(data: dict[str, Any]) -> dict[str, Any]:
    ami_section: dict[str, Any] = data["asterisk"][0]["ami"]
    return ami_section


# --- valid files ------------------------------------------------------------------------------


def test_minimal_config_gets_the_documented_defaults() -> None:
    config = parse_config(minimal(), "test.yaml", ENV)
    assert config.database.pool_min == 2
    assert config.database.pool_max == 10
    server = config.asterisk[0]
    assert server.originate_context == "dialler-outbound"
    assert (server.ami.host, server.ami.port, server.ami.secret) == ("127.0.0.1", 5038, SECRET)
    assert (server.ami.ping_interval, server.ami.ping_timeout) == (5.0, 3.0)
    assert (server.ami.reconnect_delay, server.ami.connect_timeout) == (2.0, 5.0)
    assert config.carriers == (CarrierConfig("lab", "lab", 100, 10.0),)
    assert config.numbers[0].enabled is True
    assert config.listeners.agi == ListenerConfig("127.0.0.1", 4573, False, AGI_SECRET)
    assert config.listeners.http.port == 8080
    assert config.listeners.metrics.port == 9464
    assert config.contacts.default_region == "GB"
    assert (config.scheduler.stall_after, config.scheduler.poll_interval) == (120.0, 1.0)
    assert (config.logging.level, config.logging.format) == ("info", "logfmt")


def test_durations_are_seconds() -> None:
    data = minimal()
    ami(data).update(ping_interval="1m30s", ping_timeout=7, connect_timeout="500ms")
    data["scheduler"] = {"stall_after": "1h"}
    config = parse_config(data, "test.yaml", ENV)
    assert config.asterisk[0].ami.ping_interval == 90.0
    assert config.asterisk[0].ami.ping_timeout == 7.0
    assert config.asterisk[0].ami.connect_timeout == 0.5
    assert config.scheduler.stall_after == 3600.0


def test_the_state_directory_is_an_absolute_path_or_the_environment_decides() -> None:
    assert parse_config(minimal(), "test.yaml", ENV).scheduler.state_dir is None
    data = minimal()
    data["scheduler"] = {"state_dir": "/data/dialler"}
    assert parse_config(data, "test.yaml", ENV).scheduler.state_dir == "/data/dialler"
    data["scheduler"] = {"state_dir": "state"}
    assert problems(data) == ["scheduler.state_dir: expected an absolute path, got 'state'"]


def test_example_file_is_valid() -> None:
    config = load_config(str(EXAMPLE), ENV)
    assert config.asterisk[0].ami.secret == SECRET
    assert [n.carrier for n in config.numbers] == ["lab"] * len(config.numbers)


def test_carrier_lookup() -> None:
    data = minimal()
    data["carriers"].append(
        {"name": "other", "endpoint": "trunk-2", "max_channels": 5, "calls_per_second": 0.5}
    )
    config = parse_config(data, "test.yaml", ENV)
    assert config.carrier("other") == CarrierConfig("other", "trunk-2", 5, 0.5)
    with pytest.raises(KeyError):
        config.carrier("nope")


def test_config_is_immutable() -> None:
    config: Config = parse_config(minimal(), "test.yaml", ENV)
    with pytest.raises(AttributeError):
        config.logging = config.logging  # type: ignore[misc]


# --- unknown keys and wrong types -------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (lambda d: d["database"].update(dsnn="x"), "database.dsnn: unknown key"),
        (lambda d: d.update(extra=1), "extra: unknown key"),
        (lambda d: ami(d).update(secret="x"), "asterisk[0].ami.secret: unknown key"),
        (lambda d: d["carriers"][0].update(max_chanels=3), "carriers[0].max_chanels: unknown key"),
        (lambda d: d.update(listeners={"ftp": {}}), "listeners.ftp: unknown key"),
    ],
)
def test_unknown_keys_are_errors(where: Any, expected: str) -> None:
    data = minimal()
    where(data)
    assert any(p.startswith(expected) for p in problems(data)), problems(data)


def test_unknown_key_suggests_the_close_one() -> None:
    data = minimal()
    data["database"]["dsnn"] = "x"
    assert "database.dsnn: unknown key (did you mean 'dsn'?)" in problems(data)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (
            lambda d: d["carriers"][0].update(max_channels="ten"),
            "carriers[0].max_channels: expected an integer, got str 'ten'",
        ),
        (
            lambda d: d["carriers"][0].update(max_channels=True),
            "carriers[0].max_channels: expected an integer, got bool true",
        ),
        (
            lambda d: d["database"].update(pool_min=2.5),
            "database.pool_min: expected an integer, got float 2.5",
        ),
        (
            lambda d: d["carriers"][0].update(calls_per_second="fast"),
            "carriers[0].calls_per_second: expected a number, got str 'fast'",
        ),
        (
            lambda d: d["numbers"][0].update(enabled="yes"),
            "numbers[0].enabled: expected true or false, got str 'yes'",
        ),
        (lambda d: d.update(database=["x"]), "database: expected a mapping, got list"),
        (lambda d: d.update(carriers={"name": "lab"}), "carriers: expected a list, got mapping"),
        (
            lambda d: ami(d).update(ping_interval=True),
            "asterisk[0].ami.ping_interval: expected a duration",
        ),
        (lambda d: d.update(logging={"level": "verbose"}), "logging.level: unknown value"),
    ],
)
def test_wrong_types_are_errors(where: Any, expected: str) -> None:
    data = minimal()
    where(data)
    found = problems(data)
    assert any(p.startswith(expected) for p in found), found


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (lambda d: d["database"].pop("dsn"), "database.dsn: missing required key"),
        (lambda d: d["database"].update(dsn="mysql://x"), "database.dsn: must be a URL"),
        (
            lambda d: d["database"].update(pool_min=5, pool_max=3),
            "database.pool_max: 3 is less than database.pool_min (5)",
        ),
        (lambda d: d["database"].update(pool_min=0), "database.pool_min: 0 is out of range"),
        (lambda d: d.pop("asterisk"), "asterisk: at least one entry is required"),
        (lambda d: d.update(carriers=[]), "carriers: at least one entry is required"),
        (lambda d: ami(d).pop("username"), "asterisk[0].ami.username: missing required key"),
        (lambda d: ami(d).update(port=70000), "asterisk[0].ami.port: 70000 is out of range"),
        (
            lambda d: ami(d).update(ping_timeout="0s"),
            "asterisk[0].ami.ping_timeout: must be greater than 0",
        ),
        (
            lambda d: ami(d).update(reconnect_delay="2 seconds"),
            "asterisk[0].ami.reconnect_delay: missing unit",
        ),
        (
            lambda d: d["carriers"][0].update(calls_per_second=0),
            "carriers[0].calls_per_second: 0 is out of range",
        ),
        (lambda d: d["carriers"][0].update(endpoint="a&b"), "carriers[0].endpoint: 'a&b'"),
        (
            lambda d: d["numbers"][0].update(number="441632960001"),
            "numbers[0].number: '441632960001' is not valid: expected E.164",
        ),
        (
            lambda d: d["numbers"][0].update(number="+0441632960001"),
            "numbers[0].number: '+0441632960001' is not valid: expected E.164: '+', a country code "
            "not starting with 0, at most 15 digits",
        ),
        (
            lambda d: d["numbers"][0].update(number="+4416329600012345"),
            "numbers[0].number: '+4416329600012345' is not valid",
        ),
        (lambda d: d.update(contacts={"default_region": "gb"}), "contacts.default_region"),
        (
            lambda d: d.update(contacts={"default_region": "XX"}),
            "contacts.default_region: unknown region 'XX'",
        ),
        (
            lambda d: d.update(scheduler={"poll_interval": -1}),
            "scheduler.poll_interval: duration must not be negative",
        ),
        (lambda d: d.update(logging={"format": "xml"}), "logging.format: unknown value 'xml'"),
        (lambda d: d["asterisk"].append(None), "asterisk[1]: empty entry"),
    ],
)
def test_value_rules(where: Any, expected: str) -> None:
    data = minimal()
    where(data)
    found = problems(data)
    assert any(p.startswith(expected) for p in found), found


def test_all_problems_are_reported_at_once() -> None:
    data = minimal()
    data["database"]["dsnn"] = "x"
    data["carriers"][0]["max_channels"] = "ten"
    data["numbers"][0]["carrier"] = "foo"
    data["logging"] = {"level": "loud"}
    found = problems(data)
    assert len(found) == 4
    assert [p.split(":")[0] for p in found] == [
        "database.dsnn",
        "carriers[0].max_channels",
        "numbers[0].carrier",
        "logging.level",
    ]


def test_non_mapping_document() -> None:
    assert problems([1, 2]) == ["top level: expected a mapping, got list"]


# --- the AMI secret ---------------------------------------------------------------------------


def test_missing_secret_neither_file_nor_env() -> None:
    data = minimal()
    del ami(data)["secret_env"]
    found = problems(data)
    assert any(p.startswith("asterisk[0].ami: no AMI secret") for p in found), found


def test_both_secret_file_and_env_is_an_error(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    data = minimal()
    ami(data)["secret_file"] = str(secret_file)
    found = problems(data)
    assert any(p.startswith("asterisk[0].ami: set only one") for p in found), found


def test_secret_env_unset() -> None:
    found = problems(minimal(), env={"DIALLER_AGI_SECRET": AGI_SECRET})
    assert found == [
        "asterisk[0].ami.secret_env: environment variable DIALLER_AMI_SECRET is not set"
    ]


def test_secret_env_empty() -> None:
    found = problems(minimal(), env={"DIALLER_AMI_SECRET": "", "DIALLER_AGI_SECRET": AGI_SECRET})
    assert found == ["asterisk[0].ami.secret_env: environment variable DIALLER_AMI_SECRET is empty"]


def test_secret_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIALLER_AMI_SECRET", "from-environ")
    monkeypatch.setenv("DIALLER_AGI_SECRET", AGI_SECRET)
    assert parse_config(minimal(), "test.yaml").asterisk[0].ami.secret == "from-environ"


def _with_secret_file(path: str) -> dict[str, Any]:
    data = minimal()
    del ami(data)["secret_env"]
    ami(data)["secret_file"] = path
    return data


def test_secret_file_is_read_and_trailing_newline_stripped(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    config = parse_config(_with_secret_file(str(secret_file)), "test.yaml", ENV)
    assert config.asterisk[0].ami.secret == SECRET


def test_secret_file_empty(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("\n")
    assert problems(_with_secret_file(str(secret_file))) == [
        f"asterisk[0].ami.secret_file: file {secret_file} is empty"
    ]


def test_secret_file_missing(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert problems(_with_secret_file(str(missing))) == [
        f"asterisk[0].ami.secret_file: file {missing} does not exist"
    ]


def test_secret_file_directory(tmp_path: Path) -> None:
    found = problems(_with_secret_file(str(tmp_path)))
    assert found == [f"asterisk[0].ami.secret_file: {tmp_path} is not a regular file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_secret_file_unreadable(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    secret_file.chmod(0)
    found = problems(_with_secret_file(str(secret_file)))
    assert found == [
        f"asterisk[0].ami.secret_file: file {secret_file} is not readable by this user"
    ]


def test_relative_secret_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "ami-secret").write_text(SECRET + "\n")
    path = tmp_path / "dialler.yaml"
    path.write_text(yaml.safe_dump(_with_secret_file("ami-secret")))
    assert load_config(str(path), ENV).asterisk[0].ami.secret == SECRET


def test_multi_line_secret_is_refused_without_showing_it(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(f"{SECRET}\r\nAction: Originate\n")
    found = problems(_with_secret_file(str(secret_file)))
    assert len(found) == 1
    assert "line break" in found[0]
    assert SECRET not in found[0]


def test_secret_never_in_repr_or_messages(tmp_path: Path) -> None:
    config = parse_config(minimal(), "test.yaml", ENV)
    assert SECRET not in repr(config)
    assert SECRET not in str(config)
    assert SECRET not in repr(config.asterisk[0].ami)

    # A config that fails in many places while the secret is resolved.
    data = minimal()
    data["asterisk"].append(copy.deepcopy(data["asterisk"][0]))  # duplicate name
    ami(data)["ping_interval"] = "nope"
    data["database"]["dsn"] = f"postgresql://dialler:{SECRET}@db/dialler"
    data["database"]["pool_max"] = 0
    with pytest.raises(ConfigError) as info:
        parse_config(data, "test.yaml", ENV)
    assert len(info.value.problems) == 3
    assert SECRET not in str(info.value)
    assert SECRET not in "\n".join(info.value.problems)


def test_dsn_is_not_shown(tmp_path: Path) -> None:
    dsn = f"mysql://dialler:{SECRET}@db/dialler"
    data = minimal()
    data["database"]["dsn"] = dsn
    found = problems(data)
    assert found == ["database.dsn: must be a URL starting with postgresql:// or postgres://"]
    data["database"]["dsn"] = "postgresql://dialler:" + SECRET + "@db/dialler"
    assert SECRET not in repr(parse_config(data, "test.yaml", ENV))


# --- cross references and uniqueness ----------------------------------------------------------


def test_number_with_unknown_carrier() -> None:
    data = minimal()
    data["numbers"] += [
        {"number": "+441632960002", "carrier": "lab"},
        {"number": "+441632960003", "carrier": "foo"},
    ]
    assert problems(data) == ["numbers[2].carrier: unknown carrier 'foo' (known: lab)"]


def test_number_without_carrier() -> None:
    data = minimal()
    del data["numbers"][0]["carrier"]
    assert problems(data) == ["numbers[0].carrier: missing required key"]


def test_caller_ids_follow_the_one_e164_rule() -> None:
    # E.164 as domain.numbers defines it (and the database checks it): '+', no leading 0,
    # 2 to 15 digits.
    data = minimal()
    data["numbers"] = [
        {"number": "+4412", "carrier": "lab"},
        {"number": "+123456789012345", "carrier": "lab"},
    ]
    config = parse_config(data, "test.yaml", ENV)
    assert [n.number for n in config.numbers] == ["+4412", "+123456789012345"]


def test_numbers_may_be_empty() -> None:
    data = minimal()
    data["numbers"] = []
    assert parse_config(data, "test.yaml", ENV).numbers == ()
    del data["numbers"]
    assert parse_config(data, "test.yaml", ENV).numbers == ()


def test_duplicate_names() -> None:
    data = minimal()
    data["asterisk"].append(copy.deepcopy(data["asterisk"][0]))
    data["carriers"].append({"name": "lab"})
    data["numbers"].append({"number": "+441632960001", "carrier": "lab"})
    assert problems(data) == [
        "asterisk[1].name: duplicate name 'pbx1' (first at asterisk[0].name)",
        "carriers[1].name: duplicate name 'lab' (first at carriers[0].name)",
        "numbers[1].number: duplicate number '+441632960001' (first at numbers[0].number)",
    ]


# --- listeners --------------------------------------------------------------------------------


def test_non_loopback_listener_refused_without_opt_in() -> None:
    data = minimal()
    data["listeners"]["http"] = {"host": "0.0.0.0"}
    assert problems(data) == [
        "listeners.http.host: 0.0.0.0 is not a loopback address; set "
        "listeners.http.allow_non_loopback: true to expose it"
    ]


def test_non_loopback_listener_accepted_with_opt_in() -> None:
    data = minimal()
    data["listeners"]["http"] = {"host": "0.0.0.0", "allow_non_loopback": True}
    data["listeners"]["metrics"] = {"host": "10.1.2.3", "allow_non_loopback": True}
    config = parse_config(data, "test.yaml", ENV)
    assert config.listeners.http == ListenerConfig("0.0.0.0", 8080, True)
    assert config.listeners.metrics.host == "10.1.2.3"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.4.5", "::1", "localhost"])
def test_loopback_hosts(host: str) -> None:
    data = minimal()
    data["listeners"]["agi"]["host"] = host
    assert parse_config(data, "test.yaml", ENV).listeners.agi.host == host


def test_listener_ports_must_be_distinct() -> None:
    data = minimal()
    data["listeners"]["metrics"] = {"port": 8080}
    assert problems(data) == ["listeners.metrics.port: 8080 is already used by listeners.http.port"]


# --- files ------------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(str(tmp_path / "nope.yaml"))
    assert list(info.value.problems) == ["file not found"]


def file_problems(tmp_path: Path, text: str) -> list[str]:
    """The problems `load_config` finds in a file holding `text`."""
    path = tmp_path / "dialler.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path), ENV)
    return list(info.value.problems)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    found = file_problems(tmp_path, "database:\n  dsn: x\n pool_min: [\n")
    assert len(found) == 1
    assert found[0].startswith("line 3, column 2: invalid YAML")


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    assert file_problems(tmp_path, "database:\n  dsn: x\n  dsn: y\n") == [
        "line 3, column 3: invalid YAML: found duplicate key 'dsn' "
        "(while reading a mapping on line 2)"
    ]


def test_times_are_not_base_60_numbers(tmp_path: Path) -> None:
    # YAML 1.1 reads an unquoted 1:30 as 90; the one reader keeps it text (and refuses it).
    text = yaml.safe_dump(minimal()) + "scheduler:\n  stall_after: 1:30\n"
    assert file_problems(tmp_path, text) == [
        "scheduler.stall_after: unknown unit ':' (use ms, s, m, h, d) in duration '1:30'"
    ]


def test_unquoted_e164_number_gets_a_hint(tmp_path: Path) -> None:
    text = yaml.safe_dump(minimal()).replace("'+441632960001'", "+441632960001")
    assert file_problems(tmp_path, text) == [
        "numbers[0].number: expected a string, got int 441632960001 (put the value in quotes)"
    ]


def test_empty_file_lists_the_required_keys(tmp_path: Path) -> None:
    assert file_problems(tmp_path, "") == [
        "database.dsn: missing required key",
        "asterisk: at least one entry is required",
        "carriers: at least one entry is required",
        "listeners.agi: no FastAGI secret; set secret_file (a path) or secret_env (a variable "
        "name) — the dialplan passes it as DIALLER_AGI_SECRET",
    ]


# --- the CLI ----------------------------------------------------------------------------------


def _check(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dialler.cli", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_cli_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "dialler.yaml"
    path.write_text(yaml.safe_dump(minimal()))
    result = _check(path, ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{path}: OK\n"
    assert result.stderr == ""


def test_cli_refuses_a_file_without_a_fastagi_secret(tmp_path: Path) -> None:
    # Anything that reaches the FastAGI port could attach calls (docs/security.md).
    data = minimal()
    del data["listeners"]
    path = tmp_path / "dialler.yaml"
    path.write_text(yaml.safe_dump(data))
    result = _check(path, ENV)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{path}: listeners.agi: no FastAGI secret; set secret_file (a path) or secret_env "
        "(a variable name) — the dialplan passes it as DIALLER_AGI_SECRET"
    ]


def test_cli_example_file() -> None:
    result = _check(EXAMPLE, ENV)
    assert result.returncode == 0, result.stderr


def test_cli_invalid_file_names_each_key(tmp_path: Path) -> None:
    data = minimal()
    data["database"]["dsnn"] = "x"
    data["carriers"][0]["max_channels"] = "ten"
    path = tmp_path / "dialler.yaml"
    path.write_text(yaml.safe_dump(data))
    result = _check(path, ENV)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert f"{path}: database.dsnn: unknown key (did you mean 'dsn'?)" in lines
    assert f"{path}: carriers[0].max_channels: expected an integer, got str 'ten'" in lines


def test_cli_missing_secret_does_not_leak(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text(f"{SECRET}\nsecond line\n")
    path = tmp_path / "dialler.yaml"
    path.write_text(yaml.safe_dump(_with_secret_file(str(secret_file))))
    result = _check(path)
    assert result.returncode == 2
    assert "asterisk[0].ami.secret_file" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_cli_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    result = _check(path)
    assert result.returncode == 2
    assert result.stderr == f"{path}: file not found\n"


# --- security (issue 11): scoped tokens, private secret files, the DSN, FastAGI -----------------

OPERATOR_TOKEN = "operator-token-0123456789"
VIEWER_TOKEN = "viewer-token-0123456789"
WORKER_TOKEN = "worker-token-0123456789"


def _private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    os.chmod(path, mode)
    return path


def test_three_kinds_of_token(tmp_path: Path) -> None:
    data = minimal()
    data["api"] = {
        "tokens_file": str(_private(tmp_path / "ops", f"# operators\n{OPERATOR_TOKEN}\n")),
        "viewer_tokens_file": str(_private(tmp_path / "viewers", f"{VIEWER_TOKEN}\n")),
        "worker_tokens_file": str(
            _private(
                tmp_path / "workers", f"{WORKER_TOKEN} w1, w2\n# other\nworker-token-xyz-98765 w3\n"
            )
        ),
    }
    config = parse_config(data, "test.yaml", ENV)
    assert config.api.tokens == (OPERATOR_TOKEN,)
    assert config.api.viewer_tokens == (VIEWER_TOKEN,)
    assert [(w.token, w.workers) for w in config.api.worker_tokens] == [
        (WORKER_TOKEN, frozenset({"w1", "w2"})),
        ("worker-token-xyz-98765", frozenset({"w3"})),
    ]
    assert OPERATOR_TOKEN not in repr(config) and WORKER_TOKEN not in repr(config)
    assert config.exposed == ()


def test_a_worker_name_bound_to_two_tokens_is_refused(tmp_path: Path) -> None:
    data = minimal()
    workers = f"{WORKER_TOKEN} w1\nworker-token-xyz-98765 w2 w1\nworker-token-abc-98765\n"
    data["api"] = {"worker_tokens_file": str(_private(tmp_path / "workers", workers))}
    found = problems(data)
    assert found == [
        "api.worker_tokens_file: line 2: worker 'w1' is already bound to the token of line 1",
        "api.worker_tokens_file: line 3: expected '<token> <worker name>...'",
    ]
    assert not any(WORKER_TOKEN in problem for problem in found)


def test_one_token_in_two_roles_is_refused(tmp_path: Path) -> None:
    data = minimal()
    data["api"] = {
        "tokens_file": str(_private(tmp_path / "ops", f"{OPERATOR_TOKEN}\n")),
        "viewer_tokens_file": str(_private(tmp_path / "viewers", f"{OPERATOR_TOKEN}\n")),
    }
    assert problems(data) == ["api: the same token appears twice (each token has one role)"]


def test_secret_files_others_may_read_are_listed(tmp_path: Path) -> None:
    data = minimal()
    data["api"] = {"tokens_file": str(_private(tmp_path / "ops", f"{OPERATOR_TOKEN}\n", 0o644))}
    config = parse_config(data, "test.yaml", ENV)
    assert config.exposed == (
        f"api.tokens_file: file {tmp_path / 'ops'} is readable or writable by other users "
        "(chmod 600, or 640 with the daemon's group)",
    )


def test_cli_refuses_a_world_readable_tokens_file(tmp_path: Path) -> None:
    data = minimal()
    data["api"] = {"tokens_file": str(_private(tmp_path / "ops", f"{OPERATOR_TOKEN}\n", 0o644))}
    path = tmp_path / "dialler.yaml"
    path.write_text(yaml.safe_dump(data))
    result = _check(path, ENV)
    assert result.returncode == 2
    assert "api.tokens_file: file" in result.stderr and "other users" in result.stderr
    os.chmod(tmp_path / "ops", 0o640)
    assert _check(path, ENV).returncode == 0


@pytest.mark.parametrize(
    ("dsn", "problem"),
    [
        (
            "postgresql://u:pw@h/db?sslmode=bogus",
            "database.dsn: sslmode must be one of disable, allow, prefer, require, verify-ca, "
            "verify-full (got 'bogus')",
        ),
        (
            "postgresql://u:pw@h:99999/db",
            "database.dsn: the port is not a number between 1 and 65535",
        ),
        (
            "postgresql://u:pw@h/db?target_session_attrs=master",
            "database.dsn: target_session_attrs must be one of any, primary, standby, "
            "prefer-standby, read-write, read-only (got 'master')",
        ),
    ],
)
def test_the_dsn_is_checked_without_showing_it(dsn: str, problem: str) -> None:
    data = minimal()
    data["database"]["dsn"] = dsn
    found = problems(data)
    assert found == [problem]
    assert "pw" not in found[0]


@pytest.mark.parametrize("host", ['10.0.0.1"\nEXEC Dial', "w1,extra", "a b", "bad\r"])
def test_a_static_worker_host_must_be_a_host(host: str) -> None:
    data = minimal()
    data["fleet"] = {"workers": [{"name": "w1", "host": host, "port": 57000}]}
    (found,) = problems(data)
    assert found.startswith("fleet.workers[0].host: ")
    assert found.endswith(" is not an IP address or host name")


def test_agi_secret_and_allow_list(tmp_path: Path) -> None:
    data = minimal()
    secret = _private(tmp_path / "agi", "agi-secret-0123456789\n")
    data["listeners"] = {"agi": {"secret_file": str(secret), "allow": ["127.0.0.1", "10.0.0.0/8"]}}
    config = parse_config(data, "test.yaml", ENV)
    assert config.listeners.agi.secret == "agi-secret-0123456789"
    assert [str(n) for n in config.listeners.agi.allow] == ["127.0.0.1/32", "10.0.0.0/8"]
    assert "agi-secret" not in repr(config)
    data["listeners"] = {"agi": {"secret_env": "AGI", "allow": ["nope"]}}
    assert problems(data, {**ENV, "AGI": "short?"}) == [
        "listeners.agi.secret_env: the AGI secret must be 16 to 128 letters, digits, '-' or '_'",
        "listeners.agi.allow[0]: 'nope' is not an IP address or network",
    ]
    data["listeners"] = {"agi": {"secret_env": "AGI"}, "http": {"secret_env": "AGI"}}
    assert "listeners.http" in problems(data, {**ENV, "AGI": "x" * 20})[0]
