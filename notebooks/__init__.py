"""Author AgentFlow workflows as reactive marimo cells.

In a marimo notebook::

    import notebooks as af

    topic = af.start(topic=af.input(str, default="tides"))
    outline = af.llm(model="ollama/llama3.2", user_prompt=f"Outline {topic.topic}")
    summary = af.end(summary=outline.text)

Each cell's node runs through the shared engine when the cell runs (cached, recorded in
the store); ``agentflow compile notebook.py`` turns the notebook into the canonical
definition without running anything, and ``agentflow notebook wf.json`` goes back.

Importing this package is cheap (the CLI imports it to register its commands): each
name is loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from notebooks._api import (
        aggregate,
        all_of,
        any_of,
        code,
        condition,
        edge,
        end,
        http,
        llm,
        loop,
        node,
        run,
        run_info,
        set_live,
        settings,
        sql,
        start,
        subworkflow,
        template,
        value,
        vegalite,
        view,
        when,
        workflow,
    )
    from notebooks._api import input_ as input
    from notebooks._codegen import notebook_from_definition
    from notebooks._compile import CompileIssue, NotebookCompileError, compile_notebook
    from notebooks._equivalence import equivalent, normalize
    from notebooks._handles import AuthoringError, NodeHandle, Ref
    from notebooks._live import NodeRunError, RunView

__all__ = [
    "AuthoringError",
    "CompileIssue",
    "NodeHandle",
    "NodeRunError",
    "NotebookCompileError",
    "Ref",
    "RunView",
    "aggregate",
    "all_of",
    "any_of",
    "code",
    "compile_notebook",
    "condition",
    "edge",
    "end",
    "equivalent",
    "http",
    "input",
    "llm",
    "loop",
    "node",
    "normalize",
    "notebook_from_definition",
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

_WHERE = {
    "AuthoringError": "notebooks._handles",
    "NodeHandle": "notebooks._handles",
    "Ref": "notebooks._handles",
    "CompileIssue": "notebooks._compile",
    "NotebookCompileError": "notebooks._compile",
    "compile_notebook": "notebooks._compile",
    "NodeRunError": "notebooks._live",
    "RunView": "notebooks._live",
    "equivalent": "notebooks._equivalence",
    "normalize": "notebooks._equivalence",
    "notebook_from_definition": "notebooks._codegen",
}
_RENAMED = {"input": "input_"}


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'notebooks' has no attribute '{name}'")
    module = importlib.import_module(_WHERE.get(name, "notebooks._api"))
    value = getattr(module, _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
