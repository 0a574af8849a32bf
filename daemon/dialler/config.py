"""The daemon's configuration file: one validated, immutable settings object.

`load_config` reads the YAML file and `parse_config` checks every value, collecting *all*
problems before raising one `ConfigError`. Each problem starts with the key path
(``asterisk[0].ami.secret_file: file /x does not exist``). Unknown keys are errors, wrong types
are errors (a boolean is not an integer), and secrets never appear in a message or a repr.
Reading and the typed getters are `dialler.reader`'s, shared with the bot and campaign files;
what is here is what each key must be. The reference for every key is docs/config.md.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import re
import stat
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

import phonenumbers

from .domain.messages import shown as _shown
from .domain.numbers import E164, E164_RULE
from .domain.throttle import DEFAULT_CODES, ThrottleSettings
from .errors import ConfigError
from .reader import FileProblem, Problem, Rule, Section, matches, parse_yaml, read_text

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
    "WorkerToken",
    "is_host",
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
    #: Calls this daemon may have up on this server at once; None: no cap of its own.
    max_channels: int | None = None


@dataclass(frozen=True, slots=True)
class CarrierConfig:
    name: str
    endpoint: str
    max_channels: int
    calls_per_second: float
    #: AIMD throttling on 429/503 (docs/config.md, `throttle:`); the defaults when absent.
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)


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
    # FastAGI only: the shared secret the dialplan passes (`attach?secret=...`) and the
    # networks a request may come from (empty: any).
    secret: str = field(default="", repr=False)
    allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


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
    max_call_length: float  # a connected call older than this is reconciled with Asterisk
    dial_margin: float  # a dialling attempt is stale after ring_timeout + this
    result_timeout: float  # a call that ended waits this long for its bot result
    heartbeat_interval: float  # daemon heartbeat; a daemon silent for 3x this is dead
    #: Where the results journal lives (docs/reliability.md); None: the environment decides.
    state_dir: str | None = None


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str
    format: str


@dataclass(frozen=True, slots=True)
class WorkerToken:
    """A worker token (`api.worker_tokens_file`) and the worker names it may act for."""

    token: str = field(repr=False)
    workers: frozenset[str]


@dataclass(frozen=True, slots=True)
class ApiConfig:
    tokens: tuple[str, ...] = field(default=(), repr=False)  # operator tokens (tokens_file)
    viewer_tokens: tuple[str, ...] = field(default=(), repr=False)  # read-only (console)
    worker_tokens: tuple[WorkerToken, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    name: str
    host: str
    port: int
    capacity: int


@dataclass(frozen=True, slots=True)
class FleetConfig:
    workers: tuple[WorkerConfig, ...]  # static workers (more register over the API)
    heartbeat_timeout: float  # a registered worker silent this long leaves rotation


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
    #: Secret and token files that users other than the owner (and group) may read or write:
    #: `config check` refuses them, the daemon warns at start (docs/security.md).
    exposed: tuple[str, ...] = ()

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
    text = read_text(path)
    if isinstance(text, FileProblem):
        raise ConfigError([text.message], path)
    parsed = parse_yaml(text)
    if isinstance(parsed, FileProblem):
        raise ConfigError([parsed.message], path)
    return parse_config(parsed.data, path, env, base_dir=os.path.dirname(os.path.abspath(path)))


# --- validation ------------------------------------------------------------------------------

_TOP_KEYS = (
    "database",
    "asterisk",
    "carriers",
    "numbers",
    "listeners",
    "contacts",
    "scheduler",
    "logging",
    "api",
    "fleet",
)
_ASTERISK_KEYS = ("name", "ami", "originate_context", "max_channels")
_AMI_KEYS = (
    "host",
    "port",
    "username",
    "secret_file",
    "secret_env",
    "ping_interval",
    "ping_timeout",
    "reconnect_delay",
    "connect_timeout",
)
_CARRIER_KEYS = ("name", "endpoint", "max_channels", "calls_per_second", "throttle")
_THROTTLE_KEYS = (
    "codes",
    "threshold",
    "min_refusals",
    "decrease",
    "increase",
    "cooldown",
    "min_rate",
    "window",
    "max_requeues",
    "requeue_after",
)
_NUMBER_KEYS = ("number", "carrier", "enabled")
_LISTENER_KEYS = ("host", "port", "allow_non_loopback")
_AGI_KEYS = ("secret_file", "secret_env", "allow")
_AGI_SECRET = re.compile(r"[A-Za-z0-9_-]{16,128}")
_LISTENER_PORTS = {"agi": 4573, "http": 8080, "metrics": 9464}

# Names end up in dial strings, dialplan contexts and metric labels: no room for `/`, `,`, `&`.
_NAME = matches(re.compile(r"[A-Za-z0-9_.-]+"), "letters, digits, '_', '.', '-'")
_E164 = matches(E164, E164_RULE)
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?"
)
_ENV_NAME = matches(re.compile(r"[A-Za-z_][A-Za-z0-9_]*"), "an environment variable name")
_NO_SPACE = matches(re.compile(r"\S+"), "no spaces or line breaks")
_REGION = matches(
    re.compile(r"[A-Z]{2}"), "expected an ISO 3166 alpha-2 code in upper case, e.g. GB"
)
_MAX_SECRET_BYTES = 4096


def _between(minimum: int, maximum: int | None = None) -> Rule[int]:
    """A rule: an integer from `minimum` to `maximum` (no upper bound if None)."""

    def check(value: int) -> str | None:
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            return f"{value} is out of range; must be {bounds}"
        return None

    return check


def _greater_than_0(value: float) -> str | None:
    """A rule: a finite number greater than 0."""
    if not math.isfinite(value) or value <= 0:
        return f"{value} is out of range; must be a number greater than 0"
    return None


_AT_LEAST_1 = _between(1)
_PORT = _between(1, 65535)


def parse_config(
    data: object, source: str, env: Mapping[str, str] | None = None, *, base_dir: str | None = None
) -> Config:
    """Validate `data` (the parsed YAML document) and build the `Config`.

    `source` names the file in the `ConfigError`; `env` is where `secret_env` variables are
    looked up (default: `os.environ`); a relative `secret_file` is resolved against `base_dir`
    (default: the working directory).
    """
    root = Section(data, _TOP_KEYS)
    if root.problems and not isinstance(data, dict):  # not a mapping: nothing else to say
        raise _error(root.problems, source)
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
        listeners=_listeners(root, context),
        contacts=_contacts(root),
        scheduler=_scheduler(root),
        logging=_logging(root),
        api=_api(root, context),
        fleet=_fleet(root),
    )
    if root.problems:
        raise _error(root.problems, source)
    return dataclasses.replace(config, exposed=tuple(context.exposed))


def _error(problems: list[Problem], source: str) -> ConfigError:
    """Each problem as ``<key path>: <what is wrong>`` (the CLI puts the file name first)."""
    return ConfigError(
        [f"{problem.path or 'top level'}: {problem.message}" for problem in problems], source
    )


@dataclass(frozen=True, slots=True)
class _Context:
    env: Mapping[str, str]
    base_dir: str
    exposed: list[str] = field(default_factory=list)  # secret files others may read


def _unique(item: Section, key: str, value: str, seen: dict[str, str]) -> None:
    """Record `value` under `key` of `item`; a problem if an earlier entry already has it."""
    if not value or not item.valid(key):
        return
    if value in seen:
        item.problem(key, f"duplicate {key} {_shown(value)} (first at {seen[value]})")
    else:
        seen[value] = item.path_of(key)


def is_host(host: str) -> bool:
    """True for an IP address or a host name (RFC 1123 syntax): nothing that could break
    out of the AGI or dial string it is written into (no quotes, commas, spaces, CR/LF)."""
    return _is_host(host)


def _is_host(host: str) -> bool:
    if not host.isascii() or not host.isprintable():
        return False
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


def _database(root: Section) -> DatabaseConfig:
    db = root.section("database", ("dsn", "pool_min", "pool_max"))
    dsn = db.string("dsn", echo=False)
    if dsn and not dsn.startswith(("postgresql://", "postgres://")):
        db.problem("dsn", "must be a URL starting with postgresql:// or postgres://")
    elif dsn:
        for problem in _dsn_problems(dsn):
            db.problem("dsn", problem)
    pool_min = db.integer("pool_min", 2, rules=[_AT_LEAST_1])
    pool_max = db.integer("pool_max", 10, rules=[_AT_LEAST_1])
    if db.valid("pool_min", "pool_max") and pool_max < pool_min:
        db.problem("pool_max", f"{pool_max} is less than {db.path_of('pool_min')} ({pool_min})")
    return DatabaseConfig(dsn=dsn, pool_min=pool_min, pool_max=pool_max)


def _asterisk(root: Section, context: _Context) -> tuple[AsteriskConfig, ...]:
    servers: list[AsteriskConfig] = []
    seen: dict[str, str] = {}
    for item in root.entries("asterisk", _ASTERISK_KEYS, required=True):
        name = item.string("name", rules=[_NAME])
        _unique(item, "name", name, seen)
        ami = _ami(item.section("ami", _AMI_KEYS), context)
        originate_context = item.string("originate_context", "dialler-outbound", rules=[_NAME])
        # Optional: absent means no cap of the server's own (carriers' caps still hold).
        max_channels = (
            item.integer("max_channels", 1, rules=[_AT_LEAST_1])
            if item.has("max_channels")
            else None
        )
        servers.append(
            AsteriskConfig(
                name=name,
                ami=ami,
                originate_context=originate_context,
                max_channels=max_channels,
            )
        )
    return tuple(servers)


#: DSN query parameters with a fixed set of values (asyncpg's; a wrong one crashed the CLI).
_DSN_CHOICES: Mapping[str, tuple[str, ...]] = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "target_session_attrs": (
        "any",
        "primary",
        "standby",
        "prefer-standby",
        "read-write",
        "read-only",
    ),
    "ssl_min_protocol_version": ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"),
    "ssl_max_protocol_version": ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"),
}


def _dsn_problems(dsn: str) -> list[str]:
    """What is wrong with the DSN's port and parameters, never quoting the DSN (a password)."""
    try:
        parts = urllib.parse.urlsplit(dsn)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False)
    except ValueError as exc:
        return [f"is not a valid URL ({exc})"]
    problems: list[str] = []
    hosts = parts.netloc.rpartition("@")[2]
    for hostspec in hosts.split(","):
        _, colon, port = hostspec.rpartition(":") if not hostspec.endswith("]") else ("", "", "")
        if colon and port and not (port.isdigit() and 1 <= int(port) <= 65535):
            problems.append("the port is not a number between 1 and 65535")
    for key, value in query:
        choices = _DSN_CHOICES.get(key)
        if choices is not None and value not in choices:
            problems.append(f"{key} must be one of {', '.join(choices)} (got {_shown(value)})")
        elif key == "port" and not (value.isdigit() and 1 <= int(value) <= 65535):
            problems.append("the port parameter is not a number between 1 and 65535")
    return problems


