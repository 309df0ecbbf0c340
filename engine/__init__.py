"""AgentFlow engine: the canonical workflow definition, validation and async execution.

Public API (everything else lives in private modules and may change)::

    from engine import load_definition, compile_workflow, Executor

    definition = load_definition(path_or_json_or_dict)
    result = await Executor().run(definition, {"topic": "tides"})
"""

from engine._private.references import Reference, iter_references
from engine.definition import (
    Edge,
    Node,
    NodeData,
    Port,
    Position,
    RetryPolicy,
    WorkflowDefinition,
    WorkflowSettings,
    load_definition,
)
from engine.errors import (
    AgentFlowError,
    CodeExecutionError,
    DefinitionError,
    InputValidationError,
    NetworkPolicyError,
    NodeError,
    NodeTimeoutError,
    ReferenceResolutionError,
    RunCancelledError,
    RunTimeoutError,
    UnknownNodeTypeError,
    ValidationIssue,
    WorkflowValidationError,
)
from engine.events import (
    Event,
    LogEvent,
    NodeDelta,
    NodeFailed,
    NodeRetrying,
    NodeSkipped,
    NodeStarted,
    NodeSucceeded,
    RunFinished,
    RunStarted,
)
from engine.executor import Executor, Run, run_workflow
from engine.graph import CompiledWorkflow, compile_workflow, validate_definition
from engine.nodes.base import BaseNodeConfig, NodeContext, NodeResult, NodeType
from engine.nodes.registry import NodeRegistry, default_registry
from engine.results import NodeState, RunResult
from engine.services import NodeCache, RunServices, SecretSource, WorkflowSource

__version__ = "0.1.0"

__all__ = [
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
    "NodeCache",
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
    "RunServices",
    "RunStarted",
    "RunTimeoutError",
    "SecretSource",
    "UnknownNodeTypeError",
    "ValidationIssue",
    "WorkflowDefinition",
    "WorkflowSettings",
    "WorkflowSource",
    "WorkflowValidationError",
    "__version__",
    "compile_workflow",
    "default_registry",
    "iter_references",
    "load_definition",
    "run_workflow",
    "validate_definition",
]
