"""Provider API keys encrypted at rest (AES-256-GCM) in the ``secrets`` table.

Each value gets a random 96-bit nonce and is sealed with its NAME as associated
data, so a ciphertext copied to another row does not decrypt. Rows record the
``key_id`` (a fingerprint of the master key) that sealed them: a wrong master key is
reported as such instead of as corruption, and never yields garbage.

The master key is 32 bytes, from ``AGENTFLOW_SECRET_KEY`` (base64 or hex) or else
from the key file ``agentflow.key`` next to the database (base64, mode 0600, created
on first write). Databases in the same directory share that file.

Rotation (:meth:`SecretStore.rotate`) and crashes. The new key is written to
``agentflow.key.new`` (0600) BEFORE the transaction that re-encrypts every row
commits; only then is it renamed over ``agentflow.key``. Whatever the moment a crash
happens, one of the two files holds the key the rows use, and the next opening
settles it: rows under the staged key -> the rename is completed; otherwise the
staged file is a leftover of a rotation that never committed and is removed.
With ``AGENTFLOW_SECRET_KEY`` the process cannot change the variable: a generated
key stays in ``agentflow.key.new`` for the user to move into the variable (the
"wrong key" error points at it if that step is missed).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import contextlib
import hashlib
import os
import re
import secrets as _random
import stat
import string
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from store.errors import NotFoundError, SecretError

if TYPE_CHECKING:
    from store.db import Database

__all__ = [
    "ENV_VAR",
    "KEY_FILE",
    "RotationResult",
    "SecretInfo",
    "SecretStore",
    "check_name",
    "key_id",
    "mask",
    "parse_key",
]

ENV_VAR = "AGENTFLOW_SECRET_KEY"
KEY_FILE = "agentflow.key"
STAGED_SUFFIX = ".new"
KEY_BYTES = 32
NONCE_BYTES = 12

_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,99}")
_PREFIX = re.compile(r"[a-z]{2,4}[-_]")
_HEX = frozenset(string.hexdigits)


class SecretInfo(NamedTuple):
    name: str
    masked: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class RotationResult:
    count: int
    old_key_id: str
    new_key_id: str
    source: Literal["env", "file"]
    #: With an env key: where a generated new key waits to be moved into the variable.
    staged_key_file: Path | None = None


@dataclass(frozen=True, slots=True)
class _MasterKey:
    key: bytes
    id: str
    source: Literal["env", "file"]
    path: Path | None

    def describe(self) -> str:
        return f"from {ENV_VAR}" if self.source == "env" else f"from {self.path}"


# -- names, masks and keys ----------------------------------------------------------
def check_name(name: object) -> str:
    """The name if it looks like an environment variable (``OPENAI_API_KEY``)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise SecretError(
            f"invalid secret name {name!r}: use capitals, digits and '_', starting with "
            "a letter, at most 100 characters (e.g. OPENAI_API_KEY)",
            name=name if isinstance(name, str) else None,
        )
    return name


def mask(value: str) -> str:
    """``sk-…abcd``: a short vendor prefix and at most the last 4 characters."""
    prefix_match = _PREFIX.match(value)
    prefix = prefix_match.group(0) if prefix_match else ""
    # Short values would be given away by their ends, so they show less.
    if len(value) < len(prefix) + 12:
        prefix = ""
    tail = value[-4:] if len(value) >= 16 else ""
    if not tail.isprintable() or any(char.isspace() for char in tail):
        tail = ""  # a mask is printed in tables
    return f"{prefix}…{tail}"


def key_id(key: bytes) -> str:
    """A 16-hex fingerprint of a master key (not usable to recover it)."""
    return hashlib.sha256(b"agentflow-secret-key-id\x00" + key).hexdigest()[:16]


