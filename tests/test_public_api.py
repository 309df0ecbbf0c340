"""Pin each package's public names: a change here is an API change, made on purpose."""

from __future__ import annotations

import engine

ENGINE_API = {
    "AgentFlowError",
    "BaseNodeConfig",
    "CodeExecutionError",
    "CompiledWorkflow",
    "DefinitionError",
    "Edge",
    "Event",
    "Executor",
    "InputValidationError",
    "LogEvent",
    "NetworkPolicyError",
    "Node",
    "NodeContext",
    "NodeData",
    "NodeDelta",
    "NodeError",
    "NodeFailed",
    "NodeRegistry",
    "NodeResult",
    "NodeRetrying",
    "NodeSkipped",
    "NodeStarted",
    "NodeState",
    "NodeSucceeded",
    "NodeTimeoutError",
    "NodeType",
    "Port",
    "Position",
    "Reference",
    "ReferenceResolutionError",
    "RetryPolicy",
    "Run",
    "RunCancelledError",
    "RunFinished",
    "RunResult",
    "RunStarted",
    "RunTimeoutError",
    "UnknownNodeTypeError",
    "ValidationIssue",
    "WorkflowDefinition",
    "WorkflowSettings",
    "WorkflowValidationError",
    "__version__",
    "compile_workflow",
    "default_registry",
    "iter_references",
    "load_definition",
    "run_workflow",
    "validate_definition",
    "NodeCache",
    "RunServices",
    "SecretSource",
    "WorkflowSource",
}


def test_engine_public_names_are_pinned():
    assert set(engine.__all__) == ENGINE_API
    for name in engine.__all__:
        assert hasattr(engine, name), name


def test_every_engine_error_derives_from_one_base():
    errors = [
        getattr(engine, n)
        for n in engine.__all__
        if isinstance(getattr(engine, n), type) and issubclass(getattr(engine, n), Exception)
    ]
    assert len(errors) >= 11
    assert all(issubclass(e, engine.AgentFlowError) for e in errors)


def test_engine_import_does_not_pull_heavy_libraries():
    import subprocess
    import sys

    code = (
        "import sys, engine, engine.cli, engine.nodes.registry as r; "
        "[r.default_registry().get(t) for t in r.default_registry().names()]; "
        "print(','.join(m for m in ('litellm', 'panel', 'marimo', 'httpx', 'duckdb', 'ollama', "
        "'store', 'studio', 'notebooks') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


STORE_API = {
    "ConflictError",
    "Database",
    "ImportDocumentError",
    "NotADatabaseError",
    "NotFoundError",
    "SchemaVersionError",
    "SecretError",
    "Store",
    "StoreError",
    "StoreLockedError",
    "default_db_path",
    "open_store",
}
STUDIO_API = {"StudioApp", "serve"}
NOTEBOOKS_API = {
    "AuthoringError",
    "CompileIssue",
    "NodeHandle",
    "NodeRunError",
    "NotebookCompileError",
    "Ref",
    "RunView",
    "aggregate",
    "all_of",
    "any_of",
    "code",
    "compile_notebook",
    "condition",
    "edge",
    "end",
    "equivalent",
    "http",
    "input",
    "llm",
    "loop",
    "node",
    "normalize",
    "notebook_from_definition",
    "run",
    "run_info",
    "set_live",
    "settings",
    "sql",
    "start",
    "subworkflow",
    "template",
    "value",
    "vegalite",
    "view",
    "when",
    "workflow",
}


def test_store_studio_and_notebooks_public_names_are_pinned():
    import notebooks
    import store
    import studio

    for package, expected in ((store, STORE_API), (studio, STUDIO_API), (notebooks, NOTEBOOKS_API)):
        assert set(package.__all__) == expected, package.__name__
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"


def test_every_store_error_derives_from_store_error():
    import store

    errors = [getattr(store, n) for n in store.__all__ if n.endswith("Error")]
    assert len(errors) == 8
    assert all(issubclass(e, store.StoreError) for e in errors)


def test_dependencies_point_one_way():
    """engine imports none of the others; store only engine.definition/errors (+ CLI glue)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent

    def imported(package: str) -> set[tuple[str, str]]:
        found = set()
        for path in (root / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.module:
                    found.add((path.name, node.module))
                elif isinstance(node, ast.Import):
                    found.update((path.name, alias.name) for alias in node.names)
        return found

    tops = {"engine", "store", "studio", "notebooks"}
    engine_imports = {m.split(".")[0] for _, m in imported("engine")}
    assert not engine_imports & (tops - {"engine"})
    store_engine = {
        m for f, m in imported("store") if m.split(".")[0] == "engine" and not f.startswith("cli")
    }
    assert store_engine <= {"engine.definition", "engine.errors"}, store_engine
    assert not {m.split(".")[0] for _, m in imported("store")} & {"studio", "notebooks"}
    assert not {m.split(".")[0] for _, m in imported("notebooks")} & {"studio"}
