"""``agentflow workflows|agents|sql``: stored workflows, published agents and ad-hoc SQL.

Exit codes follow the CLI's contract: 0 done, 1 no such workflow/agent or a query that
DuckDB refuses, 2 bad usage, an unreadable or invalid document, or an unusable database.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from store.cli import add_db_option, open_from_args, store_command

if TYPE_CHECKING:
    from engine.cli_plugins import CliContext
    from store.agents import AgentRecord
    from store.workflows import WorkflowRecord

__all__ = ["register"]

_CELL_WIDTH = 60
_REFUSED_WRITE = re.compile(r'Cannot execute statement of type "([A-Z_ ]+)"')


def register(cli: CliContext) -> None:
    _register_workflows(cli)
    _register_agents(cli)
    sql = cli.add_command("sql", "run a read-only SQL query over the store")
    sql.add_argument("query", metavar="QUERY", help='e.g. "SELECT status, count(*) ..."')
    sql.add_argument("--json", action="store_true", help="a JSON array of row objects")
    add_db_option(sql)
    sql.set_defaults(handler=store_command(_sql))


def _register_workflows(cli: CliContext) -> None:
    workflows = cli.add_command(
        "workflows", "stored workflows: list, show, import, export, delete, restore"
    )
    actions = workflows.add_subparsers(dest="workflows_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="stored workflows, recently changed first")
    listing.add_argument("--search", metavar="S", help="only names or descriptions containing S")
    listing.add_argument("--all", action="store_true", help="include deleted workflows")
    listing.add_argument("--json", action="store_true", help="a JSON array of summaries")
    add_db_option(listing)
    listing.set_defaults(handler=store_command(_wf_list))

    show = actions.add_parser("show", help="one workflow (deleted ones too)")
    show.add_argument("workflow_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="summary and definition as JSON")
    show.add_argument("--versions", action="store_true", help="also list every saved version")
    add_db_option(show)
    show.set_defaults(handler=store_command(_wf_show))

    imp = actions.add_parser("import", help="store a workflow JSON file; prints its new id")
    imp.add_argument("file", metavar="FILE", help="workflow JSON file ('-' for stdin)")
    imp.add_argument("--name", metavar="N", help="its name (default: metadata or file name)")
    add_db_option(imp)
    imp.set_defaults(handler=store_command(_wf_import))

    export = actions.add_parser("export", help="the canonical definition JSON")
    export.add_argument("workflow_id", metavar="ID")
    export.add_argument("--version", type=int, metavar="N", help="a saved version (default latest)")
    export.add_argument("--out", metavar="PATH", help="write to PATH instead of stdout")
    export.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_db_option(export)
    export.set_defaults(handler=store_command(_wf_export))

    delete = actions.add_parser("delete", help="hide a workflow; its versions and runs are kept")
    delete.add_argument("workflow_id", metavar="ID")
    add_db_option(delete)
    delete.set_defaults(handler=store_command(_wf_delete))

    restore = actions.add_parser("restore", help="bring back a deleted workflow")
    restore.add_argument("workflow_id", metavar="ID")
    add_db_option(restore)
    restore.set_defaults(handler=store_command(_wf_restore))


def _register_agents(cli: CliContext) -> None:
    agents = cli.add_command(
        "agents", "published agents: list, show, publish, unpublish, categories"
    )
    actions = agents.add_subparsers(dest="agents_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="published agents, most used first")
    listing.add_argument("--category", metavar="C", help="only this category")
    listing.add_argument("--search", metavar="S", help="name, slug, description or tag contains S")
    listing.add_argument("--all", action="store_true", help="include unpublished agents")
    listing.add_argument("--json", action="store_true", help="a JSON array of summaries")
    add_db_option(listing)
    listing.set_defaults(handler=store_command(_agent_list))

    show = actions.add_parser("show", help="one agent")
    show.add_argument("slug", metavar="SLUG")
    show.add_argument("--json", action="store_true", help="the agent as JSON")
    add_db_option(show)
    show.set_defaults(handler=store_command(_agent_show))

    publish = actions.add_parser("publish", help="publish a workflow as an agent; prints its slug")
    publish.add_argument("workflow_id", metavar="WORKFLOW_ID")
    publish.add_argument("--slug", required=True, help="unique, a-z 0-9 and '-'")
    publish.add_argument("--name", required=True)
    publish.add_argument("--description")
    publish.add_argument("--category")
    publish.add_argument("--tag", action="append", default=[], help="a tag (repeatable)")
    publish.add_argument("--icon")
    add_db_option(publish)
    publish.set_defaults(handler=store_command(_agent_publish))

    unpublish = actions.add_parser("unpublish", help="take an agent off the list")
    unpublish.add_argument("slug", metavar="SLUG")
    add_db_option(unpublish)
    unpublish.set_defaults(handler=store_command(_agent_unpublish))

    categories = actions.add_parser("categories", help="categories with their agent counts")
    categories.add_argument("--json", action="store_true", help="a JSON object")
    add_db_option(categories)
    categories.set_defaults(handler=store_command(_agent_categories))


# -- workflows -----------------------------------------------------------------------
def _wf_list(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        records = store.workflows.list(search=args.search, include_deleted=args.all)
    if args.json:
        print(json.dumps([record.summary() for record in records], ensure_ascii=False))
        return 0
    if not records:
        print("no workflows", file=sys.stderr)
        return 0
    rows = [
        [
            record.id,
            record.name + (" (deleted)" if record.deleted_at else ""),
            str(record.version),
            str(record.run_count),
            record.last_run_status or "-",
            record.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        ]
        for record in records
    ]
    _print_table(["ID", "NAME", "VERSION", "RUNS", "LAST RUN", "UPDATED"], rows, right={2, 3})
    return 0


def _wf_show(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        record = store.workflows.get(args.workflow_id, include_deleted=True)
        versions = store.workflows.versions(args.workflow_id) if args.versions else []
    if args.json:
        document = {**record.summary(), "definition": record.definition.to_dict()}
        if args.versions:
            document["versions"] = [
                {"version": v.version, "message": v.message, "createdAt": v.created_at.isoformat()}
                for v in versions
            ]
        print(json.dumps(document, ensure_ascii=False, indent=2))
        return 0
    _print_workflow(record)
    if args.versions:
        print("Versions:")
        for v in versions:
            stamp = v.created_at.strftime("%Y-%m-%d %H:%M:%S")
            print(f"  v{v.version:<5} {stamp}  {v.message or ''}".rstrip())
    return 0


def _print_workflow(record: WorkflowRecord) -> None:
    nodes = record.definition.nodes
    kinds = ", ".join(sorted({node.type for node in nodes})) or "-"
    fields = [
        ("Name", record.name),
        ("ID", record.id),
        ("Version", str(record.version)),
        ("Status", record.status),
        ("Runs", f"{record.run_count} (last: {record.last_run_status or '-'})"),
        ("Updated", record.updated_at.isoformat(sep=" ", timespec="seconds")),
        ("Nodes", f"{len(nodes)} ({kinds})"),
        ("Edges", str(len(record.definition.edges))),
    ]
    if record.description:
        fields.insert(1, ("Description", record.description))
    if record.deleted_at:
        fields.append(("Deleted", record.deleted_at.isoformat(sep=" ", timespec="seconds")))
    for label, value in fields:
        print(f"{label + ':':<13}{value}")


def _wf_import(args: argparse.Namespace) -> int:
    from engine.cli_plugins import CliError

    if args.file == "-":
        text, source = sys.stdin.read(), "<stdin>"
    else:
        path = Path(args.file)
        if not path.is_file():
            raise CliError(f"{args.file}: no such file")
        try:
            text, source = path.read_text(encoding="utf-8"), args.file
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"{args.file}: cannot read: {exc}") from None
    with open_from_args(args) as store:
        record = store.workflows.import_json(text, name=args.name, source=source)
    print(record.id)
    return 0


def _wf_export(args: argparse.Namespace) -> int:
    from engine.cli_plugins import CliError

    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not args.overwrite:
        raise CliError(f"{out} exists; replace it with --overwrite")
    with open_from_args(args) as store:
        text = store.workflows.export_json(args.workflow_id, version=args.version) + "\n"
    if out is None:
        sys.stdout.write(text)
        return 0
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{out}: cannot write: {exc.strerror or exc}") from None
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _wf_delete(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        store.workflows.delete(args.workflow_id)
    print(f"deleted {args.workflow_id} (agentflow workflows restore {args.workflow_id} undoes it)")
    return 0


def _wf_restore(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        store.workflows.restore(args.workflow_id)
    print(f"restored {args.workflow_id}")
    return 0


# -- agents ---------------------------------------------------------------------------
def _agent_list(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        agents = store.agents.list(
            category=args.category, search=args.search, include_unpublished=args.all
        )
    if args.json:
        print(json.dumps([agent.summary() for agent in agents], ensure_ascii=False))
        return 0
    if not agents:
        print("no agents", file=sys.stderr)
        return 0
    rows = [
        [
            agent.slug,
            agent.name + ("" if agent.status == "published" else f" ({agent.status})"),
            agent.category or "-",
            str(agent.use_count),
            agent.workflow_id,
        ]
        for agent in agents
    ]
    _print_table(["SLUG", "NAME", "CATEGORY", "USES", "WORKFLOW"], rows, right={3})
    return 0


def _agent_show(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        agent = store.agents.get_by_slug(args.slug)
    if args.json:
        print(json.dumps(agent.summary(), ensure_ascii=False, indent=2))
        return 0
    _print_agent(agent)
    return 0


def _print_agent(agent: AgentRecord) -> None:
    published = (
        agent.published_at.isoformat(sep=" ", timespec="seconds") if agent.published_at else "-"
    )
    fields = [
        ("Name", agent.name),
        ("Slug", agent.slug),
        ("Status", agent.status),
        ("Workflow", f"{agent.workflow_name} ({agent.workflow_id})"),
        ("Category", agent.category or "-"),
        ("Tags", ", ".join(agent.tags) or "-"),
        ("Uses", str(agent.use_count)),
        ("Published", published),
    ]
    if agent.description:
        fields.insert(1, ("Description", agent.description))
    for label, value in fields:
        print(f"{label + ':':<13}{value}")


def _agent_publish(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        agent = store.agents.publish(
            args.workflow_id,
            name=args.name,
            slug=args.slug,
            description=args.description,
            category=args.category,
            tags=args.tag,
            icon=args.icon,
        )
    print(agent.slug)
    return 0


def _agent_unpublish(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        store.agents.unpublish(args.slug)
    print(f"unpublished {args.slug}")
    return 0


def _agent_categories(args: argparse.Namespace) -> int:
    with open_from_args(args) as store:
        categories = store.agents.categories()
    if args.json:
        print(json.dumps(dict(categories), ensure_ascii=False))
        return 0
    _print_table(["CATEGORY", "AGENTS"], [[name, str(n)] for name, n in categories], right={1})
    return 0


# -- sql ------------------------------------------------------------------------------
def _sql(args: argparse.Namespace) -> int:
    import duckdb

    from engine.cli_plugins import CliError

    with open_from_args(args, read_only=True) as store:
        # The file is read-only; this also keeps the query from reading or writing other
        # files (COPY TO, read_csv, ATTACH) — the command is SQL over the store only.
        store.db.execute("SET enable_external_access = false")
        try:
            with store.db.transaction() as connection:
                cursor = connection.execute(args.query)
                description = cursor.description or []
                rows = cursor.fetchall() if description else []
        except duckdb.Error as exc:
            raise CliError(_query_error(exc), exit_code=1) from None
    names = [str(column[0]) for column in description]
    json_columns = {i for i, column in enumerate(description) if str(column[1]) == "JSON"}
    if args.json:
        objects = [
            {
                name: _parse_json(value) if i in json_columns else value
                for i, (name, value) in enumerate(zip(names, row, strict=True))
            }
            for row in rows
        ]
        print(json.dumps(objects, ensure_ascii=False, default=_json_default))
        return 0
    if not description:
        print("ok")
        return 0
    numeric = {i for i, column in enumerate(description) if _is_numeric_type(str(column[1]))}
    _print_table(names, [[_cell(value) for value in row] for row in rows], right=numeric)
    print(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return 0


def _query_error(exc: Exception) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    refused = _REFUSED_WRITE.search(first)
    if refused:
        return f"the store is opened read-only: a {refused.group(1)} statement cannot change it"
    return f"query failed: {first}"


def _is_numeric_type(name: str) -> bool:
    return name.split("(")[0] in {
        "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
        "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL",
    }  # fmt: skip


def _parse_json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def _cell(value: Any) -> str:
    if value is None:
        text = "NULL"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, datetime):
        text = value.isoformat(sep=" ")
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, default=_json_default)
    elif isinstance(value, bytes | bytearray | memoryview):
        text = "\\x" + bytes(value).hex()
    else:
        text = str(value)
    text = text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", " ")
    return text if len(text) <= _CELL_WIDTH else text[: _CELL_WIDTH - 1] + "…"


def _print_table(headers: list[str], rows: list[list[str]], *, right: set[int]) -> None:
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(width) if i in right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    print(line(headers))
    print("  ".join("-" * width for width in widths))
    for row in rows:
        print(line(row))
