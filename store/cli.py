"""The store's part of the ``agentflow`` command (entry point ``agentflow.cli``).

Adds ``--db`` / ``--no-store`` to ``agentflow run`` (every run is recorded by default)
and the ``runs``, ``workflows``, ``sql`` and ``keys`` commands. The engine is reached
only through the :class:`engine.cli_plugins.CliContext` handed to :func:`register`.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.errors import StoreError

if TYPE_CHECKING:
    from engine.cli_plugins import CliContext
    from store.store import Store

__all__ = ["CliRunSession", "add_db_option", "open_from_args", "register", "store_command"]


def add_db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        metavar="PATH",
        help="database file (default $AGENTFLOW_HOME/agentflow.duckdb or ~/.agentflow/...)",
    )


def open_from_args(args: argparse.Namespace, *, read_only: bool = False) -> Store:
    from store.store import Store

    return Store(getattr(args, "db", None), read_only=read_only)


def store_command(
    handler: Callable[[argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """Turn store errors into one clear line and exit code 2 (1 for 'not found')."""

    @functools.wraps(handler)
    def wrapped(args: argparse.Namespace) -> int:
        from engine.cli_plugins import CliError
        from store.errors import NotFoundError

        try:
            return handler(args)
        except NotFoundError as exc:
            raise CliError(exc.message, exit_code=1) from None
        except StoreError as exc:
            raise CliError(exc.message, exit_code=2) from None

    return wrapped


def register(cli: CliContext) -> None:
    add_db_option(cli.run_parser)
    models = cli.commands.choices.get("models")
    if models is not None:
        add_db_option(models)
    cli.secrets_factory = _open_secrets
    cli.run_parser.add_argument(
        "--no-store", action="store_true", help="do not record this run in the database"
    )
    cli.add_run_hook(functools.partial(_record_run, cli))
    from store import cli_runs

    cli_runs.register(cli)
    for module_name in ("store.cli_workflows", "store.cli_keys"):
        try:
            module = __import__(module_name, fromlist=["register"])
        except ModuleNotFoundError:
            continue
        module.register(cli)


def _open_secrets(args: argparse.Namespace) -> Any:
    """The stored API keys, read-only; None when there is no database yet."""
    from store.db import default_db_path

    path = Path(args.db).expanduser() if getattr(args, "db", None) else default_db_path()
    if not path.exists():
        return None
    return open_from_args(args, read_only=True).secret_source


def _record_run(
    cli: CliContext,
    args: argparse.Namespace,
    compiled: Any,
    inputs: dict[str, Any],
    source: str | None,
) -> Any:
    if getattr(args, "no_store", False):
        return None
    from engine.cli_plugins import CliError

    try:
        store = open_from_args(args)
    except StoreError as exc:
        raise CliError(exc.message, exit_code=2) from None
    definition = compiled.definition
    if source and source != "-" and Path(source).is_file():
        workflow = store.workflows.upsert_file(Path(source), definition)
    else:
        workflow = store.workflows.create(definition, name="stdin workflow")
    session = CliRunSession(store, workflow_id=workflow.id, workflow_version=workflow.version)
    if store.interrupted:
        print(
            f"agentflow: {len(store.interrupted)} run(s) left by a dead process marked "
            f"interrupted (agentflow runs resume ID): {', '.join(store.interrupted[:3])}",
            file=sys.stderr,
        )
    return session


class CliRunSession:
    """The store's part in one ``agentflow run``: records it, durable before exit."""

    def __init__(
        self,
        store: Store,
        *,
        workflow_id: str,
        workflow_version: int | None,
        execution_id: str | None = None,
        reuse_outputs: dict[str, Any] | None = None,
    ) -> None:
        from engine.services import RunServices
        from store.recorder import RunMeta

        self.store = store
        self.execution_id = execution_id
        self.reuse_outputs = reuse_outputs or {}
        self.services = RunServices(
            cache=store.cache, workflows=store.workflows, secrets=store.secret_source
        )
        self._listener = store.recorder.listener(
            RunMeta(
                workflow_id=workflow_id,
                workflow_version=workflow_version,
                resumed=execution_id is not None,
            )
        )

    def on_event(self, event: Any) -> None:
        self._listener(event)

    def finish(self, result: Any, error: BaseException | None) -> None:
        try:
            self.store.recorder.flush()
        finally:
            self.store.close()