def _ami(ami: Section, context: _Context) -> AmiConfig:
    host = ami.string("host", "127.0.0.1")
    if ami.valid("host") and not _is_host(host):
        ami.problem("host", f"{_shown(host)} is not an IP address or host name")
    return AmiConfig(
        host=host,
        port=ami.integer("port", 5038, rules=[_PORT]),
        username=ami.string("username", rules=[_NO_SPACE]),
        secret=_ami_secret(ami, context),
        ping_interval=ami.duration("ping_interval", 5.0, positive=True),
        ping_timeout=ami.duration("ping_timeout", 3.0, positive=True),
        reconnect_delay=ami.duration("reconnect_delay", 2.0, positive=True),
        connect_timeout=ami.duration("connect_timeout", 5.0, positive=True),
    )


def _ami_secret(ami: Section, context: _Context) -> str:
    has_file, has_env = ami.has("secret_file"), ami.has("secret_env")
    if has_file and has_env:
        ami.problem(None, "set only one of secret_file and secret_env, not both")
    elif has_file:
        return _secret_from_file(ami, context)
    elif has_env:
        return _secret_from_env(ami, context.env)
    else:
        ami.problem(None, "no AMI secret; set secret_file (a path) or secret_env (a variable name)")
    return ""


def _api(root: Section, context: _Context) -> ApiConfig:
    api = root.section("api", ("tokens_file", "viewer_tokens_file", "worker_tokens_file"))
    tokens = _token_lines(api, context, "tokens_file")
    viewers = _token_lines(api, context, "viewer_tokens_file")
    workers: list[WorkerToken] = []
    bound: dict[str, int] = {}  # worker name → line of the token bound to it
    for number, line in _lines(api, context, "worker_tokens_file"):
        token, _, names_text = line.replace("\t", " ").partition(" ")
        names = [name for name in re.split(r"[\s,]+", names_text.strip()) if name]
        where = f"line {number}"
        if not names:
            api.problem("worker_tokens_file", f"{where}: expected '<token> <worker name>...'")
            continue
        for name in names:
            if _NAME(name) is not None:
                api.problem("worker_tokens_file", f"{where}: {_shown(name)} is not a worker name")
            elif name in bound:
                # One name, one token: a name registered under one token is never another's.
                api.problem(
                    "worker_tokens_file",
                    f"{where}: worker {_shown(name)} is already bound to the token of "
                    f"line {bound[name]}",
                )
            else:
                bound[name] = number
        workers.append(WorkerToken(token, frozenset(names)))
    every = [*tokens, *viewers, *(w.token for w in workers)]
    for token in every:
        if len(token) < _MIN_TOKEN:
            api.problem(None, f"a token is shorter than {_MIN_TOKEN} characters")
            break
    if len(set(every)) != len(every):
        api.problem(None, "the same token appears twice (each token has one role)")
    return ApiConfig(tuple(tokens), tuple(viewers), tuple(workers))


