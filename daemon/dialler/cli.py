"""The `dialler` command line: parses arguments and dispatches to `dialler.commands.*`.

Conventions (CONTRACT.md): results on stdout, messages on stderr; exit 0 success, 1 operational
failure, 2 invalid input or refused request.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from .commands.paths import DEFAULT_CONFIG, config_path
from .errors import DiallerError

__all__ = ["DEFAULT_CONFIG", "build_parser", "config_path", "main"]

# command path -> "module:function"; modules are imported lazily so that `dialler lab up`
# does not pay for asyncpg and friends, and a broken optional part never breaks the rest.
Handler = Callable[[argparse.Namespace], int]


def _add(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, target: str, help_text: str
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(target=target)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dialler", description=__doc__)
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"config file (default: $DIALLER_CONFIG, then {DEFAULT_CONFIG})",
    )
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    cfg = top.add_parser("config", help="configuration file tools").add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", required=True
    )
    check = _add(
        cfg,
        "check",
        "dialler.commands.config_cmd:check",
        "validate a config file; print every problem with its key path",
    )
    check.add_argument("file", metavar="FILE")

    db = top.add_parser("db", help="database schema").add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", required=True
    )
    _add(
        db,
        "migrate",
        "dialler.commands.db_cmd:migrate",
        "apply pending schema migrations (idempotent, safe to run concurrently)",
    )

    lab = top.add_parser(
        "lab", help="the local lab: PostgreSQL, Asterisk 22, SIPp carrier"
    ).add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
    for name, text in (
        ("up", "start the lab (idempotent); prints the lab config path last"),
        ("status", "what is up, on which ports, Asterisk version"),
        ("down", "stop everything the lab started"),
        ("calls", "calls the lab carrier received since `lab up`"),
    ):
        p = _add(lab, name, f"dialler.commands.lab_cmd:{name}", text)
        p.add_argument(
            "--state-dir", default=None, help="lab state directory (default /var/lib/dialler-lab)"
        )
        if name in ("status", "calls"):
            p.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "up":
            p.add_argument(
                "--asterisk-servers",
                type=int,
                default=1,
                metavar="N",
                help="run N Asterisk servers (lab, lab-2, ...), starting or stopping servers "
                "to match (default 1)",
            )

    _add(top, "run", "dialler.app:run", "run the daemon: dial running campaigns until stopped")

    bot = top.add_parser("bot", help="bots").add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", required=True
    )
    _add(
        bot, "create", "dialler.commands.bot_cmd:create", "create a bot from a YAML/JSON file"
    ).add_argument("file", metavar="FILE")
    _add(bot, "list", "dialler.commands.bot_cmd:list_bots", "list bots")
    bshow = _add(bot, "show", "dialler.commands.bot_cmd:show", "a bot's prompt and pipeline")
    bshow.add_argument("name", metavar="NAME")
    bshow.add_argument("--json", action="store_true", help="machine-readable output")
    bedit = _add(
        bot, "edit", "dialler.commands.bot_cmd:edit", "replace a bot from a YAML/JSON file"
    )
    bedit.add_argument("name", metavar="NAME")
    bedit.add_argument("file", metavar="FILE")

    fleet = top.add_parser("fleet", help="the bot workers").add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", required=True
    )
    _add(
        fleet,
        "list",
        "dialler.commands.fleet_cmd:list_fleet",
        "workers: capacity, in use, free, heartbeat age, rotation",
    ).add_argument("--json", action="store_true", help="machine-readable output")

    camp = top.add_parser("campaign", help="campaigns").add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", required=True
    )
    _add(
        camp,
        "create",
        "dialler.commands.campaign_cmd:create",
        "store a draft campaign from a YAML/JSON file; prints its id",
    ).add_argument("file", metavar="FILE")
    edit = _add(
        camp,
        "edit",
        "dialler.commands.campaign_cmd:edit",
        "replace a draft or paused campaign's settings from a file",
    )
    edit.add_argument("campaign", metavar="ID")
    edit.add_argument("file", metavar="FILE")
    _add(camp, "list", "dialler.commands.campaign_cmd:list_campaigns", "list campaigns")
    show = _add(
        camp, "show", "dialler.commands.show_cmd:show", "live activity and stats of a campaign"
    )
    show.add_argument("campaign", metavar="ID")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    for name, text in (
        ("start", "validate and start a draft campaign"),
        ("pause", "stop new dials; live calls finish"),
        ("resume", "resume a paused campaign"),
        ("cancel", "no new dials; waiting contacts cancelled"),
    ):
        _add(camp, name, f"dialler.commands.campaign_cmd:{name}", text).add_argument(
            "campaign", metavar="ID"
        )

    num = top.add_parser("number", help="caller IDs of the pool").add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", required=True
    )
    for name, text in (
        ("disable", "take a caller ID out of rotation"),
        ("enable", "put a caller ID back into rotation"),
    ):
        _add(num, name, f"dialler.commands.number_cmd:{name}", text).add_argument(
            "number", metavar="NUMBER"
        )
    nswap = _add(
        num,
        "swap",
        "dialler.commands.number_cmd:swap",
        "replace a caller ID by another in every draft, running or paused campaign",
    )
    nswap.add_argument("old", metavar="OLD")
    nswap.add_argument("new", metavar="NEW")
    _add(
        num,
        "list",
        "dialler.commands.number_cmd:list_numbers",
        "caller IDs: carrier, enabled, the last hour's calls and SIP shares",
    ).add_argument("--json", action="store_true", help="machine-readable output")

    con = top.add_parser("contacts", help="contacts of a campaign").add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", required=True
    )
    imp = _add(
        con,
        "import",
        "dialler.commands.contacts_cmd:import_csv",
        "import a contacts CSV (valid rows land atomically; bad rows to --errors)",
    )
    imp.add_argument("campaign", metavar="ID")
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--errors", metavar="FILE", help="rejected rows (default FILE.errors.csv)")
    add = _add(con, "add", "dialler.commands.contacts_cmd:add", "add one contact")
    add.add_argument("campaign", metavar="ID")
    add.add_argument("--phone", required=True, metavar="N")
    add.add_argument(
        "--var", action="append", default=[], metavar="K=V", help="a variable (repeatable)"
    )
    cancel = _add(
        con, "cancel", "dialler.commands.contacts_cmd:cancel", "cancel a contact's remaining dials"
    )
    cancel.add_argument("campaign", metavar="ID")
    cancel.add_argument("--phone", required=True, metavar="N")

    calls = _add(
        top,
        "calls",
        "dialler.commands.show_cmd:calls",
        "contacts of a campaign with state and attempts/max",
    )
    calls.add_argument("campaign", metavar="ID")
    calls.add_argument("--json", action="store_true", help="machine-readable output")

    rep = top.add_parser("report", help="reports").add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", required=True
    )
    att = _add(
        rep,
        "attempts",
        "dialler.commands.report_cmd:attempts",
        "attempt report (CSV) of a campaign",
    )
    att.add_argument("campaign", metavar="ID")
    att.add_argument("-o", "--output", metavar="FILE", help="write here (default stdout)")

    worker = _add(
        top,
        "worker",
        "dialler.commands.worker_cmd:worker",
        "run the reference bot worker (AudioSocket)",
    )
    from .commands.worker_cmd import add_arguments as worker_arguments  # cheap: no aiohttp

    worker_arguments(worker)

    tri = _add(
        top,
        "triage",
        "dialler.commands.triage_cmd:triage",
        "walk the triage guide for a campaign: checks, fixes, when to escalate",
    )
    tri.add_argument("campaign", metavar="ID")
    tri.add_argument("--json", action="store_true", help="machine-readable output")

    sup = top.add_parser("suppress", help="the do-not-call list").add_subparsers(
        dest="subcommand", metavar="SUBCOMMAND", required=True
    )
    sadd = _add(
        sup,
        "add",
        "dialler.commands.suppress_cmd:add",
        "never dial this number again, from any campaign",
    )
    sadd.add_argument("number", metavar="NUMBER")
    sadd.add_argument("--reason", help="why (kept with the entry)")
    _add(
        sup,
        "remove",
        "dialler.commands.suppress_cmd:remove",
        "take a number off the do-not-call list",
    ).add_argument("number", metavar="NUMBER")
    _add(sup, "list", "dialler.commands.suppress_cmd:list_numbers", "the do-not-call list")

    test = _add(
        top,
        "test-call",
        "dialler.commands.testcall_cmd:test_call",
        "one call outside any campaign through the running daemon, stage by stage",
    )
    test.add_argument("--bot", required=True, help="the bot to test")
    test.add_argument("--to", required=True, metavar="NUMBER", help="the number to call")
    test.add_argument(
        "--from",
        dest="caller_id",
        metavar="NUMBER",
        help="caller ID (default: the first enabled one of the config)",
    )

    _add(top, "demo", "dialler.demo:demo", "bring the lab up and show the dialler at work on it")
    return parser


def _resolve(target: str) -> Handler:
    module_name, _, func = target.partition(":")
    handler: Handler = getattr(importlib.import_module(module_name), func)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dialler` console script."""
    args = build_parser().parse_args(argv)
    try:
        return _resolve(args.target)(args)
    except DiallerError as exc:
        print(f"dialler: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`dialler report attempts ID | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
