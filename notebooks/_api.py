"""The authoring helpers: one per node type, plus inputs, branches, edges and settings.

Every helper takes the node's config fields as keyword arguments in snake_case
(``user_prompt`` is written ``userPrompt``), the node-level policy (``timeout_ms``,
``max_retries``, ``error_handling``, ``fallback``, ``cache``) and these options:

- ``id``: the node id (default: the variable the call is assigned to);
- ``label``, ``description``: shown on the canvas (label default: the id);
- ``after``: explicit incoming edges, e.g. ``after=route.big`` (a condition branch),
  ``after=route.otherwise``, ``after=[a, b]``, ``after=af.edge(x, label="retry")``;
- ``data`` / ``extra``: further keys of the node's ``data`` / of the node itself.

Values may be node handles and references (``outline.text``), also inside f-strings,
lists and dicts: they become ``{{outline.text}}`` in the definition.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic.alias_generators import to_camel

from notebooks._context import Builder, Caller, building, caller, current, require_id
from notebooks._handles import (
    OPERATORS,
    UNSET,
    AuthoringError,
    CaseGroup,
    EdgeSpec,
    InputSpec,
    NodeHandle,
    NodeSpec,
    Ref,
    When,
    to_plain,
)

if TYPE_CHECKING:
    from engine.definition import WorkflowDefinition
    from notebooks._live import RunView

__all__ = [
    "aggregate",
    "all_of",
    "any_of",
    "code",
    "condition",
    "edge",
    "end",
    "http",
    "input_",
    "llm",
    "loop",
    "node",
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
]

#: Options every helper takes besides config fields.
META = ("id", "label", "description", "after", "data", "extra")
#: Node-level policy fields (``BaseNodeConfig``), written as config.
POLICY = ("timeout_ms", "max_retries", "error_handling", "fallback", "cache")
RESERVED = frozenset(META + POLICY)


# -- the core ---------------------------------------------------------------------------
def _add(
    helper: str,
    node_type: str,
    found: Caller,
    fields: Mapping[str, Any],
    options: dict[str, Any],
    *,
    live_inputs: dict[str, Any] | None = None,
) -> NodeHandle:
    """Make the spec, hand it to the current builder (which may run it), return the handle.

    ``fields`` maps config keys (camelCase) to values (handles and references allowed).
    """
    builder = current()
    unknown = [key for key in options if key not in RESERVED]
    if unknown:
        raise AuthoringError(
            f"af.{helper}() got unexpected keyword argument(s): {', '.join(unknown)}"
        )
    node_id = require_id(options.get("id"), found, helper)
    config: dict[str, Any] = {}
    for key, value in fields.items():
        if value is not UNSET:
            config[key] = to_plain(value, builder, key)
    for key in POLICY:
        if key in options:
            config[to_camel(key)] = to_plain(options[key], builder, to_camel(key))
    spec = NodeSpec(
        id=node_id,
        type=node_type,
        config=config,
        label=_text_option(options, "label", helper),
        description=_text_option(options, "description", helper),
        after=_after(options.get("after"), builder, helper),
        data=_mapping_option(options, "data", builder, ("label", "description", "config")),
        extra=_mapping_option(options, "extra", builder, ("id", "type", "position", "data")),
        where=found.where,
        notebook_file=found.notebook_file,
        live_inputs=live_inputs,
    )
    return builder.add(spec)


def _split(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(options, free entries) of a helper whose ``**kwargs`` are also data."""
    options = {key: value for key, value in kwargs.items() if key in RESERVED}
    free = {key: value for key, value in kwargs.items() if key not in RESERVED}
    return options, free


def _text_option(options: dict[str, Any], key: str, helper: str) -> str | None:
    value = options.get(key)
    if value is not None and not isinstance(value, str):
        raise AuthoringError(f"af.{helper}({key}=...) must be a string")
    return value


def _mapping_option(
    options: dict[str, Any], key: str, builder: Builder, taken: tuple[str, ...]
) -> dict[str, Any]:
    value = options.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise AuthoringError(f"{key}= must be a dict")
    clash = [name for name in value if name in taken]
    if clash:
        raise AuthoringError(f"{key}= cannot set {', '.join(clash)} (use the helper's own options)")
    plain = to_plain(value, builder, key)
    assert isinstance(plain, dict)
    return plain