_MIN_TOKEN = 16


def _lines(api: Section, context: _Context, key: str) -> list[tuple[int, str]]:
    """The numbered non-empty, non-comment lines of the tokens file under `key` (stripped)."""
    if not api.has(key):
        return []
    text = _secret_from_file(api, context, key=key, multiline=True)
    lines = [
        (number, line.strip())
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.strip().startswith("#")
    ]
    if api.valid(key) and not lines:
        api.problem(key, "holds no token (one per line; # starts a comment)")
    return lines


def _token_lines(api: Section, context: _Context, key: str) -> list[str]:
    """The tokens of a one-token-per-line file (`tokens_file`, `viewer_tokens_file`)."""
    tokens: list[str] = []
    for number, line in _lines(api, context, key):
        if any(char.isspace() for char in line):
            api.problem(key, f"line {number}: a token has no spaces")
            continue
        tokens.append(line)
    return tokens


def _fleet(root: Section) -> FleetConfig:
    fleet = root.section("fleet", ("workers", "heartbeat_timeout"))
    workers: list[WorkerConfig] = []
    for entry in fleet.entries("workers", ("name", "host", "port", "capacity"), required=False):
        name = entry.string("name", rules=[_NAME])
        if name and any(w.name == name for w in workers):
            entry.problem("name", f"duplicate worker name {_shown(name)}")
        host = entry.string("host", "127.0.0.1")
        if entry.valid("host") and not _is_host(host):
            # The host goes into the AGI line that hands the call to the worker.
            entry.problem("host", f"{_shown(host)} is not an IP address or host name")
        workers.append(
            WorkerConfig(
                name=name,
                host=host,
                port=entry.integer("port", 57000, rules=[_PORT]),
                capacity=entry.integer("capacity", 1, rules=[_between(0)]),
            )
        )
    return FleetConfig(tuple(workers), fleet.duration("heartbeat_timeout", 15.0, positive=True))