def parse_key(text: str, origin: str) -> bytes:
    """32 bytes from base64 (standard or URL-safe) or hex text; ``origin`` names the source."""
    text = text.strip()
    raw: bytes | None = None
    # 32 bytes in base64 are 43 characters (plus '='), so even-length hex digits are hex.
    if text and len(text) % 2 == 0 and set(text) <= _HEX:
        raw = bytes.fromhex(text)
    else:
        try:
            padded = text + "=" * (-len(text) % 4)
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raw = None
    # Never echo the text: it may be a real key with a typo.
    if raw is None:
        raise SecretError(
            f"{origin} is not a base64 or hex encoded key (make one with: openssl rand -base64 32)"
        )
    if len(raw) != KEY_BYTES:
        raise SecretError(
            f"{origin} decodes to {len(raw)} bytes; the master key must be {KEY_BYTES} "
            "bytes (make one with: openssl rand -base64 32)"
        )
    return raw


def _encode_key(key: bytes) -> bytes:
    return base64.b64encode(key) + b"\n"


def _read_key_file(path: Path) -> bytes:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise SecretError(f"cannot read the key file {path}: {exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise SecretError(f"the key file {path} is not a regular file")
    if os.name == "posix" and info.st_mode & 0o077:
        raise SecretError(
            f"the key file {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); refusing to use it. "
            f"Run: chmod 600 {path}"
        )
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretError(f"cannot read the key file {path}: {exc}") from None
    return parse_key(text, f"the key file {path}")


def _fsync_dir(directory: Path) -> None:
    # Makes a rename durable; not possible (nor needed) on every platform.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_exclusive(path: Path, key: bytes) -> None:
    """Create ``path`` holding ``key`` with mode 0600; FileExistsError if it exists.

    The content goes to a private temporary file first, which is then hard-linked to
    ``path``: linking fails when ``path`` exists (like O_CREAT|O_EXCL), and nobody can
    ever read a half-written key file.
    """
    temp = path.with_name(f".{path.name}.{_random.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, _encode_key(key))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


# -- the store ----------------------------------------------------------------------
class SecretStore:
    """Encrypted secrets by name; ``get_secret`` makes it an engine ``SecretSource``."""

    def __init__(self, db: Database, key_dir: str | Path) -> None:
        self._db = db
        self.key_dir = Path(key_dir).expanduser()

    @property
    def key_file(self) -> Path:
        return self.key_dir / KEY_FILE

    @property
    def staged_key_file(self) -> Path:
        return self.key_dir / (KEY_FILE + STAGED_SUFFIX)

    # -- master key -----------------------------------------------------------------
    def _master(self, *, create: bool) -> _MasterKey | None:
        """The current master key; None when there is none and ``create`` is false."""
        env = os.environ.get(ENV_VAR, "").strip()
        if env:
            key = parse_key(env, ENV_VAR)
            return _MasterKey(key, key_id(key), "env", None)
        self._settle_staged_file()
        path = self.key_file
        try:
            key = _read_key_file(path)
        except FileNotFoundError:
            if not create:
                return None
            self.key_dir.mkdir(parents=True, exist_ok=True)
            try:
                _write_exclusive(path, _random.token_bytes(KEY_BYTES))
            except FileExistsError:
                pass  # another process created it first: use theirs
            except OSError as exc:
                raise SecretError(f"cannot create the key file {path}: {exc}") from None
            key = _read_key_file(path)
        return _MasterKey(key, key_id(key), "file", path)

    def _staged_key(self) -> bytes | None:
        try:
            return _read_key_file(self.staged_key_file)
        except FileNotFoundError:
            return None

    def _settle_staged_file(self) -> None:
        """Finish or discard a key-file rotation that a crash interrupted (see module doc)."""
        staged = self._staged_key()
        if staged is None:
            return
        used = self._db.execute("SELECT 1 FROM secrets WHERE key_id = ? LIMIT 1", [key_id(staged)])
        try:
            if used:
                os.replace(self.staged_key_file, self.key_file)
                _fsync_dir(self.key_dir)
            else:
                self.staged_key_file.unlink()
        except FileNotFoundError:
            pass  # another process settled it at the same moment
        except OSError as exc:
            raise SecretError(
                f"cannot settle the staged key file {self.staged_key_file}: {exc}"
            ) from None

    def _mismatch(self, name: str, row_key_id: str, master: _MasterKey | None) -> SecretError:
        if master is None:
            message = (
                f"secret '{name}' was encrypted with key {row_key_id}, but there is no "
                f"master key: set {ENV_VAR} or restore {self.key_file}"
            )
        else:
            message = (
                f"secret '{name}' was encrypted with key {row_key_id}, the current key is "
                f"{master.id} ({master.describe()})"
            )
        if master is None or master.source == "env":
            with contextlib.suppress(SecretError):
                staged = self._staged_key()
                if staged is not None and key_id(staged) == row_key_id:
                    message += (
                        f"; {self.staged_key_file} holds key {row_key_id} from a rotation: "
                        f"set {ENV_VAR} to its contents"
                    )
        return SecretError(message, name=name)

    # -- sealing ----------------------------------------------------------------------
    @staticmethod
    def _seal(master: _MasterKey, name: str, value: str) -> tuple[bytes, bytes]:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = _random.token_bytes(NONCE_BYTES)
        return nonce, AESGCM(master.key).encrypt(nonce, value.encode("utf-8"), name.encode())

    def _open(
        self, master: _MasterKey | None, name: str, nonce: bytes, data: bytes, row_key_id: str
    ) -> str:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if master is None or master.id != row_key_id:
            raise self._mismatch(name, row_key_id, master)
        try:
            plain = AESGCM(master.key).decrypt(bytes(nonce), bytes(data), name.encode())
        except (InvalidTag, ValueError):
            raise SecretError(
                f"secret '{name}' cannot be decrypted: its stored data was altered or "
                "belongs to another name; set it again",
                name=name,
            ) from None
        return plain.decode("utf-8")

    def _rows(self, name: str | None = None) -> builtins.list[tuple[Any, ...]]:
        sql = "SELECT name, nonce, ciphertext, key_id, updated_at FROM secrets"
        if name is not None:
            return self._db.execute(sql + " WHERE name = ?", [name])
        return self._db.execute(sql + " ORDER BY name")

    # -- API --------------------------------------------------------------------------
    def set(self, name: str, value: str) -> None:
        """Store (or replace) ``value`` under ``name``, encrypted with the master key."""
        check_name(name)
        if not isinstance(value, str) or not value:
            raise SecretError(f"secret '{name}' needs a non-empty string value", name=name)
        master = self._master(create=True)
        assert master is not None
        nonce, data = self._seal(master, name, value)
        with self._db.transaction() as connection:
            # Sealing this row under a key the others do not use would leave the table
            # unrotatable and half unreadable: a wrong key must be fixed first.
            other = connection.execute(
                "SELECT name, key_id FROM secrets WHERE key_id <> ? AND name <> ? LIMIT 1",
                [master.id, name],
            ).fetchone()
            if other is not None:
                raise self._mismatch(str(other[0]), str(other[1]), master)
            connection.execute(
                "INSERT INTO secrets (name, nonce, ciphertext, key_id) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET nonce = excluded.nonce, "
                "ciphertext = excluded.ciphertext, key_id = excluded.key_id, updated_at = NOW()",
                [name, nonce, data, master.id],
            )

    def get(self, name: str) -> str | None:
        """The plaintext, or None when there is no such secret."""
        check_name(name)
        rows = self._rows(name)
        if not rows:
            return None
        row_name, nonce, data, row_key_id, _ = rows[0]
        return self._open(self._master(create=False), row_name, nonce, data, row_key_id)

    get_secret = get

    def list(self) -> builtins.list[SecretInfo]:
        """(name, masked value, updated_at) of every secret, by name."""
        rows = self._rows()
        if not rows:
            return []
        master = self._master(create=False)
        return [
            SecretInfo(name, mask(self._open(master, name, nonce, data, kid)), updated)
            for name, nonce, data, kid, updated in rows
        ]

    def delete(self, name: str) -> None:
        """Remove a secret; :class:`~store.errors.NotFoundError` when there is none."""
        check_name(name)
        if not self._db.execute("DELETE FROM secrets WHERE name = ? RETURNING name", [name]):
            raise NotFoundError("secret", name)

    def values(self) -> builtins.list[str]:
        """Every plaintext that can be decrypted, for redacting run records.

        A secret that cannot be decrypted cannot reach a run through this store
        either, so it is left out rather than failing the recording.
        """
        rows = self._rows()
        if not rows:
            return []
        try:
            master = self._master(create=False)
        except SecretError:
            return []
        found = []
        for name, nonce, data, kid, _ in rows:
            with contextlib.suppress(SecretError):
                found.append(self._open(master, name, nonce, data, kid))
        return found

    def rotate(self, new_key: bytes | None = None) -> RotationResult:
        """Re-encrypt every secret under a new master key (generated when not given).

        All rows change in one transaction. A key file is replaced after the commit
        (crash-safe, see the module doc). With ``AGENTFLOW_SECRET_KEY`` the caller must
        update the variable: to the given key, or to the generated one, which is left
        in :attr:`staged_key_file`.
        """
        master = self._master(create=True)
        assert master is not None
        generated = new_key is None
        if new_key is None:
            new_key = _random.token_bytes(KEY_BYTES)
        elif not isinstance(new_key, bytes) or len(new_key) != KEY_BYTES:
            raise SecretError(f"the new master key must be {KEY_BYTES} bytes")
        new = _MasterKey(new_key, key_id(new_key), master.source, master.path)
        if new.id == master.id:
            raise SecretError("the new master key is the current one")
        # Written down before the commit so that no crash can lose it; an env user who
        # passed the new key in already holds it.
        staged = self._stage(new) if master.source == "file" or generated else None
        try:
            count = self._reencrypt(master, new)
        except BaseException:
            if staged is not None:
                self._drop_stage_if_unused(new)
            raise
        if master.source == "file":
            assert master.path is not None
            try:
                os.replace(self.staged_key_file, master.path)
            except OSError as exc:
                raise SecretError(
                    f"secrets re-encrypted, but {self.staged_key_file} could not replace "
                    f"{master.path} ({exc}); it will be retried on next use"
                ) from None
            _fsync_dir(self.key_dir)
            staged = None
        return RotationResult(count, master.id, new.id, master.source, staged)

    def _stage(self, new: _MasterKey) -> Path:
        path = self.staged_key_file
        existing = self._staged_key()
        if existing is not None:
            if self._db.execute(
                "SELECT 1 FROM secrets WHERE key_id = ? LIMIT 1", [key_id(existing)]
            ):
                raise SecretError(
                    f"{path} holds the key of an earlier rotation: make sure {ENV_VAR} holds "
                    "that key, then delete the file"
                )
            path.unlink(missing_ok=True)  # left by a rotation that never committed
        try:
            _write_exclusive(path, new.key)
        except OSError as exc:
            raise SecretError(f"cannot write the new key file {path}: {exc}") from None
        return path

    def _drop_stage_if_unused(self, new: _MasterKey) -> None:
        # The commit may have happened even if something raised afterwards: only a key
        # that no row uses may go (otherwise the next use settles it).
        with contextlib.suppress(Exception):
            if not self._db.execute("SELECT 1 FROM secrets WHERE key_id = ? LIMIT 1", [new.id]):
                self.staged_key_file.unlink(missing_ok=True)

    def _reencrypt(self, master: _MasterKey, new: _MasterKey) -> int:
        with self._db.transaction() as connection:
            rows = connection.execute(
                "SELECT name, nonce, ciphertext, key_id FROM secrets ORDER BY name"
            ).fetchall()
            for name, nonce, data, row_key_id in rows:
                value = self._open(master, name, nonce, data, row_key_id)
                new_nonce, new_data = self._seal(new, name, value)
                connection.execute(
                    "UPDATE secrets SET nonce = ?, ciphertext = ?, key_id = ? WHERE name = ?",
                    [new_nonce, new_data, new.id, name],
                )
        return len(rows)
