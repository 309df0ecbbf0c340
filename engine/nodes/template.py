"""``template``: renders Jinja2 text in a sandbox (no code execution, no attribute tricks).

The context holds every upstream node's outputs by id (also as ``nodes['id']`` for ids
that are not identifiers), the run's ``inputs`` and the workflow variables. Values are
data: a value that looks like a template is rendered as text, never evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable
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

        upstream = {
            node_id: {**outputs, "output": outputs}
            if isinstance(outputs, dict) and "output" not in outputs
            else outputs
            for node_id, outputs in ctx.upstream().items()
        }
        context: dict[str, Any] = {**ctx.settings.variables, **upstream}
        context["nodes"] = upstream
        context["inputs"] = dict(ctx.run_inputs)
        try:
            text = _environment().from_string(config.template).render(context)
        except TemplateError as exc:
            raise NodeError(
                f"template failed: {exc}", node_id=ctx.node_id, field="template"
            ) from None
        return {"text": text}