def _secret_from_file(
    ami: Section, context: _Context, key: str = "secret_file", multiline: bool = False
) -> str:
    name = ami.string(key)
    if not name:
        return ""
    path = os.path.join(context.base_dir, name)  # an absolute `name` wins
    problem = _secret_file_problem(path)
    if problem is not None:
        ami.problem(key, problem)
        return ""
    if os.stat(path).st_mode & (stat.S_IROTH | stat.S_IWOTH):
        context.exposed.append(
            f"{ami.path_of(key)}: file {path} is readable or writable by other users "
            "(chmod 600, or 640 with the daemon's group)"
        )
    try:
        with open(path, "rb") as handle:
            raw = handle.read(_MAX_SECRET_BYTES + 1)
    except OSError as exc:
        ami.problem(key, f"file {path} is not readable ({exc.strerror or exc})")
        return ""
    if len(raw) > _MAX_SECRET_BYTES:
        ami.problem(key, f"file {path} is over {_MAX_SECRET_BYTES} bytes; is it really the secret?")
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


def _secret_from_env(ami: Section, env: Mapping[str, str]) -> str:
    name = ami.string("secret_env", rules=[_ENV_NAME])
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


def _carriers(root: Section) -> tuple[CarrierConfig, ...]:
    carriers: list[CarrierConfig] = []
    seen: dict[str, str] = {}
    for item in root.entries("carriers", _CARRIER_KEYS, required=True):
        name = item.string("name", rules=[_NAME])
        _unique(item, "name", name, seen)
        carriers.append(
            CarrierConfig(
                name=name,
                endpoint=item.string("endpoint", name, rules=[_NAME]),
                max_channels=item.integer("max_channels", 100, rules=[_AT_LEAST_1]),
                calls_per_second=item.number("calls_per_second", 10.0, rules=[_greater_than_0]),
                throttle=_throttle(item.section("throttle", _THROTTLE_KEYS)),
            )
        )
    return tuple(carriers)


