"""``condition``: picks a branch by evaluating cases with fixed operators (no ``eval``).

Edges leaving from a case's id (or ``else``) carry that branch; the others are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.definition import Node
from engine.errors import NodeError, ValidationIssue
from engine.nodes.base import BaseNodeConfig, NodeContext, NodeType

if TYPE_CHECKING:
    from engine.nodes.registry import NodeRegistry

Operator = Literal[
    "==",
    "!=",
    ">",
    ">=",
    "<",
    "<=",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "in",
    "not_in",
    "is_empty",
    "is_not_empty",
    "matches",
]
ELSE = "else"


class Comparison(BaseModel):
    model_config = ConfigDict(extra="allow")

    left: Any = None
    operator: Operator
    right: Any = None


class Case(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1)
    logic: Literal["and", "or"] = "and"
    conditions: list[Comparison] = Field(min_length=1)


class ConditionConfig(BaseNodeConfig):
    cases: list[Case] = Field(min_length=1)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _ordered(left: Any, right: Any) -> tuple[Any, Any]:
    if isinstance(left, str) and isinstance(right, str):
        return left, right
    a, b = _number(left), _number(right)
    if a is None or b is None:
        raise TypeError(f"cannot order {type(left).__name__} and {type(right).__name__}")
    return a, b


def _equal(left: Any, right: Any) -> bool:
    if left == right:
        return True
    a, b = _number(left), _number(right)
    return a is not None and b is not None and a == b


def _empty(value: Any) -> bool:
    return value is None or (hasattr(value, "__len__") and len(value) == 0)


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, str):
        return str(item) in container
    if isinstance(container, Mapping | list | tuple):
        return item in container
    raise TypeError(f"'{type(container).__name__}' cannot contain values")


def evaluate(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return _equal(left, right)
    if op == "!=":
        return not _equal(left, right)
    if op in (">", ">=", "<", "<="):
        a, b = _ordered(left, right)
        return bool({">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op])
    if op == "contains":
        return _contains(left, right)
    if op == "not_contains":
        return not _contains(left, right)
    if op == "starts_with":
        return str(left).startswith(str(right))
    if op == "ends_with":
        return str(left).endswith(str(right))
    if op == "in":
        return _contains(right, left)
    if op == "not_in":
        return not _contains(right, left)
    if op == "is_empty":
        return _empty(left)
    if op == "is_not_empty":
        return not _empty(left)
    if op == "matches":
        return re.search(str(right), str(left)) is not None
    raise ValueError(f"unknown operator {op!r}")


class ConditionNode(NodeType[ConditionConfig]):
    type = "condition"
    description = "Take the first case whose conditions hold (else 'else'); other branches skip."
    Config = ConditionConfig
    outputs = {"branch": "the id of the case taken, or 'else'"}

    def output_handles(self, node: Node) -> set[str]:
        cases = node.data.config.get("cases")
        handles = {ELSE}
        if isinstance(cases, list):
            handles.update(
                c["id"] for c in cases if isinstance(c, dict) and isinstance(c.get("id"), str)
            )
        return handles

    def taken_handles(self, outputs: Mapping[str, Any]) -> set[str] | None:
        return {outputs["branch"]}

    def check(
        self, node: Node, config: BaseNodeConfig | None, registry: NodeRegistry
    ) -> Iterable[ValidationIssue]:
        cases = node.data.config.get("cases")
        if not isinstance(cases, list):
            return
        seen: set[str] = set()
        for index, case in enumerate(cases):
            case_id = case.get("id") if isinstance(case, dict) else None
            if case_id in (ELSE, "error"):
                yield ValidationIssue(
                    "config",
                    f"case id '{case_id}' is reserved",
                    node_id=node.id,
                    field=f"cases.{index}.id",
                )
            elif isinstance(case_id, str) and case_id in seen:
                yield ValidationIssue(
                    "config",
                    f"case id '{case_id}' used twice",
                    node_id=node.id,
                    field=f"cases.{index}.id",
                )
            if isinstance(case_id, str):
                seen.add(case_id)

    async def run(self, ctx: NodeContext, config: ConditionConfig) -> dict[str, Any]:
        for case_index, case in enumerate(config.cases):
            results = []
            for cond_index, cond in enumerate(case.conditions):
                try:
                    results.append(evaluate(cond.operator, cond.left, cond.right))
                except (TypeError, re.error) as exc:
                    raise NodeError(
                        f"case '{case.id}' condition {cond_index} ({cond.operator}): {exc}",
                        node_id=ctx.node_id,
                        field=f"cases.{case_index}.conditions.{cond_index}",
                    ) from None
            if (all if case.logic == "and" else any)(results):
                return {"branch": case.id}
        return {"branch": ELSE}
