"""``agentflow keys set|list|delete|rotate``: encrypted provider API keys.

Values are read from stdin (a hidden prompt on a terminal), never from the command
line, where they would land in shell history and ``ps``; output shows masks only.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import TYPE_CHECKING

from store.cli import add_db_option, open_from_args, store_command

if TYPE_CHECKING:
    from engine.cli_plugins import CliContext

__all__ = ["register"]


def register(cli: CliContext) -> None:
    keys = cli.add_command("keys", "provider API keys, encrypted in the database")
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    setter = actions.add_parser("set", help="store a key; the value is read from stdin")
    setter.add_argument("name", metavar="NAME", help="e.g. OPENAI_API_KEY")
    add_db_option(setter)
    setter.set_defaults(handler=store_command(_set))

    listing = actions.add_parser("list", help="names and masked values")
    listing.add_argument("--json", action="store_true", help="a JSON array")
    add_db_option(listing)
    listing.set_defaults(handler=store_command(_list))

    delete = actions.add_parser("delete", help="remove a key (exit 1 when there is none)")
    delete.add_argument("name", metavar="NAME")
    add_db_option(delete)
    delete.set_defaults(handler=store_command(_delete))

    rotate = actions.add_parser("rotate", help="re-encrypt every key under a new master key")
    rotate.add_argument(
        "--new-key-stdin",
        action="store_true",
        help="read the new master key (base64 or hex of 32 bytes) from stdin "
        "instead of generating one",
    )
    add_db_option(rotate)
    rotate.set_defaults(handler=store_command(_rotate))


def _read_value(name: str) -> str:
    from engine.cli_plugins import CliError

    if sys.stdin.isatty():
        value = getpass.getpass(f"value for {name}: ")
    else:
        value = sys.stdin.read()
        # One trailing newline is what `echo` and editors add, not part of the key.
        if value.endswith("\r\n"):
            value = value[:-2]
        elif value.endswith("\n"):
            value = value[:-1]
    if not value:
        raise CliError(f"no value for {name} on stdin (pipe it in: ... | agentflow keys set NAME)")
    return value


def _set(args: argparse.Namespace) -> int:
    from store.secrets import check_name, mask

    name = check_name(args.name)
    value = _read_value(name)
    with open_from_args(args) as store:
        store.secrets.set(name, value)
    print(f"stored {name} ({mask(value)})")
    return 0


def _list(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        infos = store.secrets.list()
    if args.json:
        document = [
            {"name": info.name, "masked": info.masked, "updatedAt": info.updated_at.isoformat()}
            for info in infos
        ]
        print(json.dumps(document, ensure_ascii=False))
        return 0
    if not infos:
        print("no keys stored", file=sys.stderr)
        return 0
    width = max(len("NAME"), *(len(info.name) for info in infos))
    print(f"{'NAME':<{width}}  {'VALUE':<12}  UPDATED")
    for info in infos:
        updated = info.updated_at.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{info.name:<{width}}  {info.masked:<12}  {updated}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    from store.secrets import check_name

    name = check_name(args.name)
    with open_from_args(args) as store:
        store.secrets.delete(name)
    print(f"deleted {name}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    from store.secrets import ENV_VAR, parse_key

    new_key = parse_key(sys.stdin.read(), "the new key on stdin") if args.new_key_stdin else None
    with open_from_args(args) as store:
        result = store.secrets.rotate(new_key)
    print(
        f"re-encrypted {result.count} key(s): master key {result.old_key_id} -> {result.new_key_id}"
    )
    if result.source == "env":
        target = (
            f"the contents of {result.staged_key_file}, then delete that file"
            if result.staged_key_file
            else "the new key you passed in"
        )
        print(f"agentflow: {ENV_VAR} still holds the old key: set it to {target}", file=sys.stderr)
    return 0
