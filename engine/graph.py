"""Validation and compilation: a definition becomes a checked DAG.

:func:`validate_definition` reports every problem of a document at once;
:func:`compile_workflow` returns a :class:`CompiledWorkflow` ready to run, with each
node's references parsed and its static config validated once.

The hot path (every ``agentflow run``) orders the graph with the standard library's
``graphlib`` and answers "is X upstream of Y" with bitsets; networkx, whose import
alone costs about 100 ms, is loaded only to describe cycles and for
:attr:`CompiledWorkflow.graph`, the networkx view that tools build on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from graphlib import CycleError, TopologicalSorter
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError as PydanticValidationError

from engine._private.references import (
    INPUTS_ROOT,
    Reference,
    Resolver,
    compile_value,
    reference_locations,
)
from engine.definition import Edge, Node, WorkflowDefinition
from engine.errors import UnknownNodeTypeError, ValidationIssue, WorkflowValidationError
from engine.nodes.base import BaseNodeConfig, NodeType
from engine.nodes.registry import NodeRegistry, default_registry

if TYPE_CHECKING:
    import networkx as nx

__all__ = [
    "CompiledEdge",
    "CompiledNode",
    "CompiledWorkflow",
    "compile_workflow",
    "validate_definition",
]

ERROR_HANDLE = "error"


@dataclass(slots=True)
class CompiledEdge:
    edge: Edge
    source: CompiledNode
    target: CompiledNode
    handle: str


@dataclass(slots=True, eq=False)
class CompiledNode:
    node: Node
    node_type: NodeType[Any]
    policy: BaseNodeConfig
    static_config: BaseNodeConfig | None
    resolver: Resolver | None
    references: list[Reference]
    out_edges: list[CompiledEdge] = field(default_factory=list)
    in_edges: list[CompiledEdge] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.node.id

    def build_config(self, raw: dict[str, Any]) -> BaseNodeConfig:
        return self.node_type.Config.model_validate(raw)


@dataclass
class CompiledWorkflow:
    definition: WorkflowDefinition
    nodes: dict[str, CompiledNode]
    order: list[str]
    start_id: str
    end_ids: list[str]
    ancestry: _Ancestry

    @property
    def settings(self) -> Any:
        return self.definition.settings

    def upstream_of(self, node_id: str) -> set[str]:
        return self.ancestry.ancestors(node_id)

    @cached_property
    def graph(self) -> nx.DiGraph:
        """The workflow as a networkx DiGraph (node ids; edges carry their edge ids)."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self.order)
        for compiled_node in self.nodes.values():
            for link in compiled_node.out_edges:
                graph.add_edge(link.source.id, link.target.id, id=link.edge.id)
        return graph


def validate_definition(
    definition: WorkflowDefinition, registry: NodeRegistry | None = None
) -> list[ValidationIssue]:
    """Every problem of the definition, in document order; empty when it is valid."""
    try:
        compile_workflow(definition, registry)
    except WorkflowValidationError as exc:
        return exc.issues
    return []


def compile_workflow(
    definition: WorkflowDefinition, registry: NodeRegistry | None = None
) -> CompiledWorkflow:
    """Check the definition and prepare it for the executor.

    Raises :class:`WorkflowValidationError` with all issues found.
    """
    registry = registry or default_registry()
    issues: list[ValidationIssue] = []

    id_counts = Counter(node.id for node in definition.nodes)
    for node_id, count in id_counts.items():
        if count > 1:
            issues.append(
                ValidationIssue("duplicate_id", f"node id used {count} times", node_id=node_id)
            )
    edge_counts = Counter(edge.id for edge in definition.edges)
    for edge_id, count in edge_counts.items():
        if count > 1:
            issues.append(
                ValidationIssue("duplicate_id", f"edge id used {count} times", edge_id=edge_id)
            )

    compiled: dict[str, CompiledNode] = {}
    for node in definition.nodes:
        if node.id in compiled:
            continue
        try:
            node_type = registry.get(node.type, node_id=node.id)
        except UnknownNodeTypeError as exc:
            issues.append(
                ValidationIssue("unknown_type", exc.message, node_id=node.id, field="type")
            )
            continue
        compiled_node = _compile_node(node, node_type, registry, issues)
        if compiled_node is not None:
            compiled[node.id] = compiled_node
            issues.extend(
                node_type.check_settings(node, compiled_node.static_config, definition.settings)
            )

    starts = [node.id for node in definition.nodes if node.type == "start"]
    if not starts:
        issues.append(ValidationIssue("missing_start", "the workflow has no 'start' node"))
    elif len(starts) > 1:
        for node_id in starts[1:]:
            issues.append(
                ValidationIssue(
                    "duplicate_start",
                    f"a workflow has exactly one 'start' node; '{starts[0]}' is already one",
                    node_id=node_id,
                )
            )

    predecessors: dict[str, set[str]] = {node.id: set() for node in definition.nodes}
    node_ids = set(id_counts)
    for edge in definition.edges:
        _check_edge(edge, node_ids, compiled, predecessors, issues)

    order = _order_or_cycles(predecessors, issues)
    ancestors = _Ancestry(predecessors, order)
    variables = definition.settings.variables
    declared_inputs = _declared_inputs(compiled.get(starts[0]) if starts else None)
    for node_id, compiled_node in compiled.items():
        if starts and compiled_node.node.type == "start" and predecessors[node_id]:
            issues.append(
                ValidationIssue(
                    "bad_edge", "the 'start' node cannot have incoming edges", node_id=node_id
                )
            )
        refs: list[tuple[str, str, Reference | None]] = [
            (ref.root, ref.field, ref) for ref in compiled_node.references
        ]
        refs += [
            (root, fld, None)
            for root, fld in compiled_node.node_type.extra_references(compiled_node.node)
        ]
        for root, fld, ref in refs:
            _check_reference(
                node_id, root, fld, ref, id_counts, ancestors, variables, declared_inputs, issues
            )

    if issues:
        raise WorkflowValidationError(issues)
    return CompiledWorkflow(
        definition=definition,
        nodes=compiled,
        order=order,
        start_id=starts[0],
        end_ids=[node.id for node in definition.nodes if node.type == "end"],
        ancestry=ancestors,
    )