def _fraction(*, below_1: bool) -> Rule[float]:
    """A rule: a number greater than 0 and at most 1 (below 1 if `below_1`)."""
    bound = "below 1" if below_1 else "at most 1"

    def check(value: float) -> str | None:
        if not math.isfinite(value) or value <= 0 or value > 1 or (below_1 and value == 1):
            return f"{value} is out of range; must be greater than 0 and {bound}"
        return None

    return check


def _throttle_codes(section: Section) -> frozenset[int]:
    """The SIP codes that mean "slow down": a non-empty list of 4xx–6xx codes."""
    value = section.get("codes")
    if value is None:
        return DEFAULT_CODES
    if not isinstance(value, list) or not value:
        section.problem("codes", "expected a non-empty list of SIP codes, e.g. [429, 503]")
        return DEFAULT_CODES
    codes: set[int] = set()
    for index, code in enumerate(value):
        if isinstance(code, bool) or not isinstance(code, int) or not 400 <= code <= 699:
            section.problem_at(
                f"{section.path_of('codes')}[{index}]",
                f"expected a SIP failure code from 400 to 699, got {code!r}",
            )
        else:
            codes.add(code)
    return frozenset(codes) or DEFAULT_CODES


def _throttle(section: Section) -> ThrottleSettings:
    """A carrier's `throttle:` section (AIMD on 429/503: docs/config.md, docs/engine.md)."""
    default = ThrottleSettings()
    return ThrottleSettings(
        codes=_throttle_codes(section),
        threshold=section.number("threshold", default.threshold, rules=[_fraction(below_1=False)]),
        min_refusals=section.integer("min_refusals", default.min_refusals, rules=[_AT_LEAST_1]),
        decrease=section.number("decrease", default.decrease, rules=[_fraction(below_1=True)]),
        increase=section.number("increase", default.increase, rules=[_greater_than_0]),
        cooldown=section.duration("cooldown", default.cooldown, positive=True),
        min_rate=section.number("min_rate", default.min_rate, rules=[_greater_than_0]),
        window=section.duration("window", default.window, positive=True),
        max_requeues=section.integer("max_requeues", default.max_requeues, rules=[_between(0)]),
        requeue_after=section.duration(
            "requeue_after", default.requeue_after, positive=True, maximum=3600.0
        ),
    )


def _numbers(root: Section, carriers: tuple[CarrierConfig, ...]) -> tuple[NumberConfig, ...]:
    known = list(dict.fromkeys(carrier.name for carrier in carriers if carrier.name))
    numbers: list[NumberConfig] = []
    seen: dict[str, str] = {}
    for item in root.entries("numbers", _NUMBER_KEYS, required=False):
        number = item.string("number", rules=[_E164])
        _unique(item, "number", number, seen)
        carrier = item.string("carrier")
        if carrier and carrier not in known:
            item.problem(
                "carrier",
                f"unknown carrier {_shown(carrier)} (known: {', '.join(known) or 'none'})",
            )
        numbers.append(
            NumberConfig(number=number, carrier=carrier, enabled=item.boolean("enabled", True))
        )
    return tuple(numbers)


