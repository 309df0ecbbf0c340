"""Golden files for the one module that touches marimo's internals (notebooks._marimo_adapter).

A marimo upgrade that changes how notebooks are read or written fails here first.
Regenerate the expected files after checking the difference by hand:
``AGENTFLOW_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_notebooks_adapter.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from notebooks._marimo_adapter import (
    NotANotebookError,
    marimo_version,
    read_notebook,
    write_notebook,
)

GOLDEN = Path(__file__).resolve().parent.parent / "notebooks" / "_golden"
UPDATE = os.environ.get("AGENTFLOW_UPDATE_GOLDEN") == "1"

CELLS = [
    ("_", "import marimo as mo\nimport notebooks as af", {}),
    ("topic", 'topic = af.start(topic=af.input(str, default="tides"))\ntopic', {}),
    (
        "outline",
        'outline = af.llm(model="ollama/llama3.2", user_prompt=f"Outline {topic.topic}")',
        {"hide_code": True},
    ),
    ("_", "print(outline)", {}),
]


def _matches(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"


def _as_data(path: str) -> list[dict[str, Any]]:
    notebook = read_notebook(path, (GOLDEN / "adapter_input.py.txt").read_text(encoding="utf-8"))
    return [
        {
            "index": cell.index,
            "name": cell.name,
            "title": cell.title,
            "line": cell.line,
            "lastLine": cell.last_line,
            "code": cell.code,
            "defs": sorted(cell.defs),
            "refs": sorted(cell.refs),
            "setup": cell.setup,
            "syntaxError": list(cell.syntax_error) if cell.syntax_error else None,
            "options": cell.options,
        }
        for cell in notebook.cells
    ]


def test_the_marimo_minor_version_is_the_one_the_goldens_were_made_with() -> None:
    assert marimo_version().startswith("0.25."), "re-check the golden files, then move the pin"


def test_reading_a_notebook_matches_the_golden_cells() -> None:
    cells = _as_data("adapter_input.py")
    _matches("adapter_read.json", json.dumps(cells, indent=2, ensure_ascii=False) + "\n")
    # The facts the compiler relies on, stated outright as well.
    by_name = {cell["name"]: cell for cell in cells if cell["name"] != "_"}
    assert cells[0]["setup"] and cells[0]["defs"] == ["af"]
    assert by_name["topic_cell"]["defs"] == ["topic"]  # _private stays cell-local
    assert by_name["title"]["options"] == {"hide_code": True}
    source = (GOLDEN / "adapter_input.py.txt").read_text(encoding="utf-8").splitlines()
    for cell in cells:
        first = cell["code"].splitlines()[0]
        assert source[cell["line"] - 1].strip() == first.strip(), cell["name"]
    assert cells[-1]["syntaxError"] is not None


def test_writing_cells_matches_the_golden_notebook_and_reads_back() -> None:
    text = write_notebook(CELLS, app_options={"width": "medium"}, header="# golden header")
    _matches("adapter_written.py.txt", text)
    back = read_notebook("written.py", text)
    assert [(cell.name, cell.code) for cell in back.cells] == [(n, c) for n, c, _ in CELLS]
    assert back.cells[2].options == {"hide_code": True}
    assert back.problems == ()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("", "empty"),
        ("print('plain python')\n", "not a marimo notebook"),
        ("import marimo\napp = marimo.App(\n", "syntax error"),
    ],
)
def test_files_that_are_not_notebooks_are_refused(source: str, message: str) -> None:
    with pytest.raises(NotANotebookError) as caught:
        read_notebook("x.py", source)
    assert message in caught.value.message