def _compile_node(
    node: Node, node_type: NodeType[Any], registry: NodeRegistry, issues: list[ValidationIssue]
) -> CompiledNode | None:
    raw = node.data.config
    resolvable = {key: value for key, value in raw.items() if key not in node_type.raw_fields}
    resolver, references = compile_value(resolvable)
    if resolver is not None and node_type.raw_fields:
        inner = resolver

        def resolver(scope: Any, node_id: str, lenient: bool) -> Any:
            return {**raw, **inner(scope, node_id, lenient)}

    deferred = {loc for loc in reference_locations(resolvable)}
    static_config: BaseNodeConfig | None = None
    try:
        validated = node_type.Config.model_validate(raw)
        if not deferred:
            static_config = validated
    except PydanticValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            if any(loc[: len(ref_loc)] == ref_loc for ref_loc in deferred):
                continue  # typed when the reference is resolved at run time
            issues.append(
                ValidationIssue(
                    "config",
                    error["msg"],
                    node_id=node.id,
                    field=".".join(str(part) for part in loc) or None,
                )
            )
    try:
        policy = BaseNodeConfig.model_validate(raw)
    except PydanticValidationError as exc:
        for error in exc.errors():
            issues.append(
                ValidationIssue(
                    "config",
                    f"{error['msg']} (node policy fields cannot be references)",
                    node_id=node.id,
                    field=".".join(str(part) for part in error["loc"]) or None,
                )
            )
        return None
    for issue in node_type.check(node, static_config, registry):
        issues.append(issue)
    return CompiledNode(
        node=node,
        node_type=node_type,
        policy=policy,
        static_config=static_config,
        resolver=resolver,
        references=references,
    )


def _check_edge(
    edge: Edge,
    ids: set[str],
    compiled: dict[str, CompiledNode],
    predecessors: dict[str, set[str]],
    issues: list[ValidationIssue],
) -> None:
    dangling = False
    for end, field_name in ((edge.source, "source"), (edge.target, "target")):
        if end not in ids:
            issues.append(
                ValidationIssue(
                    "dangling_edge",
                    f"{field_name} node '{end}' does not exist",
                    edge_id=edge.id,
                    field=field_name,
                )
            )
            dangling = True
    if dangling:
        return
    source, target = compiled.get(edge.source), compiled.get(edge.target)
    if source is not None:
        handles = source.node_type.output_handles(source.node) | {ERROR_HANDLE}
        if edge.source_port not in handles:
            issues.append(
                ValidationIssue(
                    "bad_handle",
                    f"node '{edge.source}' has no output handle '{edge.source_port}' "
                    f"(has: {', '.join(sorted(handles))})",
                    edge_id=edge.id,
                    node_id=edge.source,
                    field="sourceHandle",
                )
            )
    if target is not None:
        target_handles = {"in"} | {port.id for port in target.node.data.inputs or ()}
        if edge.target_port not in target_handles:
            issues.append(
                ValidationIssue(
                    "bad_handle",
                    f"node '{edge.target}' has no input handle '{edge.target_port}' "
                    f"(has: {', '.join(sorted(target_handles))})",
                    edge_id=edge.id,
                    node_id=edge.target,
                    field="targetHandle",
                )
            )
    if source is not None and target is not None:
        link = CompiledEdge(edge=edge, source=source, target=target, handle=edge.source_port)
        source.out_edges.append(link)
        target.in_edges.append(link)
    predecessors[edge.target].add(edge.source)


