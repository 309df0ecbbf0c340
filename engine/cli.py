"""The ``agentflow`` command line.

Exit codes: 0 success; 1 the workflow is invalid (``validate``) or the run failed
(``run``); 2 bad usage, an unreadable or invalid document, or bad inputs (``run``).
Imports stay light: the engine is loaded when a command needs it, and rich only for
the live display on a terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cli_plugins import CliContext, CliError, load_plugins

if TYPE_CHECKING:
    from engine.definition import WorkflowDefinition
    from engine.results import RunResult

__all__ = ["load_document", "main", "parse_inputs", "print_result"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    parser, cli = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    args.cli = cli
    try:
        code: int = args.handler(args)
    except CliError as exc:
        print(f"agentflow: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("agentflow: interrupted", file=sys.stderr)
        return 130
    return code


def _parser() -> tuple[argparse.ArgumentParser, CliContext]:
    from engine import __version__

    parser = argparse.ArgumentParser(
        prog="agentflow", description="Validate and run AgentFlow workflows."
    )
    parser.add_argument("--version", action="version", version=f"agentflow {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    validate = commands.add_parser("validate", help="check a workflow file; prints 'ok' or errors")
    validate.add_argument("file", help="workflow JSON file ('-' for stdin)")
    validate.set_defaults(handler=_cmd_validate)

    run = commands.add_parser("run", help="run a workflow and print its outputs")
    run.add_argument("file", help="workflow JSON file ('-' for stdin)")
    run.add_argument("--inputs", metavar="JSON", help="run inputs as a JSON object")
    run.add_argument(
        "--input",
        metavar="K=V",
        action="append",
        default=[],
        help="one input (repeatable); V is JSON unless the input is declared as a string",
    )
    run.add_argument("--json", action="store_true", help="print one JSON result object only")
    run.set_defaults(handler=_cmd_run)

    nodes = commands.add_parser("nodes", help="list node types with their config schema")
    nodes.add_argument("--json", action="store_true", help="machine-readable output")
    nodes.set_defaults(handler=_cmd_nodes)

    models = commands.add_parser(
        "models", help="local Ollama models and cloud providers with an API key"
    )
    models.add_argument("--json", action="store_true", help="machine-readable output")
    models.set_defaults(handler=_cmd_models)

    cli = CliContext(commands, run)
    load_plugins(cli)
    return parser, cli


# -- documents -------------------------------------------------------------------
def _read_document(file: str) -> tuple[str, str | None]:
    if file == "-":
        return sys.stdin.read(), "<stdin>"
    path = Path(file)
    if not path.is_file():
        raise CliError(f"{file}: no such file")
    try:
        return path.read_text(encoding="utf-8"), file
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{file}: cannot read: {exc}") from None


def load_document(file: str, cli: CliContext) -> WorkflowDefinition:
    """A workflow from a JSON file, stdin, or any kind a plugin loader reads."""
    from engine.definition import load_definition
    from engine.errors import DefinitionError

    loader = next((fn for suffix, fn in cli.loaders.items() if file.endswith(suffix)), None)
    if loader is not None:
        if not Path(file).is_file():
            raise CliError(f"{file}: no such file")
        return loader(Path(file))
    text, origin = _read_document(file)
    try:
        return load_definition(text)
    except DefinitionError as exc:
        exc.source = origin
        raise


# -- validate --------------------------------------------------------------------
def _cmd_validate(args: argparse.Namespace) -> int:
    from engine.errors import DefinitionError, WorkflowValidationError
    from engine.graph import compile_workflow

    try:
        compile_workflow(load_document(args.file, args.cli))
    except DefinitionError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILED
    except WorkflowValidationError as exc:
        for issue in exc.issues:
            print(str(issue), file=sys.stderr)
        return EXIT_FAILED
    print("ok")
    return EXIT_OK


# -- run -------------------------------------------------------------------------
def _cmd_run(args: argparse.Namespace) -> int:
    from engine.errors import DefinitionError, InputValidationError, WorkflowValidationError
    from engine.graph import compile_workflow

    try:
        compiled = compile_workflow(load_document(args.file, args.cli))
    except DefinitionError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except WorkflowValidationError as exc:
        for issue in exc.issues:
            print(str(issue), file=sys.stderr)
        return EXIT_USAGE
    start = compiled.nodes[compiled.start_id]
    declared = {spec.name: spec.type for spec in getattr(start.static_config, "inputs", [])}
    try:
        inputs = parse_inputs(args.inputs, args.input, declared)
        sessions = [
            session
            for hook in args.cli.run_hooks
            if (session := hook(args, compiled, inputs, args.file)) is not None
        ]
        result = args.cli.execute(compiled, inputs, live=not args.json, sessions=sessions)
    except InputValidationError as exc:
        print(f"agentflow: bad input: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return print_result(result, as_json=args.json)


def parse_inputs(
    inputs_json: str | None, pairs: list[str], declared: dict[str, str]
) -> dict[str, Any]:
    from engine._private.inputs import coerce_text
    from engine.errors import InputValidationError

    inputs: dict[str, Any] = {}
    if inputs_json is not None:
        try:
            parsed = json.loads(inputs_json)
        except json.JSONDecodeError as exc:
            raise CliError(
                f"--inputs is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from None
        if not isinstance(parsed, dict):
            raise CliError("--inputs must be a JSON object")
        inputs.update(parsed)
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--input expects KEY=VALUE, got {pair!r}")
        try:
            inputs[key] = coerce_text(declared.get(key), text)
        except InputValidationError as exc:
            raise InputValidationError(exc.message, field=key) from None
    return inputs


def print_result(result: RunResult, *, as_json: bool) -> int:
    """Print the result (one JSON object, or a summary and the outputs); the exit code."""
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, default=str))
    else:
        _print_summary(result)
    return EXIT_OK if result.status == "succeeded" else EXIT_FAILED


def _print_summary(result: RunResult) -> None:
    print(
        f"{result.status} in {result.duration_ms:.1f} ms  (execution {result.execution_id})",
        file=sys.stderr,
    )
    if result.error:
        where = f" [node {result.error.get('nodeId')}]" if result.error.get("nodeId") else ""
        print(f"error{where}: {result.error.get('message')}", file=sys.stderr)
    print(json.dumps(result.outputs, indent=2, ensure_ascii=False, default=str))


# -- nodes -----------------------------------------------------------------------
def _cmd_nodes(args: argparse.Namespace) -> int:
    from engine.nodes.registry import default_registry

    described = [node_type.describe() for node_type in default_registry().all()]
    if args.json:
        print(json.dumps(described, indent=2))
        return EXIT_OK
    for item in described:
        print(f"{item['type']:<11} {item['description']}")
        properties = item["config"].get("properties", {})
        required = set(item["config"].get("required", []))
        for name, schema in properties.items():
            if name in ("timeoutMs", "maxRetries", "errorHandling", "fallback"):
                continue
            kind = schema.get("type") or " | ".join(
                str(option.get("type", "object")) for option in schema.get("anyOf", [])
            )
            mark = "*" if name in required else " "
            print(f"  {mark} {name:<16} {kind}")
        outputs = ", ".join(item["outputs"]) or "-"
        print(f"    outputs: {outputs}")
    print("\n* required.  Every node also accepts timeoutMs, maxRetries, errorHandling, fallback.")
    return EXIT_OK


# -- models ----------------------------------------------------------------------
def _cmd_models(args: argparse.Namespace) -> int:
    from engine.llm import discover

    secrets = None
    factory = args.cli.secrets_factory
    if factory is not None:
        try:
            secrets = factory(args)
        except Exception as exc:  # an unreadable store still leaves Ollama and the env
            message = getattr(exc, "message", None) or exc
            print(f"agentflow: warning: key store not read: {message}", file=sys.stderr)
    found = discover(secrets)
    ollama = found["ollama"]
    if not ollama["running"]:
        print(f"agentflow: Ollama not available: {ollama['error']}", file=sys.stderr)
    if args.json:
        print(json.dumps(found, indent=2))
        return EXIT_OK
    state = f"running, {len(ollama['models'])} model(s)" if ollama["running"] else "not running"
    print(f"Ollama at {ollama['host']}: {state}")
    for model in ollama["models"]:
        size = " ".join(filter(None, [model["parameterSize"], model["quantization"]]))
        print(f"  {model['model']:<40} {size}")
    print("Cloud providers (key from the store or the environment):")
    for provider in found["cloud"]:
        where = {"store": "key in the store", "env": "key in the environment"}
        status = where.get(provider["keyFrom"], "no key")
        note = f"  ({provider['error']})" if provider["error"] else ""
        print(f"  {provider['provider']:<13} {provider['envVar']:<22} {status}{note}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