def _after(value: Any, builder: Builder, helper: str) -> list[EdgeSpec]:
    if value is None:
        return []
    items = list(value) if isinstance(value, list | tuple) else [value]
    edges = []
    for item in items:
        if isinstance(item, NodeHandle):
            edge_spec = EdgeSpec(item, "out")
        elif isinstance(item, Ref):
            if len(item._path) != 1:
                raise AuthoringError(
                    f"after={item!s}: name a node (after=x) or one of its output handles "
                    "(after=route.big, after=x.error)"
                )
            edge_spec = EdgeSpec(item._node, item._path[0])
        elif isinstance(item, EdgeSpec):
            edge_spec = item
        else:
            raise AuthoringError(
                f"af.{helper}(after=...) takes nodes, branches (route.case) or af.edge(...), "
                f"not {type(item).__name__}"
            )
        if edge_spec.source._owner is not builder:
            raise AuthoringError(
                f"after={edge_spec.source!s}: that node belongs to "
                f"{edge_spec.source._owner.describe()}, not to {builder.describe()}"
            )
        edges.append(edge_spec)
    return edges


# -- start and end ----------------------------------------------------------------------
def input_(
    type: Any = UNSET,
    *,
    default: Any = UNSET,
    required: Any = UNSET,
    description: Any = UNSET,
    example: Any = UNSET,
) -> InputSpec:
    """A start input: ``af.input(int, default=3)``. ``example`` is used by notebook runs only."""
    return InputSpec(type, default, required, description, example)


def start(**inputs: Any) -> NodeHandle:
    """The entry node: ``topic = af.start(topic=str, n=af.input(int, default=3))``.

    A bare type declares a required input; ``af.input(...)`` an optional one (unless
    ``required=True``). Notebook runs use each input's ``example``, else its default.
    """
    found = caller()
    options: dict[str, Any] = {
        key: inputs.pop(key)
        for key in ("id", "label", "description", "data", "extra")
        if key in inputs
    }
    builder = current()
    declarations = []
    live: dict[str, Any] = {}
    for name, spec in inputs.items():
        if isinstance(spec, InputSpec):
            declarations.append(spec.declaration(name, builder))
            value = spec.live_value()
            if value is not UNSET:
                live[name] = value
        else:
            declarations.append(
                {
                    "name": name,
                    "type": _port_type(spec, name),
                    "required": True,
                }
            )
    return _add("start", "start", found, {"inputs": declarations}, options, live_inputs=live)


def _port_type(spec: Any, name: str) -> str:
    from notebooks._handles import port_type

    return port_type(spec, where=f"af.start({name}=...)")


def end(**outputs: Any) -> NodeHandle:
    """The exit node: ``af.end(summary=outline.text)``; its outputs are the run's."""
    found = caller()
    options, free = _split(outputs)
    return _add("end", "end", found, {"outputs": free}, options)


# -- work nodes -------------------------------------------------------------------------
def llm(
    user_prompt: Any = UNSET,
    *,
    model: Any = UNSET,
    system_prompt: Any = UNSET,
    temperature: Any = UNSET,
    max_tokens: Any = UNSET,
    stream: Any = UNSET,
    base_url: Any = UNSET,
    **options: Any,
) -> NodeHandle:
    """Ask a language model: ``af.llm(model="ollama/llama3.2", user_prompt=f"... {x.text}")``."""
    fields = {
        "model": model,
        "systemPrompt": system_prompt,
        "userPrompt": user_prompt,
        "temperature": temperature,
        "maxTokens": max_tokens,
        "stream": stream,
        "baseUrl": base_url,
    }
    return _add("llm", "llm", caller(), fields, options)


def template(template: Any, **options: Any) -> NodeHandle:
    """Render Jinja2 (sandboxed) over upstream outputs: ``af.template("{{ a.text }}", after=a)``."""
    return _add("template", "template", caller(), {"template": template}, options)


