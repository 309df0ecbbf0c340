"""The notebooks' part of the ``agentflow`` command (entry point ``agentflow.cli``).

- ``agentflow compile NOTEBOOK.py [-o wf.json]``: the canonical definition (stdout
  without ``-o``); exit 2 with one line per problem (file:line: cell: message).
- ``agentflow notebook wf.json [-o NOTEBOOK.py]``: a notebook that compiles back to an
  equivalent definition.
- ``agentflow run NOTEBOOK.py`` and ``agentflow validate NOTEBOOK.py``: through a loader
  for ``.py`` files.

Nothing here imports marimo or the compiler until a command needs them: registering
costs the CLI's start-up next to nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.cli_plugins import CliContext
    from engine.definition import WorkflowDefinition

__all__ = ["register"]

EXIT_OK, EXIT_INVALID = 0, 2


def register(cli: CliContext) -> None:
    cli.add_loader(".py", _load_notebook)
    compile_parser = cli.add_command(
        "compile", "compile a marimo notebook (NOTEBOOK.py) into a workflow definition (JSON)"
    )
    compile_parser.add_argument("notebook", help="a marimo notebook written with notebooks (af)")
    compile_parser.add_argument("-o", "--output", metavar="FILE", help="write here, not stdout")
    compile_parser.set_defaults(handler=_cmd_compile)
    notebook_parser = cli.add_command(
        "notebook", "turn a workflow definition (JSON) into a marimo notebook"
    )
    notebook_parser.add_argument("file", help="workflow JSON file ('-' for stdin)")
    notebook_parser.add_argument("-o", "--output", metavar="FILE", help="write here, not stdout")
    notebook_parser.set_defaults(handler=_cmd_notebook)


def _load_notebook(path: Path) -> WorkflowDefinition:
    from engine.cli_plugins import CliError
    from notebooks._compile import NotebookCompileError, compile_notebook

    try:
        return compile_notebook(path)
    except NotebookCompileError as exc:
        raise CliError(f"{path} does not compile:\n{exc}", exit_code=EXIT_INVALID) from None


def _cmd_compile(args: argparse.Namespace) -> int:
    from notebooks._compile import NotebookCompileError, compile_notebook

    path = Path(args.notebook)
    if not path.is_file():
        print(f"agentflow: {path}: no such file", file=sys.stderr)
        return EXIT_INVALID
    try:
        definition = compile_notebook(path)
    except NotebookCompileError as exc:
        for issue in exc.issues:
            print(str(issue), file=sys.stderr)
        return EXIT_INVALID
    _write(definition.to_json() + "\n", args.output)
    return EXIT_OK


def _cmd_notebook(args: argparse.Namespace) -> int:
    from engine.cli import load_document
    from engine.errors import DefinitionError, WorkflowValidationError
    from notebooks._codegen import notebook_from_definition

    try:
        definition = load_document(args.file, args.cli)
        text = notebook_from_definition(definition, source=None if args.file == "-" else args.file)
    except DefinitionError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    except WorkflowValidationError as exc:
        for issue in exc.issues:
            print(str(issue), file=sys.stderr)
        return EXIT_INVALID
    except RuntimeError as exc:  # a definition the generator cannot reproduce: a bug
        print(f"agentflow: cannot write {args.file} as a notebook: {exc}", file=sys.stderr)
        return EXIT_INVALID
    _write(text, args.output)
    return EXIT_OK


def _write(text: str, output: str | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    from engine.cli_plugins import CliError

    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"{output}: cannot write: {exc}") from None
    print(f"wrote {output}", file=sys.stderr)
