"""The store's errors, all under :class:`StoreError`.

- :class:`StoreError` — base; ``path`` names the database file when known.
  - :class:`StoreLockedError` — another process holds the database (``pid`` when DuckDB says).
  - :class:`NotADatabaseError` — the file exists but is not a DuckDB database.
  - :class:`SchemaVersionError` — the file was written by a newer AgentFlow.
  - :class:`NotFoundError` — no workflow/execution/agent with that id (``kind``, ``key``).
  - :class:`ConflictError` — a unique value is taken (an agent slug), or a state forbids it.
  - :class:`ImportDocumentError` — a workflow to import is not valid JSON or not a workflow.
  - :class:`SecretError` — a secret cannot be decrypted (wrong master key, tampered data).
"""

from __future__ import annotations

__all__ = [
    "ConflictError",
    "ImportDocumentError",
    "NotADatabaseError",
    "NotFoundError",
    "SchemaVersionError",
    "SecretError",
    "StoreError",
    "StoreLockedError",
]


class StoreError(Exception):
    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class StoreLockedError(StoreError):
    def __init__(self, message: str, *, path: str, pid: int | None) -> None:
        super().__init__(message, path=path)
        self.pid = pid


class NotADatabaseError(StoreError):
    pass


class SchemaVersionError(StoreError):
    def __init__(self, message: str, *, path: str, found: int, supported: int) -> None:
        super().__init__(message, path=path)
        self.found = found
        self.supported = supported


class NotFoundError(StoreError):
    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"no {kind} '{key}'")
        self.kind = kind
        self.key = key


class ConflictError(StoreError):
    pass


class ImportDocumentError(StoreError):
    def __init__(self, message: str, *, issues: list[str] | None = None) -> None:
        super().__init__(message)
        self.issues = issues or []


class SecretError(StoreError):
    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name
