"""``agentflow compile``: a notebook becomes the canonical definition, without node work.

Strategy: the cells that declare nodes (and the plain cells they depend on, such as
imports and constants) are executed in marimo's order with a compile builder active.
There the helpers only record nodes and return handles; references are symbols
(``{{outline.text}}``), so no LLM is called, no request is sent, no code node runs.
Cells that only display things (markdown, UI, charts of live values) are not run.
Before that, a static pass reports what marimo itself would refuse (syntax errors, a
name defined in two cells, cycles between cells) and cells that mix node definitions
with computations on node outputs, each with its cell and line.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import linecache
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from notebooks._build import build_definition
from notebooks._context import Builder, building
from notebooks._handles import AuthoringError

if TYPE_CHECKING:
    from engine.definition import WorkflowDefinition
    from notebooks._marimo_adapter import Cell, Notebook

__all__ = ["CompileIssue", "NotebookCompileError", "compile_notebook", "compile_source"]

#: Helpers that declare nodes or workflow settings (what makes a cell a node cell).
NODE_HELPERS = frozenset(
    {
        "start",
        "end",
        "llm",
        "template",
        "http",
        "sql",
        "code",
        "condition",
        "loop",
        "aggregate",
        "subworkflow",
        "node",
        "settings",
    }
)
#: Helpers whose arguments may hold node outputs as symbols.
SYMBOLIC_HELPERS = NODE_HELPERS | {"when", "all_of", "any_of", "input", "edge", "workflow", "run"}
_API_MODULE = "notebooks"


@dataclass(frozen=True, slots=True)
class CompileIssue:
    path: str
    line: int
    cell: str | None
    message: str

    def __str__(self) -> str:
        where = f" {self.cell}:" if self.cell else ""
        return f"{self.path}:{self.line}:{where} {self.message}"


class NotebookCompileError(Exception):
    """The notebook does not compile; ``issues`` has one entry per problem."""

    def __init__(self, issues: list[CompileIssue]) -> None:
        self.issues = sorted(issues, key=lambda issue: issue.line)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class _CompileBuilder(Builder):
    kind = "compile"

    def describe(self) -> str:
        return "the notebook"


def compile_notebook(path: str | Path) -> WorkflowDefinition:
    """The definition a notebook file declares; raises :class:`NotebookCompileError`."""
    location = str(path)
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookCompileError(
            [CompileIssue(location, 1, None, f"cannot read: {exc}")]
        ) from None
    return compile_source(source, location)


def compile_source(source: str, path: str) -> WorkflowDefinition:
    from notebooks._marimo_adapter import NotANotebookError, read_notebook

    try:
        notebook = read_notebook(path, source)
    except NotANotebookError as exc:
        raise NotebookCompileError([CompileIssue(path, exc.line, None, exc.message)]) from None
    return _Compilation(notebook, source).run()


class _Compilation:
    def __init__(self, notebook: Notebook, source: str) -> None:
        self.notebook = notebook
        self.source = source
        self.path = notebook.path
        # What ``__file__`` says in a cell: absolute, as in marimo, so that paths built
        # from it work from any directory.
        self.file = (
            str(Path(notebook.path).resolve()) if Path(notebook.path).is_file() else notebook.path
        )
        self.issues: list[CompileIssue] = []
        self.builder = _CompileBuilder()

    # -- reporting ----------------------------------------------------------------------
    def report(self, line: int, message: str, cell: Cell | None = None) -> None:
        cell = cell or self.cell_at(line)
        self.issues.append(CompileIssue(self.path, line, cell.title if cell else None, message))

    def cell_at(self, line: int) -> Cell | None:
        for cell in self.notebook.cells:
            if cell.line <= line <= cell.last_line:
                return cell
        return None

    # -- the passes ---------------------------------------------------------------------
    def run(self) -> WorkflowDefinition:
        for line, message in self.notebook.problems:
            self.report(line, f"marimo: {message}")
        for cell in self.notebook.cells:
            if cell.syntax_error is not None:
                self.report(cell.syntax_error[0], cell.syntax_error[1], cell)
        if self.issues:
            raise NotebookCompileError(self.issues)
        analysis = _Analysis(self.notebook)
        for cell, line, message in analysis.issues:
            self.report(line, message, cell)
        self._check_graph()
        if self.issues:
            raise NotebookCompileError(self.issues)
        self._execute(analysis.needed())
        if self.issues:
            raise NotebookCompileError(self.issues)
        return self._definition()

    def _check_graph(self) -> None:
        owners: dict[str, list[Cell]] = {}
        for cell in self.notebook.cells:
            for name in cell.defs:
                owners.setdefault(name, []).append(cell)
        for name, cells in sorted(owners.items()):
            if len(cells) > 1:
                first = cells[0]
                for other in cells[1:]:
                    self.report(
                        other.line,
                        f"'{name}' is also defined by {first.title} (line {first.line}); "
                        "marimo lets one cell define a name",
                        other,
                    )
        for cycle in _cycles(self.notebook.cells):
            steps = " -> ".join(
                f"{cell.title} ({', '.join(sorted(cell.defs)) or '-'})" for cell in cycle
            )
            self.report(
                cycle[0].line,
                f"cells form a cycle, each reading the next (marimo cannot run it): "
                f"{steps} -> {cycle[0].title}",
            )

    def _execute(self, cells: list[Cell]) -> None:
        values: dict[str, Any] = {}
        failed: set[str] = set()
        cache_entry = (len(self.source), None, self.source.splitlines(True), self.path)
        saved = linecache.cache.get(self.path)
        # inspect.getsource (code node functions) reads the source through linecache.
        linecache.cache[self.path] = cache_entry
        try:
            with building(self.builder), contextlib.redirect_stdout(sys.stderr):
                for cell in cells:
                    if cell.refs & failed:
                        failed.update(cell.defs)  # marimo would not run it either
                        continue
                    if not self._run_cell(cell, values):
                        failed.update(cell.defs)
        finally:
            if saved is None:
                linecache.cache.pop(self.path, None)
            else:
                linecache.cache[self.path] = saved
        for where, message in self.builder.issues:
            self.report(where[1] if where else 1, message)

    def _run_cell(self, cell: Cell, values: dict[str, Any]) -> bool:
        tree = ast.parse(cell.code, filename=self.path)
        ast.increment_lineno(tree, cell.line - 1)
        namespace: dict[str, Any] = {
            "__builtins__": builtins,
            "__name__": "__main__",
            "__file__": self.file,
        }
        namespace.update({name: values[name] for name in cell.refs if name in values})
        try:
            exec(compile(tree, self.path, "exec"), namespace)  # noqa: S102 - the user's notebook
        except Exception as exc:
            line = _line_in(exc.__traceback__, self.path) or cell.line
            if isinstance(exc, AuthoringError):
                self.report(line, str(exc), cell)
            else:
                self.report(line, f"{type(exc).__name__}: {exc}", cell)
            return False
        for name in cell.defs:
            if name in namespace:
                values[name] = namespace[name]
        return True

    def _definition(self) -> WorkflowDefinition:
        from engine.definition import load_definition
        from engine.errors import WorkflowValidationError
        from engine.graph import compile_workflow

        specs = self.builder.specs()
        if not specs:
            self.report(1, "the notebook declares no nodes (af.start(...), af.llm(...)...)")
            raise NotebookCompileError(self.issues)
        lines = {spec.id: spec.where[1] if spec.where else 1 for spec in specs}
        document, issues = build_definition(
            specs, settings=self.builder.settings, version=self.builder.version
        )
        for node_id, message in issues:
            self.report(lines.get(node_id or "", 1), f"node '{node_id}': {message}")
        if self.issues:
            raise NotebookCompileError(self.issues)
        try:
            definition = load_definition(document)
            compile_workflow(definition)
        except WorkflowValidationError as exc:
            for issue in exc.issues:
                line = lines.get(issue.node_id or "", 1)
                self.report(line, str(issue))
            raise NotebookCompileError(self.issues) from None
        return definition


def _line_in(trace: TracebackType | None, path: str) -> int | None:
    """The deepest line of ``path`` in a traceback (where the notebook's code failed)."""
    line = None
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == path:
            line = trace.tb_lineno
        trace = trace.tb_next
    return line


def _cycles(cells: tuple[Cell, ...]) -> list[list[Cell]]:
    """Cycles of the cell graph (a cell reads a name another defines), one per component."""
    definer: dict[str, Cell] = {}
    for cell in cells:
        for name in cell.defs:
            definer.setdefault(name, cell)
    parents = {
        cell.index: sorted({definer[r].index for r in cell.refs if r in definer} - {cell.index})
        for cell in cells
    }
    by_index = {cell.index: cell for cell in cells}
    found: list[list[Cell]] = []
    state: dict[int, int] = {}  # 1 visiting, 2 done
    stack: list[int] = []

    def visit(index: int) -> None:
        state[index] = 1
        stack.append(index)
        for parent in parents[index]:
            if state.get(parent) == 1:
                cycle = stack[stack.index(parent) :]
                found.append([by_index[i] for i in cycle])
            elif parent not in state:
                visit(parent)
        stack.pop()
        state[index] = 2

    for cell in cells:
        if cell.index not in state:
            visit(cell.index)
    return found


class _Analysis:
    """What the cells' code says before anything runs."""

    def __init__(self, notebook: Notebook) -> None:
        self.notebook = notebook
        self.issues: list[tuple[Cell, int, str]] = []
        self.trees: dict[int, ast.Module] = {}
        for cell in notebook.cells:
            tree = ast.parse(cell.code)
            ast.increment_lineno(tree, cell.line - 1)
            self.trees[cell.index] = tree
        self.modules, self.helpers = self._aliases()
        self.node_cells = {
            cell.index for cell in notebook.cells if self._declares(self.trees[cell.index])
        }
        self.node_names = self._node_names()
        for cell in notebook.cells:
            if cell.index in self.node_cells:
                self._check_node_cell(cell)

    def _aliases(self) -> tuple[set[str], dict[str, str]]:
        """Names bound to the API module, and names bound to its helpers."""
        modules: set[str] = set()
        helpers: dict[str, str] = {}
        for tree in self.trees.values():
            for item in ast.walk(tree):
                if isinstance(item, ast.Import):
                    for alias in item.names:
                        if alias.name == _API_MODULE:
                            modules.add(alias.asname or alias.name)
                elif isinstance(item, ast.ImportFrom) and item.module == _API_MODULE:
                    for alias in item.names:
                        helpers[alias.asname or alias.name] = alias.name
        return modules, helpers

    def helper_of(self, call: ast.Call) -> str | None:
        func = call.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.value.id in self.modules and func.attr in NODE_HELPERS:
                return func.attr
        elif isinstance(func, ast.Name):
            name = self.helpers.get(func.id)
            if name in NODE_HELPERS:
                return name
        return None

    def _declares(self, tree: ast.AST) -> bool:
        return any(
            isinstance(item, ast.Call) and self.helper_of(item) is not None
            for item in ast.walk(tree)
        )

    def _node_names(self) -> set[str]:
        names: set[str] = set()
        for index in self.node_cells:
            for statement in self.trees[index].body:
                target = _assigned(statement)
                if target is not None and self._is_node_call(_value(statement)):
                    names.add(target)
        return names

    def _is_node_call(self, value: ast.AST | None) -> bool:
        return isinstance(value, ast.Call) and self.helper_of(value) not in (None, "settings")

    def api_call(self, call: ast.Call, names: frozenset[str]) -> bool:
        func = call.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            return func.value.id in self.modules and func.attr in names
        return isinstance(func, ast.Name) and self.helpers.get(func.id) in names

    def _check_node_cell(self, cell: Cell) -> None:
        for statement in self.trees[cell.index].body:
            if isinstance(
                statement,
                ast.Import | ast.ImportFrom | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
            ):
                continue
            value = _value(statement)
            declares_here = (
                isinstance(value, ast.Call)
                and self.helper_of(value) is not None
                and (isinstance(statement, ast.Expr) or _assigned(statement) is not None)
            )
            if not declares_here and self._declares(statement):
                self.issues.append(
                    (
                        cell,
                        statement.lineno,
                        "unsupported: declare nodes at the top level of a cell as "
                        "'name = af.<helper>(...)' (not inside for/if/with/try, not unpacked "
                        "or stored in containers)",
                    )
                )
                continue
            used = sorted(self._computations(statement))
            if used:
                self.issues.append(
                    (
                        cell,
                        statement.lineno,
                        f"computes on node output(s) ({', '.join(used)}) in a cell that "
                        "declares nodes; move it to its own cell (plain cells are ignored by "
                        "compile) or into a code node (af.code)",
                    )
                )

    def _computations(self, statement: ast.stmt) -> set[str]:
        """Node names read other than symbolically (passed on, shown, put in an f-string)."""
        parents: dict[int, ast.AST] = {}
        for item in ast.walk(statement):
            for child in ast.iter_child_nodes(item):
                parents[id(child)] = item
        found: set[str] = set()
        for item in ast.walk(statement):
            if isinstance(item, ast.Call) and self.api_call(item, frozenset({"value"})):
                found.add("af.value(...)")
            if not (
                isinstance(item, ast.Name)
                and isinstance(item.ctx, ast.Load)
                and item.id in self.node_names
            ):
                continue
            top: ast.AST = item
            parent = parents.get(id(top))
            while isinstance(parent, ast.Attribute | ast.Subscript) and parent.value is top:
                top, parent = parent, parents.get(id(parent))
            if not self._symbolic_place(top, parent, parents):
                found.add(item.id)
        return found

    def _symbolic_place(
        self, top: ast.AST, parent: ast.AST | None, parents: dict[int, ast.AST]
    ) -> bool:
        if isinstance(parent, ast.FormattedValue):
            return parent.conversion == -1 and parent.format_spec is None
        if isinstance(parent, ast.List | ast.Tuple | ast.Set | ast.Expr):
            return True
        if isinstance(parent, ast.Dict):
            return any(value is top for value in parent.values)
        if isinstance(parent, ast.Assign | ast.AnnAssign):
            return parent.value is top
        call = parents.get(id(parent)) if isinstance(parent, ast.keyword) else parent
        if isinstance(call, ast.Call) and call.func is not top:
            return self.api_call(call, SYMBOLIC_HELPERS)
        return False

    def needed(self) -> list[Cell]:
        """Node cells and every cell they depend on, in an order marimo could run them."""
        cells = self.notebook.cells
        definer: dict[str, Cell] = {}
        for cell in cells:
            for name in cell.defs:
                definer.setdefault(name, cell)
        wanted: set[int] = set()
        pending = [cell for cell in cells if cell.index in self.node_cells or cell.setup]
        while pending:
            cell = pending.pop()
            if cell.index in wanted:
                continue
            wanted.add(cell.index)
            pending.extend(definer[name] for name in cell.refs if name in definer)
        return _marimo_order([cell for cell in cells if cell.index in wanted], definer)


def _marimo_order(cells: list[Cell], definer: dict[str, Cell]) -> list[Cell]:
    """Setup first, then parents before children, file order otherwise."""
    done: set[int] = set()
    order: list[Cell] = []
    remaining = sorted(cells, key=lambda cell: (not cell.setup, cell.index))
    while remaining:
        for cell in remaining:
            parents = {definer[r].index for r in cell.refs if r in definer} - {cell.index}
            if parents <= done:
                order.append(cell)
                done.add(cell.index)
                remaining.remove(cell)
                break
        else:  # a cycle: reported before this runs
            order.extend(remaining)
            break
    return order


def _assigned(statement: ast.stmt) -> str | None:
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        target = statement.targets[0]
        return target.id if isinstance(target, ast.Name) else None
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        return statement.target.id
    return None


def _value(statement: ast.stmt) -> ast.expr | None:
    if isinstance(statement, ast.Assign | ast.AnnAssign | ast.Expr):
        return statement.value
    return None


def _calls_value(call: ast.Call, modules: set[str], helpers: dict[str, str]) -> bool:
    func = call.func
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return func.value.id in modules and func.attr == "value"
    return isinstance(func, ast.Name) and helpers.get(func.id) == "value"