def http(
    url: Any = UNSET,
    *,
    method: Any = UNSET,
    headers: Any = UNSET,
    query: Any = UNSET,
    body: Any = UNSET,
    **options: Any,
) -> NodeHandle:
    """One HTTP request: ``af.http("https://...", method="POST", body={...})``."""
    fields = {"method": method, "url": url, "headers": headers, "query": query, "body": body}
    return _add("http", "http", caller(), fields, options)


def sql(
    query: Any,
    *,
    tables: Any = UNSET,
    params: Any = UNSET,
    max_rows: Any = UNSET,
    **tables_and_options: Any,
) -> NodeHandle:
    """DuckDB SQL; keyword arguments are tables: ``af.sql("select * from t", t=data.rows)``."""
    found = caller()
    options, free = _split(tables_and_options)
    if free:
        if tables is not UNSET and not isinstance(tables, Mapping):
            raise AuthoringError("af.sql(tables=...) must be a dict")
        tables = {**(tables or {}), **free}
    fields = {"query": query, "tables": tables, "params": params, "maxRows": max_rows}
    return _add("sql", "sql", found, fields, options)


def code(
    fn: Callable[..., Any] | str,
    *,
    inputs: Any = UNSET,
    memory_mb: Any = UNSET,
    **inputs_and_options: Any,
) -> NodeHandle:
    """Python in a separate process: ``af.code(clean, rows=data.rows)``.

    ``fn`` is a plain function (its source becomes the node's code, called with the
    inputs as keyword arguments) or the source text of a module defining ``main``.
    """
    from notebooks._codefn import source_of

    found = caller()
    options, free = _split(inputs_and_options)
    if free:
        if inputs is not UNSET and not isinstance(inputs, Mapping):
            raise AuthoringError("af.code(inputs=...) must be a dict")
        inputs = {**(inputs or {}), **free}
    text = fn if isinstance(fn, str) else source_of(fn)
    return _add(
        "code", "code", found, {"code": text, "inputs": inputs, "memoryMb": memory_mb}, options
    )


def when(left: Any, operator: str, right: Any = UNSET) -> When:
    """One comparison for a condition case: ``af.when(x.n, ">", 10)``."""
    if operator not in OPERATORS:
        raise AuthoringError(
            f"af.when(): unknown operator {operator!r}; use one of {', '.join(OPERATORS)}"
        )
    return When(left, operator, right)


def all_of(*conditions: When) -> CaseGroup:
    """A case that holds when every comparison does (logic "and")."""
    return CaseGroup("and", _whens(conditions, "all_of"))


def any_of(*conditions: When) -> CaseGroup:
    """A case that holds when any comparison does (logic "or")."""
    return CaseGroup("or", _whens(conditions, "any_of"))


def _whens(conditions: tuple[Any, ...], helper: str) -> tuple[When, ...]:
    if not conditions or not all(isinstance(item, When) for item in conditions):
        raise AuthoringError(f"af.{helper}() takes one or more af.when(...)")
    return conditions


def condition(cases: Any, **options: Any) -> NodeHandle:
    """Branches: ``route = af.condition(cases={"big": af.when(x.n, ">", 10)})``.

    Cases are tried in order; the first that holds is taken, else ``otherwise``. Put a
    node on a branch with ``after=route.big`` or ``after=route.otherwise``.
    """
    found = caller()
    builder = current()
    if isinstance(cases, Mapping):
        plain = []
        for case_id, case in cases.items():
            where = f"cases.{case_id}"
            if isinstance(case, When):
                plain.append({"id": case_id, "conditions": [case.comparison(builder, where)]})
            elif isinstance(case, CaseGroup):
                plain.append(
                    {
                        "id": case_id,
                        "logic": case.logic,
                        "conditions": [
                            item.comparison(builder, f"{where}.{index}")
                            for index, item in enumerate(case.conditions)
                        ],
                    }
                )
            else:
                raise AuthoringError(
                    f"af.condition(cases={{{case_id!r}: ...}}) takes af.when(...), "
                    "af.all_of(...) or af.any_of(...)"
                )
        value: Any = plain
    elif isinstance(cases, list | tuple):
        value = list(cases)
    else:
        raise AuthoringError("af.condition(cases=...) takes a dict {case id: af.when(...)}")
    return _add("condition", "condition", found, {"cases": value}, options)