def _listeners(root: Section, context: _Context) -> ListenersConfig:
    section = root.section("listeners", tuple(_LISTENER_PORTS))
    listeners = {
        name: _listener(section, name, port, context) for name, port in _LISTENER_PORTS.items()
    }
    used: dict[int, str] = {}
    for name, listener in listeners.items():
        path = f"{section.path_of(name)}.port"
        if listener.port in used:
            section.problem_at(path, f"{listener.port} is already used by {used[listener.port]}")
        else:
            used[listener.port] = path
    return ListenersConfig(**listeners)


def _listener(
    listeners: Section, name: str, default_port: int, context: _Context
) -> ListenerConfig:
    agi = name == "agi"
    section = listeners.section(name, _LISTENER_KEYS + (_AGI_KEYS if agi else ()))
    host = section.string("host", "127.0.0.1")
    port = section.integer("port", default_port, rules=[_PORT])
    allow = section.boolean("allow_non_loopback", False)
    if section.valid("host") and not _is_loopback(host):
        if not _is_host(host):
            section.problem("host", f"{_shown(host)} is not an IP address or host name")
        elif not allow:
            section.problem(
                "host",
                f"{host} is not a loopback address; set "
                f"{section.path_of('allow_non_loopback')}: true to expose it",
            )
    if not agi:
        return ListenerConfig(host=host, port=port, allow_non_loopback=allow)
    secret = ""
    if section.has("secret_file") and section.has("secret_env"):
        section.problem(None, "set only one of secret_file and secret_env, not both")
    elif section.has("secret_file"):
        secret = _secret_from_file(section, context)
    elif section.has("secret_env"):
        secret = _secret_from_env(section, context.env)
    else:
        # Required: without it anything that reaches the FastAGI port could attach calls
        # (docs/security.md). The dialplan passes it in the AGI URL (DIALLER_AGI_SECRET).
        section.problem(
            None,
            "no FastAGI secret; set secret_file (a path) or secret_env (a variable name) — "
            "the dialplan passes it as DIALLER_AGI_SECRET",
        )
    if secret and not _AGI_SECRET.fullmatch(secret):
        # It travels in the AGI URL of the dialplan: URL-safe characters only.
        section.problem(
            "secret_file" if section.has("secret_file") else "secret_env",
            "the AGI secret must be 16 to 128 letters, digits, '-' or '_'",
        )
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for path, text in section.strings("allow"):
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            section.problem_at(path, f"{_shown(text)} is not an IP address or network")
    return ListenerConfig(host, port, allow, secret, tuple(networks))


def _contacts(root: Section) -> ContactsConfig:
    contacts = root.section("contacts", ("default_region",))
    region = contacts.string("default_region", "GB", rules=[_REGION])
    if contacts.valid("default_region") and region not in phonenumbers.SUPPORTED_REGIONS:
        contacts.problem("default_region", f"unknown region {_shown(region)}")
    return ContactsConfig(default_region=region)


def _scheduler(root: Section) -> SchedulerConfig:
    scheduler = root.section(
        "scheduler",
        (
            "stall_after",
            "poll_interval",
            "max_call_length",
            "dial_margin",
            "result_timeout",
            "heartbeat_interval",
            "state_dir",
        ),
    )
    state_dir = scheduler.string("state_dir", "", rules=[_absolute_path])
    return SchedulerConfig(
        stall_after=scheduler.duration("stall_after", 120.0, positive=True),
        poll_interval=scheduler.duration("poll_interval", 1.0, positive=True),
        max_call_length=scheduler.duration("max_call_length", 3600.0, positive=True),
        dial_margin=scheduler.duration("dial_margin", 30.0, positive=True),
        result_timeout=scheduler.duration("result_timeout", 60.0, positive=True),
        heartbeat_interval=scheduler.duration("heartbeat_interval", 5.0, positive=True),
        state_dir=state_dir or None,
    )


def _absolute_path(value: str) -> str | None:
    return None if value.startswith("/") else f"expected an absolute path, got {_shown(value)}"


def _logging(root: Section) -> LoggingConfig:
    logging = root.section("logging", ("level", "format"))
    levels = ("debug", "info", "warning", "error")
    return LoggingConfig(
        level=logging.choice("level", "info", levels),
        format=logging.choice("format", "logfmt", ("logfmt", "json")),
    )
