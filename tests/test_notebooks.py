"""Notebooks: the authoring API, compiling notebooks, and definitions back to notebooks.

Everything here runs in this process through the real compiler, marimo's real parser
and the real engine; nothing reaches a model (compiling never runs node work).
"""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import notebooks as af
from engine import Executor, compile_workflow, load_definition
from notebooks._compile import NotebookCompileError, compile_notebook, compile_source
from notebooks._context import Builder, building
from notebooks._marimo_adapter import write_notebook

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ["prompt_engineering.py", "data_science.py", "app.py"]


def _notebook(*cells: str) -> str:
    """A notebook file whose first cell imports the API; each argument is one cell."""
    codes = ["import marimo as mo\nimport notebooks as af", *cells]
    return write_notebook([("_", code, {}) for code in codes], app_options={})


def _line_of(text: str, marker: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if marker in line:
            return number
    raise AssertionError(f"{marker!r} not in the notebook")


def _issues(text: str) -> list[tuple[int, str | None, str]]:
    with pytest.raises(NotebookCompileError) as caught:
        compile_source(text, "nb.py")
    return [(issue.line, issue.cell, issue.message) for issue in caught.value.issues]


def _positions_removed(document: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(document)
    for node in out["nodes"]:
        node.pop("position", None)
    return out


# -- the examples -------------------------------------------------------------------------
@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_compiles_and_survives_notebook_json_notebook_json(name: str) -> None:
    first = compile_notebook(ROOT / "notebooks" / name)
    compile_workflow(first)  # valid for the engine
    assert len(first.nodes) >= 6
    text = af.notebook_from_definition(first)
    second = compile_source(text, "regenerated.py")
    assert af.equivalent(first, second)
    # and once more, notebook -> JSON is stable: equal documents modulo positions
    third = compile_source(af.notebook_from_definition(second), "again.py")
    assert _positions_removed(third.to_dict()) == _positions_removed(second.to_dict())


def test_the_data_science_example_compiles_to_the_expected_graph() -> None:
    definition = compile_notebook(ROOT / "notebooks" / "data_science.py")
    types = {node.id: node.type for node in definition.nodes}
    assert types == {
        "request": "start",
        "sales": "sql",
        "monthly": "sql",
        "growth": "code",
        "summary": "llm",
        "report": "end",
    }
    edges = {(e.source, e.target) for e in definition.edges}
    assert edges == {
        ("request", "sales"),
        ("sales", "monthly"),
        ("monthly", "growth"),
        ("growth", "summary"),
        ("summary", "report"),
    }
    growth = definition.node("growth").config
    assert growth["inputs"] == {"rows": "{{monthly.rows}}"}
    assert growth["code"].startswith("def growth_table(rows):")
    assert "def main(**inputs):" in growth["code"]
    csv = definition.node("sales").config["params"]["path"]
    assert Path(csv).is_absolute() and Path(csv).is_file()
    # left to right, one column per layer
    xs = [definition.node(node_id).position.x for node_id in types]
    assert xs == [0, 280, 560, 840, 1120, 1400]


def test_the_app_example_branches_with_after() -> None:
    definition = compile_notebook(ROOT / "notebooks" / "app.py")
    handles = {(e.source, e.source_handle, e.target) for e in definition.edges}
    assert ("route", "child", "simple") in handles
    assert ("route", "else", "plain") in handles
    assert ("request", "out", "route") in handles
    # both branches feed the aggregate, which feeds the end
    assert {("simple", "out", "answer"), ("plain", "out", "answer")} <= handles
    assert ("answer", "out", "result") in handles
    layer = {node.id: node.position.x for node in definition.nodes}
    assert layer["simple"] == layer["plain"] == 560
    ys = {definition.node("simple").position.y, definition.node("plain").position.y}
    assert len(ys) == 2  # spread within the layer


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.json")), ids=lambda p: p.name)
def test_every_json_example_becomes_a_notebook_that_compiles_back(path: Path) -> None:
    original = load_definition(path)
    text = af.notebook_from_definition(original, source=str(path))
    assert "import notebooks as af" in text
    back = compile_source(text, "from_json.py")
    assert af.equivalent(original, back)
    assert af.normalize(back)["settings"] == af.normalize(original)["settings"]


# -- a definition drawn in the studio -----------------------------------------------------
def _studio_definition() -> dict[str, Any]:
    def node(node_id: str, node_type: str, config: dict[str, Any], **more: Any) -> dict[str, Any]:
        data = {"label": more.pop("label", node_id.upper()), "config": config}
        data.update(more.pop("data", {}))
        return {
            "id": node_id,
            "type": node_type,
            "position": {"x": 13, "y": 7},
            "data": data,
            **more,
        }

    body = {
        "version": "1.0.0",
        "nodes": [
            node("start", "start", {"inputs": [{"name": "item", "type": "any", "required": True}]}),
            node("shout", "template", {"template": "{{ start.item | upper }}!"}),
            node("end", "end", {"outputs": {"loud": "{{shout.text}}"}}),
        ],
        "edges": [
            {"id": "b1", "source": "start", "sourceHandle": "out", "target": "shout"},
            {"id": "b2", "source": "shout", "sourceHandle": "out", "target": "end"},
        ],
    }
    nodes = [
        node(
            "start-1",
            "start",
            {
                "inputs": [
                    {"name": "text", "type": "string", "required": True},
                    {"name": "label", "type": "string", "default": "x"},  # not a kwarg: literal
                ]
            },
            width=150,
            selected=False,
        ),
        node(
            "llm_1",
            "llm",
            {
                "model": "ollama/fake",
                "systemPrompt": "{{start-1.text}}",
                "userPrompt": "Summarise: {{ start-1.text }} for {{region}}",
                "maxTokens": 64,
                "timeoutMs": 5000,
            },
            data={
                "description": "the summary",
                "inputs": [{"id": "in", "type": "string"}],
                "outputs": [{"id": "text", "type": "string"}],
            },
        ),
        node(
            "class",
            "condition",
            {
                "cases": [
                    {
                        "id": "long",
                        "conditions": [{"left": "{{llm_1.text}}", "operator": "is_not_empty"}],
                    },
                    {
                        "id": "otherwise",
                        "logic": "or",
                        "conditions": [
                            {"left": "{{start-1.text}}", "operator": "contains", "right": "x"},
                            {"left": 1, "operator": "==", "right": 2},
                        ],
                    },
                ]
            },
        ),
        node("a", "template", {"template": "A {{ llm_1.text }}"}),
        node("b", "template", {"template": "B"}),
        node("2nd", "template", {"template": "C"}, label=""),
        node("join", "aggregate", {"values": ["{{a.text}}", "{{b.text}}", "{{2nd.text}}"]}),
        node(
            "_private",
            "code",
            {
                "code": "def main(x, label):\n    return {'y': [x, label]}\n",
                "inputs": {"x": "{{join.value}}", "label": "z"},
                "errorHandling": "continue",
            },
        ),
        node(
            "loop-1",
            "loop",
            {"items": ["a", "b"], "body": body, "concurrency": 2, "context": {}},
        ),
        node("sql", "sql", {"query": "select 1 as n", "tables": {}}),
        node("req", "http", {"url": "http://127.0.0.1:9/x", "method": "POST", "body": {"q": 1}}),
        node("a b", "template", {"template": "unreferenced leaf"}),
        node(
            "done",
            "end",
            {
                "outputs": {
                    "out": "{{join.value}}",
                    "y": "{{_private.y}}",
                    "items": "{{loop-1.results}}",
                    "rows": "{{sql.rows}}",
                }
            },
        ),
    ]

    def edge(source: str, target: str, handle: str | None = "out", **more: Any) -> dict[str, Any]:
        return {
            "id": f"reactflow__edge-{source}{handle}-{target}",
            "source": source,
            "sourceHandle": handle,
            "target": target,
            "targetHandle": more.pop("target_handle", None),
            **more,
        }

    edges = [
        edge("start-1", "llm_1", None),
        edge("llm_1", "class"),
        edge("class", "a", "long", label="yes", animated=True, type="smoothstep"),
        edge("class", "b", "otherwise"),
        edge("class", "2nd", "else", data={"note": "fallback"}),
        edge("a", "join"),
        edge("b", "join"),
        edge("2nd", "join"),
        edge("join", "_private"),
        edge("start-1", "loop-1"),
        edge("start-1", "sql"),
        edge("start-1", "req"),
        edge("start-1", "a b"),
        edge("_private", "done"),
        edge("loop-1", "done"),
        edge("sql", "done"),
        edge("start-1", "done"),  # redundant: must be kept as an explicit edge
        edge("req", "done", "error"),
    ]
    return {
        "version": "1.2.0",
        "nodes": nodes,
        "edges": edges,
        "settings": {
            "timeout": 30,
            "errorHandling": "fallback",
            "maxConcurrency": 4,
            "variables": {"region": "eu"},
        },
    }


def test_any_studio_definition_round_trips_with_its_ids_handles_and_extras() -> None:
    original = load_definition(_studio_definition())
    compile_workflow(original)
    text = af.notebook_from_definition(original)
    back = compile_source(text, "studio.py")
    assert af.equivalent(original, back), json.dumps(
        [af.normalize(original), af.normalize(back)], indent=1
    )[:3000]
    # ids that are not Python names keep their id through a variable of their own
    assert 'id="start-1"' in text and 'id="2nd"' in text and 'id="_private"' in text
    assert 'id="a b"' in text
    # a case called "otherwise" stays a case; the else branch is written as ["else"]
    assert 'class_node["else"]' in text
    assert "class_node.otherwise" in text
    # the body became a function, and the redundant edge an explicit after=
    assert "def _loop_1_body():" in text
    assert back.version == "1.2.0"
    edge_extras = [e for e in back.edges if e.source_handle == "long"]
    assert edge_extras[0].label == "yes" and edge_extras[0].model_extra == {
        "animated": True,
        "type": "smoothstep",
    }


def test_a_changed_node_is_not_equivalent() -> None:
    original = load_definition(_studio_definition())
    changed = copy.deepcopy(_studio_definition())
    changed["nodes"][1]["data"]["config"]["maxTokens"] = 65
    assert not af.equivalent(original, load_definition(changed))
    rewired = copy.deepcopy(_studio_definition())
    rewired["edges"][2]["sourceHandle"] = "otherwise"
    assert not af.equivalent(original, load_definition(rewired))


def test_an_invalid_definition_is_refused() -> None:
    from engine import WorkflowValidationError

    broken = _studio_definition()
    broken["edges"].append({"id": "x", "source": "done", "target": "start-1"})
    with pytest.raises(WorkflowValidationError):
        af.notebook_from_definition(broken)


# -- the authoring API ----------------------------------------------------------------------
class _Collect(Builder):
    kind = "compile"


def test_references_format_as_the_engine_reads_them() -> None:
    with building(_Collect()) as builder:
        topic = af.start(topic=str, n=af.input(int, default=3, description="how many"))
        outline = af.llm(model="ollama/m", user_prompt=f"Outline {topic.topic} in {topic.n} parts")
        rows = af.sql("select * from t", t=outline.items[0]["rows"], max_rows=5)
        last = af.end(summary=outline.text, all=outline, rows=[rows.rows, "x"])
    assert builder.nodes.keys() == {"topic", "outline", "rows", "last"}
    assert topic._spec.config == {
        "inputs": [
            {"name": "topic", "type": "string", "required": True},
            {"name": "n", "type": "integer", "default": 3, "description": "how many"},
        ]
    }
    assert outline._spec.config["userPrompt"] == "Outline {{topic.topic}} in {{topic.n}} parts"
    assert rows._spec.config == {
        "query": "select * from t",
        "tables": {"t": "{{outline.items.0.rows}}"},
        "maxRows": 5,
    }
    assert last._spec.config["outputs"] == {
        "summary": "{{outline.text}}",
        "all": "{{outline}}",
        "rows": ["{{rows.rows}}", "x"],
    }
    assert str(outline.text) == "{{outline.text}}"
    assert outline.text + "!" == "{{outline.text}}!"


@pytest.mark.parametrize(
    ("action", "fragment"),
    [
        (lambda ref: bool(ref), "truth test"),
        (lambda ref: len(ref), "len()"),
        (lambda ref: ref.upper(), "a call"),
        (lambda ref: ref > 3, "'>'"),
        (lambda ref: list(ref), "iteration"),
        (lambda ref: f"{ref:>5}", "format"),
        (lambda ref: ref + 1, "'+'"),
    ],
)
def test_computing_on_a_reference_is_refused_with_a_reason(action: Any, fragment: str) -> None:
    with building(_Collect()):
        topic = af.start(topic=str)
        with pytest.raises(af.AuthoringError) as caught:
            action(topic.topic)
    assert fragment in str(caught.value)
    assert "af.code" in str(caught.value)


def test_bad_helper_use_is_reported() -> None:
    with building(_Collect()):
        topic = af.start(topic=str)
        with pytest.raises(af.AuthoringError, match="assigned to a variable"):
            af.llm(model="ollama/m", user_prompt="x")
        with pytest.raises(af.AuthoringError, match="unexpected keyword"):
            _ = af.llm(model="ollama/m", user_prompt="x", colour="red")
        with pytest.raises(af.AuthoringError, match="not an input type"):
            _ = af.start(x=complex)
        with pytest.raises(af.AuthoringError, match="cannot go into a workflow definition"):
            _ = af.llm(model="ollama/m", user_prompt=object())
        with pytest.raises(af.AuthoringError, match="JSON"):
            _ = af.llm(model="ollama/m", user_prompt="x", temperature=float("nan"))
        with pytest.raises(af.AuthoringError, match="unknown operator"):
            af.when(topic.topic, "~=", 1)
        with pytest.raises(af.AuthoringError, match="after="):
            _ = af.llm(model="ollama/m", user_prompt="x", after=topic.topic.deeper)
        with pytest.raises(af.AuthoringError, match="only known when the notebook runs"):
            af.value(topic.topic)


def test_conditions_branches_and_edges() -> None:
    with building(_Collect()) as builder:
        x = af.start(n=int)
        route = af.condition(
            cases={
                "big": af.when(x.n, ">", 10),
                "odd": af.any_of(af.when(x.n, "==", 1), af.when(x.n, "==", 3)),
                "empty": af.all_of(af.when(x.n, "is_empty")),
            }
        )
        high = af.template("high", after=route.big)
        low = af.template("low", after=af.edge(route.otherwise, label="no"))
        joined = af.aggregate(high.text, low.text)
    assert joined._spec.config == {"values": ["{{high.text}}", "{{low.text}}"]}
    assert route._spec.config["cases"] == [
        {"id": "big", "conditions": [{"left": "{{x.n}}", "operator": ">", "right": 10}]},
        {
            "id": "odd",
            "logic": "or",
            "conditions": [
                {"left": "{{x.n}}", "operator": "==", "right": 1},
                {"left": "{{x.n}}", "operator": "==", "right": 3},
            ],
        },
        {
            "id": "empty",
            "logic": "and",
            "conditions": [{"left": "{{x.n}}", "operator": "is_empty"}],
        },
    ]
    from notebooks._build import build_definition

    document, issues = build_definition(builder.specs())
    assert issues == []
    edges = {(e["source"], e["sourceHandle"], e["target"]) for e in document["edges"]}
    assert edges == {
        ("x", "out", "route"),
        ("route", "big", "high"),
        ("route", "else", "low"),
        ("high", "out", "joined"),
        ("low", "out", "joined"),
    }
    assert [e.get("label") for e in document["edges"] if e["target"] == "low"] == ["no"]
    compile_workflow(load_definition(document))


def test_reading_a_condition_without_a_branch_is_an_error() -> None:
    from notebooks._build import build_definition

    with building(_Collect()) as builder:
        x = af.start(n=int)
        route = af.condition(cases={"big": af.when(x.n, ">", 10)})
        af_end = af.end(branch=route.branch)
    del af_end
    _, issues = build_definition(builder.specs())
    assert issues and "on none of its branches" in issues[0][1]


async def test_a_loop_body_function_runs_through_the_engine() -> None:
    def shout(item, index, suffix="!"):
        loud = af.template("{{ start.item | upper }}{{ start.suffix }}", after=None)
        return {"loud": loud.text, "index": index}

    with building(_Collect()) as builder:
        x = af.start(words=list)
        each = af.loop(x.words, shout, context={"suffix": "?"}, concurrency=2)
        done = af.end(results=each.results)
    del done
    body = each._spec.config["body"]
    assert [n["id"] for n in body["nodes"]] == ["start", "loud", "end"]
    assert body["nodes"][0]["data"]["config"]["inputs"] == [
        {"name": "item", "type": "any", "required": True},
        {"name": "index", "type": "any", "required": True},
        {"name": "suffix", "type": "any", "default": "!"},
    ]
    from notebooks._build import build_definition

    document, issues = build_definition(builder.specs())
    assert not issues
    result = await Executor().run(load_definition(document), {"words": ["a", "b"]})
    assert result.status == "succeeded", result.error
    assert result.outputs["results"] == [
        {"loud": "A?", "index": 0},
        {"loud": "B?", "index": 1},
    ]


def test_a_loop_body_cannot_read_the_outer_notebook() -> None:
    with building(_Collect()):
        x = af.start(words=list, topic=str)

        def body(item):
            said = af.template("x", after=x)
            return {"said": said.text}

        with pytest.raises(af.AuthoringError, match="loop body 'body'"):
            each = af.loop(x.words, body)
            del each


def test_code_functions_become_standalone_sources() -> None:
    def double(x):
        return x * 2

    with building(_Collect()):
        x = af.start(n=int)
        twice = af.code(double, x=x.n)
    code = twice._spec.config["code"]
    assert code.startswith("def double(x):\n    return x * 2\n")
    namespace: dict[str, Any] = {}
    exec(code, namespace)
    assert namespace["main"](x=4) == {"result": 8}
    from notebooks._codefn import function_form

    assert function_form(code) == ("double", "def double(x):\n    return x * 2\n")
    assert function_form("import re\n\ndef main(x):\n    return {}\n") is None


def test_model_output_cannot_inject_html_into_the_page() -> None:
    from notebooks._display import safe_markdown

    shown = af.view("**ok** <img src=x onerror=alert(1)> `a<b`\n```\n<div>\n```").text
    assert "<img" not in shown and "&lt;img" in shown
    assert "<strong>ok</strong>" in shown
    assert safe_markdown("`<b>` and <b>") == "`<b>` and &lt;b>"


# -- compiling notebooks: errors with cell and line ------------------------------------------
def test_a_cell_mixing_nodes_with_computation_is_reported() -> None:
    text = _notebook(
        "topic = af.start(topic=str)",
        'outline = af.llm(model="ollama/m", user_prompt=f"Outline {topic.topic}")\n'
        "words = len(af.value(outline.text))  # <-mix",
    )
    [(line, cell, message)] = _issues(text)
    assert line == _line_of(text, "<-mix")
    assert cell == "cell #3"
    assert "computes on node output" in message and "af.value" in message


def test_symbolic_uses_in_node_cells_are_fine() -> None:
    text = _notebook(
        "topic = af.start(topic=str)",
        'prompt = f"Outline {topic.topic}"\n'
        'outline = af.llm(model="ollama/m", user_prompt=prompt)\n'
        "both = [topic, outline.text]\n"
        "mo.hstack([topic, outline])",
        "af.value(outline)  # a plain cell: ignored by compile",
    )
    definition = compile_source(text, "nb.py")
    assert definition.node("outline").config["userPrompt"] == "Outline {{topic.topic}}"


@pytest.mark.parametrize(
    ("cells", "marker", "fragment"),
    [
        (
            ['for m in ["a", "b"]:  # <-\n    x = af.llm(model="ollama/" + m, user_prompt="hi")'],
            "<-",
            "top level of a cell",
        ),
        (
            ['a = af.llm(model="ollama/m", user_prompt="x")', "a = 3  # <-"],
            "<-",
            "is also defined by cell #2",
        ),
        (
            [
                'a = af.llm(model="ollama/m", user_prompt="x")\n'
                'a = af.llm(model="ollama/n", user_prompt="y")  # <-'
            ],
            "<-",
            "node id 'a' is defined twice",
        ),
        (
            ['af.llm(model="ollama/m", user_prompt="x")  # <-'],
            "<-",
            "must be assigned to a variable",
        ),
        (
            [
                'a = af.template("{{ b.text }}")  # <-\n'
                'b = af.llm(model="ollama/m", user_prompt="{{a.text}}")'
            ],
            "<-",
            "reference cycle: 'a' reads 'b', 'b' reads 'a'",
        ),
        (
            ["import json\ndef f(x):\n    return json.dumps(x)\nc = af.code(f, x=1)  # <-"],
            "<-",
            "uses 'json' from the notebook",
        ),
        (
            ['a = af.llm(model="ollama/m", user_prompt="x", temperature=9)  # <-'],
            "<-",
            "temperature",
        ),
        (["x = undefined_name + 1  # <-\ny = af.template(str(x))"], "<-", "NameError"),
        (['x = af.llm(model="ollama/m", user_prompt="x"  # <-'], "<-", "syntax error"),
    ],
    ids=[
        "loop",
        "defined-twice",
        "node-twice",
        "unassigned",
        "cycle",
        "code-closure",
        "invalid-config",
        "python-error",
        "syntax",
    ],
)
def test_compile_errors_name_the_cell_and_line(
    cells: list[str], marker: str, fragment: str
) -> None:
    text = _notebook(*cells)
    issues = _issues(text)
    line = _line_of(text, marker)
    here = [(cell, message) for found_line, cell, message in issues if found_line == line]
    assert any(fragment in message for _, message in here), (issues, line)
    assert all(cell is not None and cell.startswith("cell #") for cell, _ in here)


def test_cells_that_read_each_other_are_a_cycle() -> None:
    text = _notebook(
        'draft = af.llm(model="ollama/m", user_prompt=f"{critique.text}")  # <-draft',
        'critique = af.llm(model="ollama/m", user_prompt=f"{draft.text}")',
    )
    [(line, _, message)] = _issues(text)
    assert line == _line_of(text, "<-draft")
    assert "cells form a cycle" in message and "(draft)" in message and "(critique)" in message


def test_a_notebook_without_nodes_or_not_a_notebook_is_reported(tmp_path: Path) -> None:
    assert "declares no nodes" in _issues(_notebook("x = 1"))[0][2]
    plain = tmp_path / "plain.py"
    plain.write_text("print('hello')\n")
    with pytest.raises(NotebookCompileError, match="not a marimo notebook"):
        compile_notebook(plain)


def test_compiling_never_does_node_work(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.05)
    port = listener.getsockname()[1]
    accepted: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    marker = tmp_path / "code-ran"
    text = _notebook(
        "topic = af.start(topic=af.input(str, default='x'))",
        f'ask = af.llm(model="ollama/x", base_url="http://127.0.0.1:{port}/v1", '
        "user_prompt=topic.topic)",
        f'get = af.http(url="http://127.0.0.1:{port}/", after=ask)',
        "def touch(path):\n    open(path, 'w').close()\n    return {}\n"
        f"work = af.code(touch, path={str(marker)!r}, after=get)",
    )
    try:
        started = time.perf_counter()
        definition = compile_source(text, "no_work.py")
        elapsed = time.perf_counter() - started
        time.sleep(0.1)
    finally:
        stop.set()
        thread.join()
        listener.close()
    assert [node.type for node in definition.nodes] == ["start", "llm", "http", "code"]
    assert accepted == []
    assert not marker.exists()
    assert elapsed < 5