def _order_or_cycles(predecessors: dict[str, set[str]], issues: list[ValidationIssue]) -> list[str]:
    """A topological order, or ``[]`` with a ``cycle`` issue on every node of every cycle."""
    try:
        return list(TopologicalSorter(predecessors).static_order())
    except CycleError:
        pass
    import networkx as nx  # only to describe the cycles well

    graph = nx.DiGraph()
    graph.add_nodes_from(predecessors)
    graph.add_edges_from(
        (source, target) for target, sources in predecessors.items() for source in sources
    )
    for component in nx.strongly_connected_components(graph):
        if len(component) == 1:
            (only,) = component
            if not graph.has_edge(only, only):
                continue
        members = sorted(component)
        cycle = nx.find_cycle(graph.subgraph(members))
        path = " -> ".join([str(edge[0]) for edge in cycle] + [str(cycle[0][0])])
        for node_id in members:
            issues.append(ValidationIssue("cycle", f"cycle: {path}", node_id=node_id))
    return []


class _Ancestry:
    """Upstream tests without quadratic cost: direct predecessors first, then bitsets."""

    def __init__(self, predecessors: dict[str, set[str]], order: list[str]) -> None:
        self._predecessors = predecessors
        self._order = order
        self._bits: dict[str, int] | None = None
        self._index: dict[str, int] = {}

    def is_upstream(self, candidate: str, node_id: str) -> bool:
        if candidate == node_id:
            return False
        if candidate in self._predecessors.get(node_id, ()):
            return True
        if not self._order:  # cyclic graph: fall back to a search
            return candidate in self._search(node_id)
        return bool(self._bits_of(node_id) >> self._index[candidate] & 1)

    def ancestors(self, node_id: str) -> set[str]:
        if not self._order:
            return self._search(node_id)
        bits = self._bits_of(node_id)
        return {other for other, index in self._index.items() if bits >> index & 1}

    def _bits_of(self, node_id: str) -> int:
        if self._bits is None:
            self._index = {node: index for index, node in enumerate(self._order)}
            bits: dict[str, int] = {}
            for node in self._order:
                mask = 0
                for parent in self._predecessors[node]:
                    mask |= bits[parent] | (1 << self._index[parent])
                bits[node] = mask
            self._bits = bits
        return self._bits[node_id]

    def _search(self, node_id: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self._predecessors.get(node_id, ()))
        while stack:
            parent = stack.pop()
            if parent not in seen:
                seen.add(parent)
                stack.extend(self._predecessors.get(parent, ()))
        return seen


def _declared_inputs(start: CompiledNode | None) -> set[str] | None:
    if start is None or start.static_config is None:
        return None
    declared = getattr(start.static_config, "inputs", None)
    if declared is None:
        return None
    return {item.name for item in declared}


def _check_reference(
    node_id: str,
    root: str,
    field_name: str,
    ref: Reference | None,
    id_counts: Counter[str],
    ancestors: _Ancestry,
    variables: dict[str, Any],
    declared_inputs: set[str] | None,
    issues: list[ValidationIssue],
) -> None:
    text = ref.text if ref is not None else root
    if root in id_counts:
        if root == node_id:
            issues.append(
                ValidationIssue(
                    "reference",
                    f"'{text}' refers to the node itself",
                    node_id=node_id,
                    field=field_name,
                )
            )
        elif not ancestors.is_upstream(root, node_id):
            issues.append(
                ValidationIssue(
                    "reference",
                    f"'{text}' refers to node '{root}', which is not upstream of '{node_id}' "
                    "(connect it with an edge)",
                    node_id=node_id,
                    field=field_name,
                )
            )
    elif root == INPUTS_ROOT:
        name = ref.path[0] if ref is not None and ref.path else None
        if name is not None and declared_inputs is not None and name not in declared_inputs:
            issues.append(
                ValidationIssue(
                    "reference",
                    f"'{text}': the start node declares no input '{name}'",
                    node_id=node_id,
                    field=field_name,
                )
            )
    elif root not in variables:
        issues.append(
            ValidationIssue(
                "reference",
                f"'{text}' names no node, input or workflow variable",
                node_id=node_id,
                field=field_name,
            )
        )
