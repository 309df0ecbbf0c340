"""``agentflow studio``: serve the dashboard on the embedded DuckDB store."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.cli_plugins import CliContext

__all__ = ["register"]

DEFAULT_PORT = 5006
DEFAULT_HOST = "127.0.0.1"


def register(cli: CliContext) -> None:
    parser = cli.add_command("studio", "serve the AgentFlow studio (Panel) on this machine")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT})")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address ({DEFAULT_HOST})")
    parser.add_argument("--db", metavar="PATH", help="database file (default ~/.agentflow/...)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument(
        "--no-examples", action="store_true", help="do not load the example workflows"
    )
    parser.set_defaults(handler=_studio)


def _studio(args: argparse.Namespace) -> int:
    from engine.cli_plugins import CliError
    from store import Store, StoreError

    if not 0 < args.port < 65536:
        raise CliError(f"--port must be 1..65535, got {args.port}")
    try:
        store = Store(args.db)
    except StoreError as exc:
        raise CliError(exc.message) from None
    from studio.server import serve

    try:
        serve(
            store,
            host=args.host,
            port=args.port,
            open_browser=not args.no_browser,
            load_examples=not args.no_examples,
        )
    finally:
        store.close()
    return 0
