"""AgentFlow studio: the Panel dashboard (canvas, live runs, history, agents, settings).

Served by ``agentflow studio``. Importing this package is cheap: Panel is loaded only
when the app is built (``studio.app``), never on the ``agentflow`` CLI start-up path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from studio.app import StudioApp
    from studio.server import serve

__all__ = ["StudioApp", "serve"]


def __getattr__(name: str) -> Any:
    if name == "StudioApp":
        from studio.app import StudioApp

        return StudioApp
    if name == "serve":
        from studio.server import serve

        return serve
    raise AttributeError(name)
