"""Serving the studio: one Panel server, one app per browser session."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from store import Store

__all__ = ["EXAMPLES_DIR", "load_examples", "make_server", "serve"]

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"


def load_examples(store: Store, folder: Path = EXAMPLES_DIR) -> list[str]:
    """Import the example workflows into a store that has none yet; their ids."""
    if store.workflows.list(include_deleted=True, limit=1) or not folder.is_dir():
        return []
    ids = []
    for path in sorted(folder.glob("*.json")):
        record = store.workflows.import_json(path.read_text(encoding="utf-8"), source=str(path))
        ids.append(record.id)
    return ids


def make_server(store: Store, *, host: str, port: int, open_browser: bool = False) -> object:
    """A started-on-demand Panel server (``server.start()``; ``server.stop()``)."""
    import panel as pn

    from studio.app import StudioApp
    from studio.runner import RunManager

    runner = RunManager(store)

    def session() -> object:
        return StudioApp(store, runner).view()

    origins = [f"{host}:{port}", f"localhost:{port}", f"127.0.0.1:{port}"]
    return pn.serve(
        {"/": session},
        port=port,
        address=host,
        show=open_browser,
        start=False,
        title="AgentFlow Studio",
        websocket_origin=origins,
        threaded=False,
    )


def serve(
    store: Store, *, host: str, port: int, open_browser: bool, load_examples: bool = True
) -> None:
    """Serve until Ctrl-C; print the address first."""
    from engine.cli_plugins import CliError

    if load_examples:
        loaded = globals()["load_examples"](store)
        if loaded:
            print(f"loaded {len(loaded)} example workflows into {store.path}", file=sys.stderr)
    try:
        server = make_server(store, host=host, port=port, open_browser=open_browser)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    print(
        f"AgentFlow studio at http://{host}:{port}  (database {store.path}; Ctrl-C stops)",
        flush=True,
    )
    try:
        server.start()  # type: ignore[attr-defined]
        server.io_loop.start()  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        print("\nstopping", file=sys.stderr)
    finally:
        server.stop()  # type: ignore[attr-defined]
