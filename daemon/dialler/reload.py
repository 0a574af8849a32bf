"""SIGHUP: re-read the config file, and say what changes, what cannot, and why.

`reload_config` is pure (it reads the file, nothing else): the daemon applies what it returns.
A reload is all or nothing, so the running settings always match one version of the file:

- the new file is invalid → the current config stays; the problems name their keys;
- it changes a setting only a restart can apply (`database`, `asterisk`, `listeners`: the pool,
  the AMI connections and the bound sockets are made once, at start; `scheduler.state_dir`:
  the results journal is opened and locked at start) → the current config stays, and each
  such change is named;
- otherwise → the new config, with one line per change (carriers' limits, numbers, fleet
  workers, scheduler timings, logging, api tokens, contacts all apply live).

Secret values (the DSN, the AMI secret, api tokens) are never shown: only "changed".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields, is_dataclass

from .config import Config, load_config
from .errors import ConfigError

__all__ = ["RESTART_ONLY", "describe_changes", "reload_config"]

#: Settings (a section or one key, and everything under it) whose changes need a restart: the
#: database pool, the AMI connections and the listeners' sockets are set up once, at start, and
#: the results journal's directory is opened and locked then.
RESTART_ONLY = frozenset({"database", "asterisk", "listeners", "scheduler.state_dir"})

# Entries of a list are matched by these fields, so a reordered list is not a change of each.
_KEY_FIELDS = ("name", "number")


def reload_config(
    path: str, current: Config, env: Mapping[str, str] | None = None
) -> tuple[Config, list[str]]:
    """Re-read and validate the config at `path` against the running `current` one.

    Returns ``(config, messages)``:

    - ``config is current`` and messages: the reload is refused; the messages say why (each
      names its key): the file is invalid, or it changes a setting that needs a restart;
    - ``config is current`` and no messages: nothing changed;
    - otherwise: apply ``config``; the messages describe each change.

    `env` is where `secret_env` variables are looked up (default: `os.environ`).
    """
    try:
        new = load_config(path, env)
    except ConfigError as exc:
        return current, list(exc.problems)
    live, restart = describe_changes(current, new)
    if restart:
        refused = [f"{change} (needs a restart)" for change in restart]
        if live:
            refused.append("so these were not applied either: " + "; ".join(live))
        return current, refused
    if not live:
        return current, []
    return new, live


def describe_changes(old: Config, new: Config) -> tuple[list[str], list[str]]:
    """The changes from `old` to `new` as ``(live, restart_only)`` lists of lines such as
    ``carriers[lab].max_channels: 100 → 50`` or ``fleet.workers[w2]: added``."""
    live: list[str] = []
    restart: list[str] = []
    for section in fields(Config):
        found = _diff(
            getattr(old, section.name),
            getattr(new, section.name),
            section.name,
            secret=not section.repr,
        )
        for path, change in found:
            (restart if _needs_restart(path) else live).append(change)
    return live, restart


def _needs_restart(path: str) -> bool:
    """Is the setting at `path` (``asterisk[pbx1].ami.host``) one of `RESTART_ONLY` or under
    one?"""
    return any(path == key or path.startswith((f"{key}.", f"{key}[")) for key in RESTART_ONLY)


#: One change: the path of the setting that changed, and the line that says how.
Change = tuple[str, str]


def _diff(old: object, new: object, path: str, *, secret: bool = False) -> list[Change]:
    if old == new:
        return []
    if secret:  # a field kept out of the repr holds a secret: say that it changed, no more
        return [(path, f"{path}: changed")]
    if is_dataclass(old) and not isinstance(old, type) and type(old) is type(new):
        changes: list[Change] = []
        for item in fields(old):
            changes += _diff(
                getattr(old, item.name),
                getattr(new, item.name),
                f"{path}.{item.name}",
                secret=not item.repr,
            )
        return changes
    if isinstance(old, tuple) and isinstance(new, tuple) and _keyed(old) and _keyed(new):
        return _diff_entries(old, new, path)
    return [(path, f"{path}: {_show(old)} → {_show(new)}")]


def _keyed(items: Sequence[object]) -> bool:
    return all(is_dataclass(item) and _key(item) is not None for item in items)


def _key(item: object) -> str | None:
    for name in _KEY_FIELDS:
        value = getattr(item, name, None)
        if isinstance(value, str):
            return value
    return None


def _diff_entries(old: Sequence[object], new: Sequence[object], path: str) -> list[Change]:
    before = {_key(item): item for item in old}
    after = {_key(item): item for item in new}
    changes: list[Change] = []
    for key, item in before.items():
        entry = f"{path}[{key}]"
        if key in after:
            changes += _diff(item, after[key], entry)
        else:
            changes.append((entry, f"{entry}: removed"))
    changes += [(f"{path}[{k}]", f"{path}[{k}]: added") for k in after if k not in before]
    if not changes:  # same entries, another order
        changes.append((path, f"{path}: order changed"))
    return changes


def _show(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(item) for item in value) + "]"
    return str(value)
