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
