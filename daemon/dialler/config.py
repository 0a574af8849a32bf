"""The daemon's configuration file: one validated, immutable settings object.

`load_config` reads the YAML file and `parse_config` checks every value, collecting *all*
problems before raising one `ConfigError`. Each problem starts with the key path
(``asterisk[0].ami.secret_file: file /x does not exist``). Unknown keys are errors, wrong types
are errors (a boolean is not an integer), and secrets never appear in a message or a repr.
The reference for every key is docs/config.md.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import stat
from collections.abc import Collection, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import phonenumbers
import yaml

from .domain.messages import describe as _describe
from .domain.messages import shown as _shown
from .durations import parse_duration
from .errors import ConfigError

__all__ = [
    "AmiConfig",
    "AsteriskConfig",
    "CarrierConfig",
    "Config",
    "ContactsConfig",
    "DatabaseConfig",
    "ListenerConfig",
    "ListenersConfig",
    "LoggingConfig",
    "NumberConfig",
    "SchedulerConfig",
    "load_config",
    "parse_config",
]


# --- the settings object ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    # The DSN may carry a password, so it stays out of the repr (and out of error messages).
    dsn: str = field(repr=False)
    pool_min: int
    pool_max: int


@dataclass(frozen=True, slots=True)
class AmiConfig:
    host: str
    port: int
    username: str
    secret: str = field(repr=False)  # resolved from secret_file or secret_env
    ping_interval: float
    ping_timeout: float
    reconnect_delay: float
    connect_timeout: float


@dataclass(frozen=True, slots=True)
class AsteriskConfig:
    name: str
    ami: AmiConfig
    originate_context: str


@dataclass(frozen=True, slots=True)
class CarrierConfig:
    name: str
    endpoint: str
    max_channels: int
    calls_per_second: float


@dataclass(frozen=True, slots=True)
class NumberConfig:
    number: str
    carrier: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    host: str
    port: int
    allow_non_loopback: bool


@dataclass(frozen=True, slots=True)
class ListenersConfig:
    agi: ListenerConfig
    http: ListenerConfig
    metrics: ListenerConfig


@dataclass(frozen=True, slots=True)
class ContactsConfig:
    default_region: str


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    stall_after: float
    poll_interval: float
    max_call_length: float      # a connected call older than this is reconciled with Asterisk
    dial_margin: float          # a dialling attempt is stale after ring_timeout + this
    result_timeout: float       # a call that ended waits this long for its bot result
    heartbeat_interval: float   # daemon heartbeat; a daemon silent for 3x this is dead


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str
    format: str


@dataclass(frozen=True, slots=True)
class ApiConfig:
    tokens: tuple[str, ...] = field(default=(), repr=False)  # bearer tokens (tokens_file)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    name: str
    host: str
    port: int
    capacity: int


@dataclass(frozen=True, slots=True)
class FleetConfig:
    workers: tuple[WorkerConfig, ...]    # static workers (more register over the API)
    heartbeat_timeout: float             # a registered worker silent this long leaves rotation


@dataclass(frozen=True, slots=True)
class Config:
    database: DatabaseConfig
    asterisk: tuple[AsteriskConfig, ...]
    carriers: tuple[CarrierConfig, ...]
    numbers: tuple[NumberConfig, ...]
    listeners: ListenersConfig
    contacts: ContactsConfig
    scheduler: SchedulerConfig
    logging: LoggingConfig
    api: ApiConfig = ApiConfig()
    fleet: FleetConfig = FleetConfig((), 15.0)

    def carrier(self, name: str) -> CarrierConfig:
        """The carrier called `name`; `KeyError` if there is none."""
        for carrier in self.carriers:
            if carrier.name == name:
                return carrier
        raise KeyError(name)


# --- reading the file ------------------------------------------------------------------------

def load_config(path: str, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate the YAML config file at `path`.

    `env` is where `secret_env` variables are looked up (default: `os.environ`). A relative
    `secret_file` is taken relative to the config file's directory. Raises `ConfigError` with
    every problem found, including a missing or unreadable file and YAML syntax errors.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise ConfigError(["file not found"], path) from None
    except IsADirectoryError:
        raise ConfigError(["is a directory, not a file"], path) from None
    except OSError as exc:
        raise ConfigError([f"cannot read file: {exc.strerror or exc}"], path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text (bad byte at offset {exc.start})"], path) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_problem(exc)], path) from None
    return parse_config(data, path, env, base_dir=os.path.dirname(os.path.abspath(path)))


class _StrictLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses duplicate keys, which PyYAML would silently collapse."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            # Keys merged in with `<<` may be overridden on purpose; only explicit ones count.
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while reading a mapping", node.start_mark,
                    f"found duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    # Built from the parts rather than str(exc), which quotes lines of the file.
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        message = f"line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {exc.problem}"
        if exc.context and exc.context_mark is not None:
            message += f" ({exc.context} on line {exc.context_mark.line + 1})"
        return message
    return f"invalid YAML: {exc}"


# --- validation ------------------------------------------------------------------------------

_TOP_KEYS = ("database", "asterisk", "carriers", "numbers", "listeners", "contacts", "scheduler",
             "logging", "api", "fleet")
_ASTERISK_KEYS = ("name", "ami", "originate_context")
_AMI_KEYS = ("host", "port", "username", "secret_file", "secret_env", "ping_interval",
             "ping_timeout", "reconnect_delay", "connect_timeout")
_CARRIER_KEYS = ("name", "endpoint", "max_channels", "calls_per_second")
_NUMBER_KEYS = ("number", "carrier", "enabled")
_LISTENER_KEYS = ("host", "port", "allow_non_loopback")
_LISTENER_PORTS = {"agi": 4573, "http": 8080, "metrics": 9464}

# Names end up in dial strings, dialplan contexts and metric labels: no room for `/`, `,`, `&`.
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_NAME_RULE = "letters, digits, '_', '.', '-'"
_E164 = re.compile(r"\+[0-9]{8,15}")
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NO_SPACE = re.compile(r"\S+")
_REGION = re.compile(r"[A-Z]{2}")
_MAX_SECRET_BYTES = 4096


def parse_config(data: object, source: str, env: Mapping[str, str] | None = None, *,
                 base_dir: str | None = None) -> Config:
    """Validate `data` (the parsed YAML document) and build the `Config`.

    `source` names the file in the `ConfigError`; `env` is where `secret_env` variables are
    looked up (default: `os.environ`); a relative `secret_file` is resolved against `base_dir`
    (default: the working directory).
    """
    problems: list[str] = []
    root = _Section(data, "", problems, _TOP_KEYS)
    if problems and not isinstance(data, dict):  # not a mapping: nothing else is worth saying
        raise ConfigError(problems, source)
    context = _Context(os.environ if env is None else env, base_dir or os.getcwd())
    # Sections are read in file order so that the problems come out in that order too.
    database = _database(root)
    asterisk = _asterisk(root, context)
    carriers = _carriers(root)
    config = Config(
        database=database,
        asterisk=asterisk,
        carriers=carriers,
        numbers=_numbers(root, carriers),
        listeners=_listeners(root),
        contacts=_contacts(root),
        scheduler=_scheduler(root),
        logging=_logging(root),
        api=_api(root, context),
        fleet=_fleet(root),
    )
    if problems:
        raise ConfigError(problems, source)
    return config


@dataclass(frozen=True, slots=True)
class _Context:
    env: Mapping[str, str]
    base_dir: str


class _Section:
    """One mapping of the file, at key path `path`, read with typed accessors.

    Accessors record a problem instead of raising and always return a usable value (the default,
    or a placeholder for a missing required key), so every dataclass can be built and all
    problems are reported in one go; `parse_config` raises at the end if there were any.
    """

    def __init__(self, data: object, path: str, problems: list[str],
                 keys: Collection[str]) -> None:
        self.path = path
        self.problems = problems
        self.failed: set[str] = set()
        self._data: dict[str, object] = {}
        if data is None:  # an absent or blank section takes the defaults
            return
        if not isinstance(data, dict):
            self.problem(None, f"expected a mapping, got {_describe(data)}")
            return
        for key, value in data.items():
            if isinstance(key, str) and key in keys:
                self._data[key] = value
            else:
                self.problem(str(key), "unknown key" + _suggestion(str(key), keys))

    def path_of(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str | None, message: str) -> None:
        if key is not None:
            self.failed.add(key)
        where = self.path_of(key) if key is not None else (self.path or "top level")
        self.problems.append(f"{where}: {message}")

    def has(self, key: str) -> bool:
        """True if `key` is present with a value (a blank value counts as absent)."""
        return self._data.get(key) is not None

    def valid(self, *keys: str) -> bool:
        """True if none of `keys` had a problem (so comparing them makes sense)."""
        return not self.failed.intersection(keys)

    def _value(self, key: str, required: bool) -> object:
        value = self._data.get(key)
        if value is None and required:
            self.problem(key, "missing required key")
        return value

    def section(self, key: str, keys: Collection[str]) -> _Section:
        """The mapping at `key`; absent, it is empty and its own required keys report that."""
        return _Section(self._data.get(key), self.path_of(key), self.problems, keys)

    def entries(self, key: str, keys: Collection[str], *, required: bool) -> Iterator[_Section]:
        """The mappings of the list at `key`; a required list must have at least one.

        A generator, so that each entry's problems are recorded in file order.
        """
        value = self._data.get(key)
        if value is None or value == []:
            if required:
                self.problem(key, "at least one entry is required")
            return
        if not isinstance(value, list):
            self.problem(key, f"expected a list, got {_describe(value)}")
            return
        path = self.path_of(key)
        for index, item in enumerate(value):
            if item is None:  # a bare `-`: no entry to build, say so rather than list its keys
                self.problems.append(f"{path}[{index}]: empty entry")
            else:
                yield _Section(item, f"{path}[{index}]", self.problems, keys)

    def string(self, key: str, default: str | None = None, *,
               pattern: re.Pattern[str] | None = None, rule: str = "", echo: bool = True) -> str:
        """A non-empty string; required when `default` is None; `pattern` must match it all.

        With `echo=False` the value never appears in a message (it may hold a password).
        """
        value = self._value(key, required=default is None)
        if value is None:
            return default or ""
        if not isinstance(value, str):
            shown = _describe(value) if echo else type(value).__name__
            self.problem(key, f"expected a string, got {shown}{_quote_hint(value)}")
        elif not value.strip():
            self.problem(key, "must not be empty")
        elif pattern is not None and not pattern.fullmatch(value):
            shown = f"{_shown(value)} is not valid" if echo else "not valid"
            self.problem(key, f"{shown}: {rule}")
        else:
            return value
        return default or ""

    def integer(self, key: str, default: int, *, minimum: int = 1,
                maximum: int | None = None) -> int:
        value = self._value(key, required=False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"expected an integer, got {_describe(value)}")
        elif value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            self.problem(key, f"{value} is out of range; must be {bounds}")
        else:
            return value
        return default

    def positive_number(self, key: str, default: float) -> float:
        value = self._value(key, required=False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"expected a number, got {_describe(value)}")
        elif not math.isfinite(value) or value <= 0:
            self.problem(key, f"{value} is out of range; must be a number greater than 0")
        else:
            return float(value)
        return default

    def boolean(self, key: str, default: bool) -> bool:
        value = self._value(key, required=False)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(key, f"expected true or false, got {_describe(value)}")
            return default
        return value

    def positive_duration(self, key: str, default: float) -> float:
        value = self._value(key, required=False)
        if value is None:
            return default
        try:
            seconds = parse_duration(value, self.path_of(key))
        except ValueError as exc:
            self.failed.add(key)
            self.problems.append(str(exc))
            return default
        if seconds <= 0:
            self.problem(key, "must be greater than 0")
            return default
        return seconds

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.string(key, default)
        if value in choices:
            return value
        if self.valid(key):
            self.problem(key, f"unknown value {_shown(value)} (expected one of: "
                              f"{', '.join(choices)})")
        return default




def _quote_hint(value: object) -> str:
    # YAML reads an unquoted +441632960001 as an integer and NO (Norway) as false.
    if isinstance(value, bool | int | float):
        return " (put the value in quotes)"
    return ""


def _suggestion(key: str, known: Collection[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unique(item: _Section, key: str, value: str, seen: dict[str, str]) -> None:
    """Record `value` under `key` of `item`; a problem if an earlier entry already has it."""
    if not value or not item.valid(key):
        return
    if value in seen:
        item.problem(key, f"duplicate {key} {_shown(value)} (first at {seen[value]})")
    else:
        seen[value] = item.path_of(key)


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.fullmatch(host))
    return True


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- one function per section ----------------------------------------------------------------

def _database(root: _Section) -> DatabaseConfig:
    db = root.section("database", ("dsn", "pool_min", "pool_max"))
    dsn = db.string("dsn", echo=False)
    if dsn and not dsn.startswith(("postgresql://", "postgres://")):
        db.problem("dsn", "must be a URL starting with postgresql:// or postgres://")
    pool_min = db.integer("pool_min", 2, minimum=1)
    pool_max = db.integer("pool_max", 10, minimum=1)
    if db.valid("pool_min", "pool_max") and pool_max < pool_min:
        db.problem("pool_max", f"{pool_max} is less than {db.path_of('pool_min')} ({pool_min})")
    return DatabaseConfig(dsn=dsn, pool_min=pool_min, pool_max=pool_max)


def _asterisk(root: _Section, context: _Context) -> tuple[AsteriskConfig, ...]:
    servers: list[AsteriskConfig] = []
    seen: dict[str, str] = {}
    for item in root.entries("asterisk", _ASTERISK_KEYS, required=True):
        name = item.string("name", pattern=_NAME, rule=_NAME_RULE)
        _unique(item, "name", name, seen)
        ami = _ami(item.section("ami", _AMI_KEYS), context)
        originate_context = item.string("originate_context", "dialler-outbound", pattern=_NAME,
                                        rule=_NAME_RULE)
        servers.append(AsteriskConfig(name=name, ami=ami, originate_context=originate_context))
    return tuple(servers)


def _ami(ami: _Section, context: _Context) -> AmiConfig:
    host = ami.string("host", "127.0.0.1")
    if ami.valid("host") and not _is_host(host):
        ami.problem("host", f"{_shown(host)} is not an IP address or host name")
    return AmiConfig(
        host=host,
        port=ami.integer("port", 5038, maximum=65535),
        username=ami.string("username", pattern=_NO_SPACE, rule="no spaces or line breaks"),
        secret=_ami_secret(ami, context),
        ping_interval=ami.positive_duration("ping_interval", 5.0),
        ping_timeout=ami.positive_duration("ping_timeout", 3.0),
        reconnect_delay=ami.positive_duration("reconnect_delay", 2.0),
        connect_timeout=ami.positive_duration("connect_timeout", 5.0),
    )


def _ami_secret(ami: _Section, context: _Context) -> str:
    has_file, has_env = ami.has("secret_file"), ami.has("secret_env")
    if has_file and has_env:
        ami.problem(None, "set only one of secret_file and secret_env, not both")
    elif has_file:
        return _secret_from_file(ami, context.base_dir)
    elif has_env:
        return _secret_from_env(ami, context.env)
    else:
        ami.problem(None, "no AMI secret; set secret_file (a path) or secret_env (a variable name)")
    return ""


def _api(root: _Section, context: _Context) -> ApiConfig:
    api = root.section("api", ("tokens_file",))
    if not api.has("tokens_file"):
        return ApiConfig()
    text = _secret_from_file(api, context.base_dir, key="tokens_file", multiline=True)
    tokens = tuple(line.strip() for line in text.splitlines()
                   if line.strip() and not line.strip().startswith("#"))
    if api.valid("tokens_file") and not tokens:
        api.problem("tokens_file", "holds no token (one per line; # starts a comment)")
    for token in tokens:
        if len(token) < 16:
            api.problem("tokens_file", "a token is shorter than 16 characters")
            break
    return ApiConfig(tokens)


def _fleet(root: _Section) -> FleetConfig:
    fleet = root.section("fleet", ("workers", "heartbeat_timeout"))
    workers: list[WorkerConfig] = []
    for entry in fleet.entries("workers", ("name", "host", "port", "capacity"), required=False):
        name = entry.string("name", pattern=_NAME, rule=_NAME_RULE)
        if name and any(w.name == name for w in workers):
            entry.problem("name", f"duplicate worker name {_shown(name)}")
        workers.append(WorkerConfig(name=name, host=entry.string("host", "127.0.0.1"),
                                    port=entry.integer("port", 57000, maximum=65535),
                                    capacity=entry.integer("capacity", 1, minimum=0)))
    return FleetConfig(tuple(workers),
                       fleet.positive_duration("heartbeat_timeout", 15.0))


def _secret_from_file(ami: _Section, base_dir: str, key: str = "secret_file",
                      multiline: bool = False) -> str:
    name = ami.string(key)
    if not name:
        return ""
    path = os.path.join(base_dir, name)  # an absolute `name` wins
    problem = _secret_file_problem(path)
    if problem is not None:
        ami.problem(key, problem)
        return ""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_SECRET_BYTES + 1)
    except OSError as exc:
        ami.problem(key, f"file {path} is not readable ({exc.strerror or exc})")
        return ""
    if len(raw) > _MAX_SECRET_BYTES:
        ami.problem(key, f"file {path} is over {_MAX_SECRET_BYTES} bytes; "
                                   "is it really the secret?")
        return ""
    try:
        secret = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        ami.problem(key, f"file {path} is not UTF-8 text")
        return ""
    problem = None if multiline else _secret_text_problem(secret)
    if problem is not None:
        ami.problem(key, f"file {path} {problem}")
        return ""
    return secret


def _secret_file_problem(path: str) -> str | None:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return f"file {path} does not exist"
    except OSError as exc:
        return f"file {path} is not accessible ({exc.strerror or exc})"
    if not stat.S_ISREG(mode):  # a FIFO would block the start-up
        return f"{path} is not a regular file"
    if not os.access(path, os.R_OK):
        return f"file {path} is not readable by this user"
    return None


def _secret_from_env(ami: _Section, env: Mapping[str, str]) -> str:
    name = ami.string("secret_env", pattern=_ENV_NAME, rule="an environment variable name")
    if not name:
        return ""
    secret = env.get(name)
    if secret is None:
        ami.problem("secret_env", f"environment variable {name} is not set")
        return ""
    problem = _secret_text_problem(secret)
    if problem is not None:
        ami.problem("secret_env", f"environment variable {name} {problem}")
        return ""
    return secret


def _secret_text_problem(secret: str) -> str | None:
    """What is wrong with a resolved secret, in words that never include the secret."""
    if not secret.strip():
        return "is empty"
    # A line break would let the secret inject extra headers into the AMI Login action.
    if "\n" in secret or "\r" in secret:
        return "contains a line break; the secret must be a single line"
    return None


def _carriers(root: _Section) -> tuple[CarrierConfig, ...]:
    carriers: list[CarrierConfig] = []
    seen: dict[str, str] = {}
    for item in root.entries("carriers", _CARRIER_KEYS, required=True):
        name = item.string("name", pattern=_NAME, rule=_NAME_RULE)
        _unique(item, "name", name, seen)
        carriers.append(CarrierConfig(
            name=name,
            endpoint=item.string("endpoint", name, pattern=_NAME, rule=_NAME_RULE),
            max_channels=item.integer("max_channels", 100, minimum=1),
            calls_per_second=item.positive_number("calls_per_second", 10.0),
        ))
    return tuple(carriers)


def _numbers(root: _Section, carriers: tuple[CarrierConfig, ...]) -> tuple[NumberConfig, ...]:
    known = list(dict.fromkeys(carrier.name for carrier in carriers if carrier.name))
    numbers: list[NumberConfig] = []
    seen: dict[str, str] = {}
    for item in root.entries("numbers", _NUMBER_KEYS, required=False):
        number = item.string("number", pattern=_E164,
                             rule="expected E.164: '+' then 8 to 15 digits")
        _unique(item, "number", number, seen)
        carrier = item.string("carrier")
        if carrier and carrier not in known:
            item.problem("carrier", f"unknown carrier {_shown(carrier)} "
                                    f"(known: {', '.join(known) or 'none'})")
        numbers.append(NumberConfig(number=number, carrier=carrier,
                                    enabled=item.boolean("enabled", True)))
    return tuple(numbers)


def _listeners(root: _Section) -> ListenersConfig:
    section = root.section("listeners", tuple(_LISTENER_PORTS))
    listeners = {name: _listener(section, name, port) for name, port in _LISTENER_PORTS.items()}
    used: dict[int, str] = {}
    for name, listener in listeners.items():
        path = f"{section.path_of(name)}.port"
        if listener.port in used:
            section.problems.append(
                f"{path}: {listener.port} is already used by {used[listener.port]}")
        else:
            used[listener.port] = path
    return ListenersConfig(**listeners)


def _listener(listeners: _Section, name: str, default_port: int) -> ListenerConfig:
    section = listeners.section(name, _LISTENER_KEYS)
    host = section.string("host", "127.0.0.1")
    port = section.integer("port", default_port, maximum=65535)
    allow = section.boolean("allow_non_loopback", False)
    if section.valid("host") and not _is_loopback(host):
        if not _is_host(host):
            section.problem("host", f"{_shown(host)} is not an IP address or host name")
        elif not allow:
            section.problem("host", f"{host} is not a loopback address; set "
                                    f"{section.path_of('allow_non_loopback')}: true to expose it")
    return ListenerConfig(host=host, port=port, allow_non_loopback=allow)


def _contacts(root: _Section) -> ContactsConfig:
    contacts = root.section("contacts", ("default_region",))
    region = contacts.string("default_region", "GB", pattern=_REGION,
                             rule="expected an ISO 3166 alpha-2 code in upper case, e.g. GB")
    if contacts.valid("default_region") and region not in phonenumbers.SUPPORTED_REGIONS:
        contacts.problem("default_region", f"unknown region {_shown(region)}")
    return ContactsConfig(default_region=region)


def _scheduler(root: _Section) -> SchedulerConfig:
    scheduler = root.section("scheduler", ("stall_after", "poll_interval", "max_call_length",
                                           "dial_margin", "result_timeout",
                                           "heartbeat_interval"))
    return SchedulerConfig(
        stall_after=scheduler.positive_duration("stall_after", 120.0),
        poll_interval=scheduler.positive_duration("poll_interval", 1.0),
        max_call_length=scheduler.positive_duration("max_call_length", 3600.0),
        dial_margin=scheduler.positive_duration("dial_margin", 30.0),
        result_timeout=scheduler.positive_duration("result_timeout", 60.0),
        heartbeat_interval=scheduler.positive_duration("heartbeat_interval", 5.0))


def _logging(root: _Section) -> LoggingConfig:
    logging = root.section("logging", ("level", "format"))
    levels = ("debug", "info", "warning", "error")
    return LoggingConfig(level=logging.choice("level", "info", levels),
                         format=logging.choice("format", "logfmt", ("logfmt", "json")))