def loop(
    items: Any,
    body: Callable[..., Any] | Mapping[str, Any],
    *,
    context: Any = UNSET,
    max_iterations: Any = UNSET,
    concurrency: Any = UNSET,
    **options: Any,
) -> NodeHandle:
    """Run a body once per item: ``af.loop(ideas.rows, review, context={"topic": t.topic})``.

    ``body`` is a function that declares the body's nodes with these same helpers. Its
    parameters are the iteration's inputs (``item``, ``index`` and the ``context``
    keys) and the dict it returns is the iteration's result. (A function without
    parameters declares its own ``af.start`` and ``af.end``; a dict is taken as a
    definition as it is.)
    """
    found = caller()
    if callable(body):
        traced: Any = trace_body(body)
    elif isinstance(body, Mapping):
        traced = dict(body)
    else:
        raise AuthoringError("af.loop(body=...) takes a function or a workflow definition dict")
    fields = {
        "items": items,
        "body": traced,
        "context": context,
        "maxIterations": max_iterations,
        "concurrency": concurrency,
    }
    return _add("loop", "loop", found, fields, options)


class _BodyBuilder(Builder):
    kind = "body"

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def describe(self) -> str:
        return f"the loop body '{self.name}'"


def trace_body(fn: Callable[..., Any]) -> dict[str, Any]:
    """The body definition a function declares (its nodes are not run)."""
    from notebooks._build import build_definition

    name = getattr(fn, "__name__", "body")
    builder = _BodyBuilder(name)
    code_object = getattr(fn, "__code__", None)
    where = (code_object.co_filename, code_object.co_firstlineno) if code_object else None
    arguments: dict[str, Any] = {}
    with building(builder):
        parameters = list(inspect.signature(fn).parameters.values())
        if parameters:
            declarations = []
            for parameter in parameters:
                if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                    raise AuthoringError(
                        f"loop body '{name}': name each input (no *args or **kwargs)"
                    )
                declaration: dict[str, Any] = {"name": parameter.name, "type": "any"}
                if parameter.default is parameter.empty:
                    declaration["required"] = True
                else:
                    declaration["default"] = to_plain(parameter.default, builder, parameter.name)
                declarations.append(declaration)
            begin = builder.add(
                NodeSpec(id="start", type="start", config={"inputs": declarations}, where=where)
            )
            arguments = {parameter.name: Ref(begin, (parameter.name,)) for parameter in parameters}
        result = fn(**arguments)
        if isinstance(result, Mapping):
            outputs = to_plain(result, builder, "outputs")
            builder.add(NodeSpec(id="end", type="end", config={"outputs": outputs}, where=where))
        elif result is not None and not isinstance(result, NodeHandle):
            raise AuthoringError(
                f"loop body '{name}' returned {type(result).__name__}: return a dict of "
                "outputs (or declare af.end(...) and return nothing)"
            )
    if builder.issues:
        raise AuthoringError(f"loop body '{name}': {builder.issues[0][1]}")
    document, issues = build_definition(
        builder.specs(), settings=builder.settings, version=builder.version
    )
    if issues:
        node_id, message = issues[0]
        raise AuthoringError(f"loop body '{name}', node '{node_id}': {message}")
    return document


def aggregate(*values: Any, **options: Any) -> NodeHandle:
    """The first non-empty value: ``reply = af.aggregate(urgent.text, normal.text)``."""
    return _add("aggregate", "aggregate", caller(), {"values": list(values)}, options)


def subworkflow(
    workflow_id: Any, *, version: Any = UNSET, inputs: Any = UNSET, **options: Any
) -> NodeHandle:
    """Run a stored workflow: ``af.subworkflow("wf-id", inputs={"x": a.text})``."""
    fields = {"workflowId": workflow_id, "version": version, "inputs": inputs}
    return _add("subworkflow", "subworkflow", caller(), fields, options)


