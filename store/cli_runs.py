"""``agentflow runs list|show|resume|delete|export``: run history from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.cli import add_db_option, open_from_args, store_command

if TYPE_CHECKING:
    from engine.cli_plugins import CliContext
    from store.executions import ExecutionRecord

__all__ = ["register"]

STATUSES = ("running", "succeeded", "failed", "cancelled", "interrupted")


def register(cli: CliContext) -> None:
    runs = cli.add_command("runs", "recorded runs: list, show, resume, delete, export")
    actions = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="recent runs, newest first")
    listing.add_argument("--workflow", metavar="ID", help="only runs of this workflow")
    listing.add_argument("--status", choices=STATUSES, help="only runs with this status")
    listing.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (20)")
    listing.add_argument("--json", action="store_true", help="a JSON array of run summaries")
    add_db_option(listing)
    listing.set_defaults(handler=store_command(_list))

    show = actions.add_parser("show", help="one run with every node's attempts")
    show.add_argument("execution_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="the run as one JSON object")
    add_db_option(show)
    show.set_defaults(handler=store_command(_show))

    resume = actions.add_parser(
        "resume", help="continue an interrupted or failed run; finished nodes are not re-run"
    )
    resume.add_argument("execution_id", metavar="ID")
    resume.add_argument("--json", action="store_true", help="print one JSON result object")
    add_db_option(resume)
    resume.set_defaults(handler=store_command(lambda args: _resume(cli, args)))

    delete = actions.add_parser("delete", help="delete a finished run and its node runs")
    delete.add_argument("execution_id", metavar="ID")
    add_db_option(delete)
    delete.set_defaults(handler=store_command(_delete))

    export = actions.add_parser("export", help="write runs and node runs to Parquet or JSON")
    export.add_argument("--format", choices=("parquet", "json"), required=True)
    export.add_argument("--out", required=True, metavar="PATH")
    export.add_argument("--workflow", metavar="ID", help="only runs of this workflow")
    export.add_argument("--overwrite", action="store_true", help="replace an existing file")
    add_db_option(export)
    export.set_defaults(handler=store_command(_export))


def _list(args: argparse.Namespace) -> int:
    if args.limit < 1:
        from engine.cli_plugins import CliError

        raise CliError("--limit must be at least 1")
    with open_from_args(args) as store:
        records = store.executions.list(
            workflow_id=args.workflow, status=args.status, limit=args.limit
        )
    if args.json:
        print(json.dumps([record.summary() for record in records], ensure_ascii=False))
        return 0
    if not records:
        print("no runs recorded", file=sys.stderr)
        return 0
    print(f"{'ID':<36}  {'STATUS':<11}  {'WORKFLOW':<24}  {'STARTED':<19}  {'MS':>8}  TOKENS")
    for record in records:
        started = record.started_at.strftime("%Y-%m-%d %H:%M:%S") if record.started_at else ""
        name = (record.workflow_name or record.workflow_id)[:24]
        tokens = (
            (record.token_usage or {}).get("total", 0)
            if isinstance(record.token_usage, dict)
            else 0
        )
        duration = "" if record.duration_ms is None else str(record.duration_ms)
        print(
            f"{record.id:<36}  {record.status:<11}  {name:<24}  {started:<19}  {duration:>8}"
            f"  {tokens}"
        )
    return 0


def _show(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        record = store.executions.get(args.execution_id)
    if args.json:
        print(json.dumps(record.to_dict(), ensure_ascii=False, default=str))
        return 0
    _print_record(record)
    return 0


def _print_record(record: ExecutionRecord) -> None:
    print(f"run       {record.id}")
    print(
        f"workflow  {record.workflow_name or ''} ({record.workflow_id}, "
        f"version {record.workflow_version})"
    )
    print(
        f"status    {record.status}"
        + (f" - {record.error_message}" if record.error_message else "")
    )
    print(
        f"duration  {record.duration_ms} ms   tokens {record.token_usage}   "
        f"cost ${record.cost_usd:.6f}"
    )
    print(f"inputs    {json.dumps(record.inputs, ensure_ascii=False, default=str)}")
    print()
    print(f"{'NODE':<20} {'TYPE':<11} {'STATUS':<10} {'TRY':>3} {'MS':>9} {'TOKENS':>6}  ERROR")
    for run in record.node_runs:
        duration = "" if run.duration_ms is None else f"{run.duration_ms:.1f}"
        error = (run.error or {}).get("message", "") if isinstance(run.error, dict) else ""
        print(
            f"{run.node_id:<20} {run.node_type:<11} {run.status:<10} {run.attempt:>3} "
            f"{duration:>9} {run.tokens:>6}  {error}"
        )
    print()
    print(json.dumps(record.outputs, indent=2, ensure_ascii=False, default=str))


def _resume(cli: CliContext, args: argparse.Namespace) -> int:
    from engine.cli_plugins import CliError
    from store.cli import CliRunSession
    from store.executions import LIVE_STATUSES

    store = open_from_args(args)
    try:
        record = store.executions.get(args.execution_id, with_node_runs=False)
        if record.status == "succeeded":
            raise CliError(f"run '{record.id}' already succeeded; nothing to resume")
        if record.status in LIVE_STATUSES:
            raise CliError(f"run '{record.id}' is still {record.status} in this process")
        if record.workflow_version is not None:
            definition = store.workflows.get_version(
                record.workflow_id, record.workflow_version
            ).definition
        else:
            definition = store.workflows.get(record.workflow_id, include_deleted=True).definition
        compiled = cli.compile(definition)
        reuse = store.executions.completed_outputs(record.id)
        inputs: dict[str, Any] = record.inputs if isinstance(record.inputs, dict) else {}
    except BaseException:
        store.close()
        raise
    print(
        f"resuming {record.id}: {len(reuse)} finished node(s) kept: "
        f"{', '.join(sorted(reuse)) or '-'}",
        file=sys.stderr,
    )
    session = CliRunSession(
        store,
        workflow_id=record.workflow_id,
        workflow_version=record.workflow_version,
        execution_id=record.id,
        reuse_outputs=reuse,
    )
    result = cli.execute(
        compiled, inputs, live=not args.json, sessions=[session], workflow_id=record.workflow_id
    )
    return cli.report(result, as_json=args.json)


def _delete(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        store.executions.delete(args.execution_id)
    print(f"deleted {args.execution_id}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from store.export import export_executions

    with open_from_args(args) as store:
        count = export_executions(
            store,
            fmt=args.format,
            out=Path(args.out),
            workflow_id=args.workflow,
            overwrite=args.overwrite,
        )
    print(f"exported {count} run(s) to {args.out}")
    return 0
