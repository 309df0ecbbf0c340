"""How other packages extend the ``agentflow`` command without the engine importing them.

A package declares an entry point in the group ``agentflow.cli`` naming a function
``register(cli: CliContext) -> None``. There it may add commands, options of
``agentflow run``, run hooks (the store records every run through one) and loaders for
other document kinds (the notebooks compile ``.py`` files through one).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from engine.definition import WorkflowDefinition
    from engine.events import Event
    from engine.graph import CompiledWorkflow
    from engine.results import RunResult
    from engine.services import RunServices, SecretSource

__all__ = [
    "ENTRY_POINT_GROUP",
    "CliContext",
    "CliError",
    "RunHook",
    "RunSession",
    "SecretsFactory",
]

ENTRY_POINT_GROUP = "agentflow.cli"


class CliError(Exception):
    """An expected failure of a command: printed on one line, no traceback."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class RunSession(Protocol):
    """A host's part in one run started from the command line."""

    @property
    def execution_id(self) -> str | None:
        """A fixed execution id (a resumed run keeps its id), or None for a new one."""
        ...

    @property
    def reuse_outputs(self) -> dict[str, Any]:
        """Outputs of nodes that already succeeded (resume): not executed again."""
        ...

    @property
    def services(self) -> RunServices | None:
        """Cache, stored workflows and secrets for the run."""
        ...

    def on_event(self, event: Event) -> None: ...

    def finish(self, result: RunResult | None, error: BaseException | None) -> None:
        """Called once when the run ends (``error`` when it could not finish)."""
        ...


RunHook = Callable[
    [argparse.Namespace, "CompiledWorkflow", dict[str, Any], str | None], "RunSession | None"
]
Loader = Callable[[Path], "WorkflowDefinition"]
#: Opens the key store for a command (``agentflow models``); None when there is none.
SecretsFactory = Callable[[argparse.Namespace], "SecretSource | None"]


class CliContext:
    """What ``register`` functions get: the parser, the run hooks and the loaders."""

    def __init__(
        self,
        commands: argparse._SubParsersAction[argparse.ArgumentParser],
        run_parser: argparse.ArgumentParser,
    ) -> None:
        self.commands = commands
        self.run_parser = run_parser
        self.run_hooks: list[RunHook] = []
        self.loaders: dict[str, Loader] = {}
        #: Set by the store plugin: where commands outside a run find stored API keys.
        self.secrets_factory: SecretsFactory | None = None

    def add_command(self, name: str, help: str) -> argparse.ArgumentParser:
        """A new top-level command; set its handler with ``set_defaults(handler=fn)``."""
        return self.commands.add_parser(name, help=help, description=help)

    def add_run_hook(self, hook: RunHook) -> None:
        self.run_hooks.append(hook)

    def add_loader(self, suffix: str, loader: Loader) -> None:
        """Read files ending in ``suffix`` (e.g. ``.py``) as workflows."""
        self.loaders[suffix] = loader

    def compile(self, definition: WorkflowDefinition) -> CompiledWorkflow:
        """Validate a definition; raises ``CliError`` (exit 2) listing every issue."""
        from engine.errors import WorkflowValidationError
        from engine.graph import compile_workflow

        try:
            return compile_workflow(definition)
        except WorkflowValidationError as exc:
            raise CliError(f"the workflow is invalid:\n{exc}") from None

    def report(self, result: RunResult, *, as_json: bool) -> int:
        """Print a run's result as ``agentflow run`` does; return its exit code."""
        from engine.cli import print_result

        return print_result(result, as_json=as_json)

    def execute(
        self,
        compiled: CompiledWorkflow,
        inputs: dict[str, Any],
        *,
        live: bool,
        sessions: list[RunSession],
        workflow_id: str | None = None,
    ) -> RunResult:
        """Run a compiled workflow with the given sessions attached; blocks until done."""
        return asyncio.run(_execute(compiled, inputs, live, sessions, workflow_id))


async def _execute(
    compiled: CompiledWorkflow,
    inputs: dict[str, Any],
    live: bool,
    sessions: list[RunSession],
    workflow_id: str | None,
) -> RunResult:
    from engine.executor import Executor
    from engine.services import RunServices

    execution_id = next((s.execution_id for s in sessions if s.execution_id), None)
    reuse: dict[str, Any] = {}
    services = RunServices()
    for session in sessions:
        reuse.update(session.reuse_outputs)
        if session.services is not None:
            services = session.services
    result: RunResult | None = None
    error: BaseException | None = None
    try:
        run = Executor(services=services).start(
            compiled,
            inputs,
            execution_id=execution_id,
            workflow_id=workflow_id,
            reuse_outputs=reuse,
            listeners=[session.on_event for session in sessions],
        )
        if live:
            from engine._private.progress import progress_display

            with progress_display(compiled, sys.stderr) as listener:
                run.subscribe(listener)
                result = await run.wait()
        else:
            result = await run.wait()
        return result
    except BaseException as exc:
        error = exc
        raise
    finally:
        for session in sessions:
            session.finish(result, error)


def load_plugins(cli: CliContext) -> None:
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register = entry.load()
            register(cli)
        except Exception as exc:  # one broken plugin must not take the whole CLI down
            print(
                f"agentflow: warning: CLI plugin '{entry.name}' ({entry.value}) failed: {exc}",
                file=sys.stderr,
            )