def node(type: str, config: Mapping[str, Any] | None = None, **fields: Any) -> NodeHandle:
    """Any node type: ``af.node("llm", config={"userPrompt": ...})`` or keyword fields."""
    found = caller()
    if not isinstance(type, str) or not type:
        raise AuthoringError("af.node(type, ...): the type must be a non-empty string")
    if config is not None and not isinstance(config, Mapping):
        raise AuthoringError("af.node(config=...) must be a dict")
    options, free = _split(fields)
    merged: dict[str, Any] = dict(config or {})
    for key, value in free.items():
        merged[to_camel(key)] = value
    return _add("node", type, found, merged, options)


# -- edges and settings ---------------------------------------------------------------
def edge(
    source: NodeHandle | Ref,
    *,
    label: str | None = None,
    data: Mapping[str, Any] | None = None,
    target_handle: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> EdgeSpec:
    """An ``after=`` edge with more to say: ``after=af.edge(route.big, label="yes")``."""
    if isinstance(source, NodeHandle):
        handle_source, handle = source, "out"
    elif isinstance(source, Ref) and len(source._path) == 1:
        handle_source, handle = source._node, source._path[0]
    else:
        raise AuthoringError("af.edge() takes a node or one of its handles (route.big)")
    owner = handle_source._owner
    return EdgeSpec(
        handle_source,
        handle,
        label=label,
        data=to_plain(dict(data), owner, "data") if data is not None else None,
        target_handle=target_handle,
        extra=to_plain(dict(extra), owner, "extra") if extra is not None else {},
    )


def settings(
    config: Mapping[str, Any] | None = None, *, version: str | None = None, **fields: Any
) -> None:
    """The workflow's settings: ``af.settings(timeout=60, error_handling="continue")``.

    Fields are those of the definition's ``settings`` (``retry_policy``, ``cache``,
    ``variables``...); ``config`` may give them as the JSON object instead.
    """
    from pydantic import ValidationError

    from engine.definition import WorkflowSettings

    builder = current()
    merged: dict[str, Any] = dict(config or {})
    for key, value in fields.items():
        merged[to_camel(key)] = value
    plain = to_plain(merged, builder, "settings")
    try:
        model = WorkflowSettings.model_validate(plain)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise AuthoringError(f"af.settings(): {where}: {first['msg']}") from None
    builder.set_settings(model.model_dump(by_alias=True, exclude_unset=True, mode="json"), version)


# -- notebook-time helpers --------------------------------------------------------------
def value(target: NodeHandle | Ref) -> Any:
    """The live value of a node's outputs (or one field) in a running notebook."""
    from notebooks._live import live_value

    return live_value(target)


def run_info(target: NodeHandle) -> dict[str, Any]:
    """How a node's last notebook run went: status, durationMs, cached, tokens, model..."""
    from notebooks._live import live_info

    return live_info(target)


def set_live(enabled: bool = True) -> None:
    """Whether node cells run their node as they execute (default: yes).

    Apps that run the whole workflow on a button turn it off in their first cell.
    """
    from notebooks._live import LiveSession

    session = current()
    if isinstance(session, LiveSession):
        session.live = bool(enabled)


def workflow(*targets: NodeHandle) -> WorkflowDefinition:
    """The definition of ``targets`` and everything upstream (default: every node so far)."""
    from notebooks._live import session_workflow

    return session_workflow(current(), targets)


def run(*targets: NodeHandle, inputs: Mapping[str, Any] | None = None) -> RunView:
    """Run ``af.workflow(*targets)`` through the engine (recorded in the store)."""
    from notebooks._live import run_workflow

    return run_workflow(current(), targets, dict(inputs or {}))


def view(value: Any) -> Any:
    """How marimo should show a value from a run: text as markdown (raw HTML disarmed,
    since model output is not trusted), rows as a table, the rest as JSON."""
    from notebooks._display import value_view

    return value_view(value)


def vegalite(spec: Mapping[str, Any]) -> Any:
    """A Vega-Lite chart that marimo draws with its bundled renderer (no network)."""
    from notebooks._display import VegaLite

    return VegaLite(dict(spec))
