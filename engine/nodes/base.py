"""What every node type provides, and what a running node can see.

A node type is a class with a pydantic ``Config`` schema and an async ``run``. The
engine resolves references, validates the config against the schema, applies timeouts,
retries and error policy; the node only does its one job.
"""

from __future__ import annotations

import copy
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from engine.errors import ValidationIssue

if TYPE_CHECKING:
    from engine.definition import Node, WorkflowSettings
    from engine.nodes.registry import NodeRegistry
    from engine.services import RunServices

__all__ = [
    "BaseNodeConfig",
    "NodeContext",
    "NodeResult",
    "NodeType",
]


class BaseNodeConfig(BaseModel):
    """Fields every node's ``data.config`` may carry: the node-level policy overrides.

    Unknown fields are ignored by the schema (the definition keeps them).
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    timeout_ms: int | None = Field(default=None, gt=0, description="Per-attempt time limit.")
    max_retries: int | None = Field(default=None, ge=0, le=100)
    error_handling: Literal["stop", "continue", "fallback"] | None = None
    fallback: dict[str, Any] | None = Field(
        default=None, description="Outputs to use when the node fails under 'fallback'."
    )
    cache: bool | None = Field(
        default=None,
        description="Reuse stored outputs for the same type, config and inputs "
        "(default: the workflow's settings.cache).",
    )


ConfigT = TypeVar("ConfigT", bound=BaseNodeConfig)
# Declared outside NodeType, whose ``type`` attribute shadows the builtin inside the class.
ConfigModel = type[BaseNodeConfig]


@dataclass(slots=True)
class NodeResult:
    """What ``run`` returns when a node has more to say than its outputs."""

    outputs: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    tokens: int = 0


class NodeContext:
    """The running node's view of its run: ids, settings, upstream outputs, events."""

    __slots__ = (
        "_emit_delta",
        "_log",
        "attempt",
        "execution_id",
        "node",
        "registry",
        "run_inputs",
        "services",
        "settings",
        "upstream",
    )

    def __init__(
        self,
        *,
        node: Node,
        execution_id: str,
        attempt: int,
        settings: WorkflowSettings,
        run_inputs: Mapping[str, Any],
        upstream: Mapping[str, Any],
        emit_delta: Callable[[str], None],
        log: Callable[[str, str], None],
        registry: NodeRegistry | None = None,
        services: RunServices | None = None,
    ) -> None:
        self.node = node
        self.execution_id = execution_id
        self.attempt = attempt
        self.settings = settings
        self.run_inputs = run_inputs
        #: Outputs of the nodes upstream of this one, by node id (read-only view).
        self.upstream = upstream
        self._emit_delta = emit_delta
        self._log = log
        #: The registry the run was compiled with (``None`` means the default one).
        self.registry = registry
        #: Cache, stored workflows and secrets lent by the host (the store), if any.
        self.services = services

    @property
    def node_id(self) -> str:
        return self.node.id

    def emit_delta(self, text: str) -> None:
        """Stream a piece of output (LLM tokens) as a ``node_delta`` event."""
        self._emit_delta(text)

    def log(self, message: str, level: str = "info") -> None:
        self._log(level, message)


class NodeType(ABC, Generic[ConfigT]):
    """Base class of node types. Subclasses set the class attributes and ``run``."""

    type: ClassVar[str]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    Config: ClassVar[ConfigModel] = BaseNodeConfig
    #: Documented outputs: name -> meaning.
    outputs: ClassVar[dict[str, str]] = {}
    #: Config fields the engine must not resolve (the node interprets them itself).
    raw_fields: ClassVar[frozenset[str]] = frozenset()
    #: References to nodes that produced nothing resolve to "missing" instead of failing.
    lenient_references: ClassVar[bool] = False
    #: Runs when any incoming edge is active, even if other upstream nodes failed.
    runs_on_any_input: ClassVar[bool] = False
    #: The node enforces ``timeoutMs`` itself (e.g. by killing a process), so the
    #: executor does not wrap it in ``asyncio.timeout``.
    handles_timeout: ClassVar[bool] = False
    #: The node reads upstream outputs besides its resolved config (so its cache key must).
    reads_upstream: ClassVar[bool] = False
    #: Whether outputs may be reused from the node cache (not for nodes that read the run).
    cacheable: ClassVar[bool] = True

    def output_handles(self, node: Node) -> set[str]:
        """Output handle ids an edge may leave this node from (``error`` is always allowed)."""
        handles = {"out"}
        if node.data.outputs:
            handles.update(port.id for port in node.data.outputs)
        return handles

    def taken_handles(self, outputs: Mapping[str, Any]) -> set[str] | None:
        """Handles activated by a successful run; ``None`` means all of them."""
        return None

    def check(
        self, node: Node, config: BaseNodeConfig | None, registry: NodeRegistry
    ) -> Iterable[ValidationIssue]:
        """Checks beyond the schema (the config is ``None`` when it holds references).

        ``registry`` is the one compiling the workflow (for nested definitions).
        """
        return ()

    def check_settings(
        self, node: Node, config: BaseNodeConfig | None, settings: WorkflowSettings
    ) -> Iterable[ValidationIssue]:
        """Checks that depend on the workflow's settings (e.g. LLM routing)."""
        return ()

    def extra_references(self, node: Node) -> Iterable[tuple[str, str]]:
        """(root name, field) pairs the node reads besides ``{{...}}`` in its config."""
        return ()

    @abstractmethod
    async def run(self, ctx: NodeContext, config: ConfigT) -> dict[str, Any] | NodeResult:
        """Do the node's work with its resolved, validated config."""

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """The node type for ``agentflow nodes`` and the studio's palette (a fresh copy)."""
        return copy.deepcopy(_describe(cls))


@functools.cache
def _describe(cls: type[NodeType[Any]]) -> dict[str, Any]:
    # Generating a JSON schema costs milliseconds; the studio asks on every selection.
    return {
        "type": cls.type,
        "version": cls.version,
        "description": cls.description,
        "config": cls.Config.model_json_schema(by_alias=True),
        "outputs": dict(cls.outputs),
    }
