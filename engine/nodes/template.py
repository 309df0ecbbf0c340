"""``template``: renders Jinja2 text in a sandbox (no code execution, no attribute tricks).

The context holds every upstream node's outputs by id (also as ``nodes['id']`` for ids
that are not identifiers), the run's ``inputs`` and the workflow variables. Values are
data: a value that looks like a template is rendered as text, never evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import Field

from engine.definition import Node
from engine.errors import NodeError, ValidationIssue
from engine.nodes.base import BaseNodeConfig, NodeContext, NodeType

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

    from engine.nodes.registry import NodeRegistry

_SPECIAL = {"nodes", "inputs"}


class TemplateConfig(BaseNodeConfig):
    template: str = Field(description="Jinja2 template text.")


@cache
def _environment() -> SandboxedEnvironment:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
    )


@lru_cache(maxsize=1024)
def _analyse(text: str) -> tuple[str | None, frozenset[str]]:
    """(syntax error or None, names the template reads), parsed once per text."""
    from jinja2 import TemplateSyntaxError, meta

    env = _environment()
    try:
        names = meta.find_undeclared_variables(env.parse(text))
    except TemplateSyntaxError as exc:
        return f"template syntax error at line {exc.lineno}: {exc.message}", frozenset()
    return None, frozenset(n for n in names if n not in env.globals and n not in _SPECIAL)


class _WithOutputNamespace(Mapping[str, Any]):
    """Upstream outputs where ``x.output.field`` (the seed's form) also works."""

    def __init__(self, upstream: Mapping[str, Any]) -> None:
        self._upstream = upstream

    def __getitem__(self, key: str) -> Any:
        outputs = self._upstream[key]
        if isinstance(outputs, dict) and "output" not in outputs:
            return {**outputs, "output": outputs}
        return outputs

    def __iter__(self) -> Iterator[str]:
        return iter(self._upstream)

    def __len__(self) -> int:
        return len(self._upstream)


class TemplateNode(NodeType[TemplateConfig]):
    type = "template"
    description = "Render a Jinja2 template (sandboxed) over upstream outputs and inputs."
    Config = TemplateConfig
    outputs = {"text": "the rendered text"}
    raw_fields = frozenset({"template"})
    reads_upstream = True

    def check(
        self, node: Node, config: BaseNodeConfig | None, registry: NodeRegistry
    ) -> Iterable[ValidationIssue]:
        text = node.data.config.get("template")
        if isinstance(text, str):
            error, _ = _analyse(text)
            if error:
                yield ValidationIssue("config", error, node_id=node.id, field="template")

    def extra_references(self, node: Node) -> Iterable[tuple[str, str]]:
        text = node.data.config.get("template")
        if isinstance(text, str):
            for name in sorted(_analyse(text)[1]):
                yield name, "template"

    async def run(self, ctx: NodeContext, config: TemplateConfig) -> dict[str, Any]:
        from jinja2 import TemplateError

        names = _analyse(config.template)[1]
        upstream = _WithOutputNamespace(ctx.upstream)
        context: dict[str, Any] = dict(ctx.settings.variables)
        for name in names:  # only what the template reads: no copy of the whole run
            if name in ctx.upstream:
                context[name] = upstream[name]
        context["nodes"] = upstream
        context["inputs"] = dict(ctx.run_inputs)
        try:
            text = _environment().from_string(config.template).render(context)
        except TemplateError as exc:
            raise NodeError(
                f"template failed: {exc}", node_id=ctx.node_id, field="template"
            ) from None
        return {"text": text}
