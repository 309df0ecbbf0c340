"""The only module that touches marimo's internals (``marimo._ast``), for marimo 0.25.

It reads a notebook file into cells (name, code, the file line of the code's first
line, and the names each cell defines and reads, as marimo's own static analysis says)
and writes cells back into a notebook file. Golden files in ``notebooks/_golden`` pin
both directions; a new marimo minor version must pass them before the pin moves.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Cell",
    "NotANotebookError",
    "Notebook",
    "marimo_version",
    "read_notebook",
    "write_notebook",
]


class NotANotebookError(Exception):
    """The file cannot be read as a marimo notebook."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


@dataclass(frozen=True, slots=True)
class Cell:
    index: int
    name: str
    code: str
    #: File line of the code's first line (1-based).
    line: int
    defs: frozenset[str]
    refs: frozenset[str]
    setup: bool = False
    #: (file line, message) when marimo cannot compile the cell.
    syntax_error: tuple[int, str] | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def last_line(self) -> int:
        return self.line + max(self.code.count("\n"), 0)

    @property
    def title(self) -> str:
        """How errors name the cell: its name, or its position when unnamed."""
        if self.setup:
            return "setup cell"
        if self.name and self.name != "_":
            return f"cell '{self.name}'"
        return f"cell #{self.index + 1}"


@dataclass(frozen=True, slots=True)
class Notebook:
    path: str
    cells: tuple[Cell, ...]
    #: marimo's own complaints about the file: (line, message).
    problems: tuple[tuple[int, str], ...] = ()
    app_options: dict[str, Any] = field(default_factory=dict)


def marimo_version() -> str:
    import marimo

    return str(marimo.__version__)


def read_notebook(path: str, source: str) -> Notebook:
    """The cells of a notebook's source text (nothing is run)."""
    from marimo._ast.compiler import compile_cell
    from marimo._ast.parse import SOFT_VIOLATIONS, MarimoFileError, parse_notebook
    from marimo._schemas.serialization import SetupCell, UnparsableCell
    from marimo._types.ids import CellId_t

    try:
        ast.parse(source, filename=path)  # a notebook file is Python (broken cells are strings)
        parsed = parse_notebook(source, filepath=path)
    except SyntaxError as exc:
        raise NotANotebookError(f"syntax error: {exc.msg}", exc.lineno or 1) from None
    except MarimoFileError as exc:
        raise NotANotebookError(f"not a marimo notebook: {exc}") from None
    if parsed is None:
        raise NotANotebookError("the file is empty")
    if not parsed.valid or (not parsed.cells and parsed.app is None):
        raise NotANotebookError("not a marimo notebook (no 'app = marimo.App()' with cells)")
    lines = source.splitlines()
    problems = tuple(
        (violation.lineno or 1, violation.description)
        for violation in parsed.violations
        if violation.description not in SOFT_VIOLATIONS
    )
    cells = []
    for index, cell_def in enumerate(parsed.cells):
        code = cell_def.code
        first = _first_line(lines, code, cell_def.lineno)
        error: tuple[int, str] | None = None
        defs: frozenset[str] = frozenset()
        refs: frozenset[str] = frozenset()
        if isinstance(cell_def, UnparsableCell):
            error = (cell_def.lineno or first, "marimo cannot parse this cell")
        try:
            compiled = compile_cell(code, cell_id=CellId_t(f"c{index}"))
        except SyntaxError as exc:
            error = (first + (exc.lineno or 1) - 1, f"syntax error: {exc.msg}")
        else:
            defs, refs = frozenset(compiled.defs), frozenset(compiled.refs)
        cells.append(
            Cell(
                index=index,
                name=cell_def.name,
                code=code,
                line=first,
                defs=defs,
                refs=refs,
                setup=isinstance(cell_def, SetupCell),
                syntax_error=error,
                options=dict(cell_def.options),
            )
        )
    return Notebook(path, tuple(cells), problems, dict(parsed.app.options))


def _first_line(lines: list[str], code: str, start: int) -> int:
    """The file line where a cell's code begins (its text is the file's, dedented)."""
    code_lines = code.splitlines()
    for offset, text in enumerate(code_lines):
        wanted = text.strip()
        if not wanted:
            continue
        for number in range(max(start, 1), len(lines) + 1):
            if lines[number - 1].strip() == wanted:
                return number - offset
        break
    return start + 1


def write_notebook(
    cells: Sequence[tuple[str, str, dict[str, Any]]],
    *,
    app_options: dict[str, Any] | None = None,
    header: str | None = None,
) -> str:
    """A notebook file from (name, code, options) cells, formatted as marimo writes it."""
    from marimo._ast.app_config import _AppConfig
    from marimo._ast.cell import CellConfig
    from marimo._ast.codegen import generate_filecontents

    return generate_filecontents(
        codes=[code for _, code, _ in cells],
        names=[name for name, _, _ in cells],
        cell_configs=[CellConfig.from_dict(options) for _, _, options in cells],
        config=_AppConfig.from_untrusted_dict(app_options or {}),
        header_comments=header,
    )
