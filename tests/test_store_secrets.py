"""Encrypted secrets (store.secrets) and ``agentflow keys``: real DuckDB files, real key
files, the real console script in a subprocess."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from store.db import Database
from store.errors import NotFoundError, SecretError
from store.secrets import SecretStore, key_id, mask, parse_key

AGENTFLOW = str(Path(sys.executable).with_name("agentflow"))
ROOT = Path(__file__).resolve().parent.parent
ENV = "AGENTFLOW_SECRET_KEY"


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)


@pytest.fixture
def open_secrets(tmp_path):
    """Open (db, SecretStore) on tmp_path/agentflow.duckdb; everything is closed at the end."""
    opened: list[Database] = []

    def _open(db_path: Path | None = None, key_dir: Path | None = None):
        db = Database(db_path or tmp_path / "agentflow.duckdb")
        opened.append(db)
        return db, SecretStore(db, key_dir=key_dir or tmp_path)

    yield _open
    for db in opened:
        with contextlib.suppress(Exception):
            db.close()


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def key_file_bytes(directory: Path) -> bytes:
    return base64.b64decode((directory / "agentflow.key").read_text())


def write_key(path: Path, key: bytes, mode: int = 0o600) -> None:
    path.write_text(b64(key) + "\n")
    path.chmod(mode)


def flip_byte(db: Database, name: str, column: str = "ciphertext", index: int = 0) -> bytes:
    [(original,)] = db.execute(f"SELECT {column} FROM secrets WHERE name = ?", [name])
    data = bytearray(original)
    data[index] ^= 0x01
    db.execute(f"UPDATE secrets SET {column} = ? WHERE name = ?", [bytes(data), name])
    return bytes(original)


# -- encryption ----------------------------------------------------------------------
def test_round_trip_and_key_file_created_0600_and_reused(tmp_path, open_secrets):
    db, secrets = open_secrets()
    assert not (tmp_path / "agentflow.key").exists()
    assert secrets.get("OPENAI_API_KEY") is None
    assert not (tmp_path / "agentflow.key").exists()  # reading creates no key

    secrets.set("OPENAI_API_KEY", "sk-proj-abcdefghijklmnop1234")
    secrets.set("UNICODE_KEY", "clé-секрет-🔑-0042")
    assert secrets.get("OPENAI_API_KEY") == "sk-proj-abcdefghijklmnop1234"
    assert secrets.get_secret("UNICODE_KEY") == "clé-секрет-🔑-0042"
    secrets.set("OPENAI_API_KEY", "sk-replaced-zzzzzzzzzzzz9876")
    assert secrets.get("OPENAI_API_KEY") == "sk-replaced-zzzzzzzzzzzz9876"
    assert sorted(secrets.values()) == ["clé-секрет-🔑-0042", "sk-replaced-zzzzzzzzzzzz9876"]

    key_path = tmp_path / "agentflow.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = key_file_bytes(tmp_path)
    assert len(key) == 32
    rows = db.execute(
        "SELECT name, octet_length(nonce), key_id, ciphertext FROM secrets ORDER BY name"
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("OPENAI_API_KEY", 12, key_id(key)),
        ("UNICODE_KEY", 12, key_id(key)),
    ]
    assert b"sk-replaced" not in rows[0][3]
    db.close()

    # A second opening reuses the key file, byte for byte.
    _, again = open_secrets()
    assert again.get("OPENAI_API_KEY") == "sk-replaced-zzzzzzzzzzzz9876"
    assert key_file_bytes(tmp_path) == key


def test_each_value_gets_a_fresh_nonce(open_secrets):
    db, secrets = open_secrets()
    secrets.set("A_KEY", "same value here")
    [(nonce1, data1)] = db.execute("SELECT nonce, ciphertext FROM secrets")
    secrets.set("A_KEY", "same value here")
    [(nonce2, data2)] = db.execute("SELECT nonce, ciphertext FROM secrets")
    assert nonce1 != nonce2 and data1 != data2


def test_tampered_ciphertext_or_nonce_is_refused(open_secrets):
    db, secrets = open_secrets()
    secrets.set("TAMPER_ME", "sk-original-value-000000")
    original = flip_byte(db, "TAMPER_ME", index=3)
    with pytest.raises(SecretError, match=r"secret 'TAMPER_ME' cannot be decrypted.*altered"):
        secrets.get("TAMPER_ME")
    with pytest.raises(SecretError, match="altered"):
        secrets.list()
    assert secrets.values() == []  # never a garbage plaintext

    db.execute("UPDATE secrets SET ciphertext = ? WHERE name = 'TAMPER_ME'", [original])
    assert secrets.get("TAMPER_ME") == "sk-original-value-000000"
    flip_byte(db, "TAMPER_ME", column="nonce", index=11)
    with pytest.raises(SecretError, match="altered"):
        secrets.get("TAMPER_ME")


def test_ciphertext_moved_to_another_name_is_refused(open_secrets):
    db, secrets = open_secrets()
    secrets.set("REAL_KEY", "sk-real-secret-1111111111")
    db.execute(
        "INSERT INTO secrets (name, nonce, ciphertext, key_id) "
        "SELECT 'STOLEN_KEY', nonce, ciphertext, key_id FROM secrets WHERE name = 'REAL_KEY'"
    )
    with pytest.raises(SecretError, match="'STOLEN_KEY' cannot be decrypted") as caught:
        secrets.get("STOLEN_KEY")
    assert caught.value.name == "STOLEN_KEY"
    assert secrets.get("REAL_KEY") == "sk-real-secret-1111111111"


# -- master keys ---------------------------------------------------------------------
def test_env_key_hex_and_base64_name_the_same_key(tmp_path, monkeypatch, open_secrets):
    key = os.urandom(32)
    monkeypatch.setenv(ENV, key.hex())
    _, secrets = open_secrets()
    secrets.set("ENV_KEY", "sk-from-env-key-22222222")
    assert not (tmp_path / "agentflow.key").exists()  # the env key means no key file
    texts = [
        b64(key),
        base64.urlsafe_b64encode(key).decode(),
        base64.urlsafe_b64encode(key).decode().rstrip("="),
        f"  {key.hex().upper()}\n",
    ]
    for text in texts:
        monkeypatch.setenv(ENV, text)
        assert secrets.get("ENV_KEY") == "sk-from-env-key-22222222"


def test_wrong_env_key_is_reported_clearly(monkeypatch, open_secrets):
    right, wrong = os.urandom(32), os.urandom(32)
    monkeypatch.setenv(ENV, b64(right))
    _, secrets = open_secrets()
    secrets.set("OPENAI_API_KEY", "sk-right-key-333333333333")

    monkeypatch.setenv(ENV, b64(wrong))
    expected = (
        f"secret 'OPENAI_API_KEY' was encrypted with key {key_id(right)}, "
        f"the current key is {key_id(wrong)} (from {ENV})"
    )
    with pytest.raises(SecretError) as caught:
        secrets.get("OPENAI_API_KEY")
    assert str(caught.value) == expected
    with pytest.raises(SecretError, match="was encrypted with key"):
        secrets.list()
    assert secrets.values() == []
    # Sealing a new secret under the wrong key would mix keys in one table.
    with pytest.raises(SecretError, match="was encrypted with key"):
        secrets.set("OTHER_KEY", "sk-other-44444444444444")
    monkeypatch.setenv(ENV, b64(right))
    assert secrets.get("OTHER_KEY") is None
    assert secrets.get("OPENAI_API_KEY") == "sk-right-key-333333333333"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not a key!", "not a base64 or hex encoded key"),
        (base64.b64encode(b"x" * 16).decode(), "decodes to 16 bytes"),
        ("ab" * 31, "decodes to 31 bytes"),
        ("ab" * 33, "decodes to 33 bytes"),
    ],
)
def test_malformed_env_key_is_a_clear_error(monkeypatch, open_secrets, text, message):
    monkeypatch.setenv(ENV, text)
    _, secrets = open_secrets()
    with pytest.raises(SecretError, match=message) as caught:
        secrets.set("SOME_KEY", "value-value-value")
    assert ENV in str(caught.value) and text not in str(caught.value)


def test_parse_key_accepts_exactly_32_bytes():
    key = os.urandom(32)
    assert parse_key(key.hex(), "x") == key
    assert parse_key(b64(key), "x") == key
    with pytest.raises(SecretError, match="the source decodes to 0 bytes"):
        parse_key("", "the source")


def test_existing_key_file_is_used_not_overwritten(tmp_path, monkeypatch, open_secrets):
    key = os.urandom(32)
    write_key(tmp_path / "agentflow.key", key)
    _, secrets = open_secrets()
    secrets.set("FILE_KEY", "sk-file-key-555555555555")
    assert key_file_bytes(tmp_path) == key
    monkeypatch.setenv(ENV, key.hex())  # the same key from the env decrypts it
    assert secrets.get("FILE_KEY") == "sk-file-key-555555555555"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_key_file_open_to_group_or_others_is_refused(tmp_path, open_secrets, mode):
    key_path = tmp_path / "agentflow.key"
    write_key(key_path, os.urandom(32), mode)
    _, secrets = open_secrets()
    with pytest.raises(SecretError, match=rf"accessible by group or others.*chmod 600 {key_path}"):
        secrets.set("SOME_KEY", "value-value-value")
    key_path.chmod(0o600)
    secrets.set("SOME_KEY", "value-value-value")
    assert secrets.get("SOME_KEY") == "value-value-value"


def test_missing_or_corrupt_key_file_is_a_clear_error(tmp_path, open_secrets):
    _, secrets = open_secrets()
    secrets.set("SOME_KEY", "value-value-value")
    key_path = tmp_path / "agentflow.key"
    lost_id = key_id(key_file_bytes(tmp_path))
    key_path.unlink()
    with pytest.raises(SecretError, match=f"encrypted with key {lost_id}, but there is no master"):
        secrets.get("SOME_KEY")
    assert not key_path.exists()  # a read must not invent a new key
    key_path.write_text("garbage!\n")
    key_path.chmod(0o600)
    with pytest.raises(SecretError, match=f"the key file {key_path} is not a base64"):
        secrets.get("SOME_KEY")


_RACER = """
import sys
from store.db import Database
from store.secrets import SecretStore
db = Database(sys.argv[1])
SecretStore(db, key_dir=sys.argv[2]).set("RACE_KEY", "value-" + sys.argv[1])
db.close()
"""


def test_processes_racing_to_create_the_key_file_share_one_key(tmp_path):
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    dbs = [tmp_path / f"db{i}.duckdb" for i in range(6)]
    racers = [
        subprocess.Popen([sys.executable, "-c", _RACER, str(db), str(key_dir)], cwd=ROOT)
        for db in dbs
    ]
    assert [racer.wait(timeout=60) for racer in racers] == [0] * len(dbs)
    assert sorted(p.name for p in key_dir.iterdir()) == ["agentflow.key"]  # no temp files left
    for db_path in dbs:
        with Database(db_path) as db:
            assert SecretStore(db, key_dir).get("RACE_KEY") == f"value-{db_path}"


# -- list, names, delete -------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("sk-proj-abcdefghijklmnop1234", "sk-…1234"),
        ("ghp_0123456789abcdefghijWXYZ", "ghp_…WXYZ"),
        ("Bearer-0123456789abcdef", "…cdef"),
        ("abcdefghij0123456789\n", "…"),
        ("plainvalue0123456789", "…6789"),
        ("sk-short", "…"),
        ("x", "…"),
        ("123456789012345", "…"),
    ],
)
def test_mask(value, masked):
    assert mask(value) == masked


def test_mask_never_shows_more_than_the_last_4_characters():
    for length in range(1, 80):
        value = ("sk-" + uuid.uuid4().hex * 3)[:length]
        masked = mask(value)
        prefix, shown = masked.split("…", 1)
        assert len(shown) <= 4 and value.endswith(shown)
        assert prefix in ("", "sk-") and len(masked) <= 8
        if length >= 16:
            assert value[3:-4] not in masked


def test_list_is_sorted_and_masked(open_secrets):
    _, secrets = open_secrets()
    assert secrets.list() == []
    secrets.set("OPENAI_API_KEY", "sk-proj-abcdefghijklmnop1234")
    secrets.set("ANTHROPIC_API_KEY", "sk-ant-api03-qwertyuiopasdf9999")
    infos = secrets.list()
    assert [(info.name, info.masked) for info in infos] == [
        ("ANTHROPIC_API_KEY", "sk-…9999"),
        ("OPENAI_API_KEY", "sk-…1234"),
    ]
    name, masked, updated = infos[0]
    assert updated.tzinfo is not None and masked == "sk-…9999" and name == "ANTHROPIC_API_KEY"


@pytest.mark.parametrize(
    "name", ["openai_key", "1ABC", "_ABC", "A-B", "A B", "", "A" * 101, "ÄPI_KEY", "KEY\n"]
)
def test_bad_names_are_refused(open_secrets, name):
    _, secrets = open_secrets()
    for call in (
        lambda: secrets.set(name, "value"),
        lambda: secrets.get(name),
        lambda: secrets.delete(name),
    ):
        with pytest.raises(SecretError, match="invalid secret name"):
            call()


def test_longest_name_and_single_letter_are_fine(open_secrets):
    _, secrets = open_secrets()
    for name in ("A", "A" * 100, "X_1"):
        secrets.set(name, "value-" + name)
        assert secrets.get(name) == "value-" + name


def test_empty_or_non_string_value_is_refused(open_secrets):
    _, secrets = open_secrets()
    with pytest.raises(SecretError, match="non-empty string"):
        secrets.set("EMPTY_KEY", "")
    with pytest.raises(SecretError, match="non-empty string"):
        secrets.set("BYTES_KEY", b"bytes")  # type: ignore[arg-type]
    assert secrets.list() == []


def test_delete(open_secrets):
    _, secrets = open_secrets()
    secrets.set("GONE_KEY", "value-value-value")
    secrets.set("KEPT_KEY", "kept-value-value")
    secrets.delete("GONE_KEY")
    assert secrets.get("GONE_KEY") is None
    assert secrets.get("KEPT_KEY") == "kept-value-value"
    with pytest.raises(NotFoundError, match="no secret 'GONE_KEY'"):
        secrets.delete("GONE_KEY")


# -- rotation ------------------------------------------------------------------------
VALUES = {
    "ANTHROPIC_API_KEY": "sk-ant-aaaaaaaaaaaaaaaa0001",
    "GROQ_API_KEY": "gsk_bbbbbbbbbbbbbbbbbbb0002",
    "OPENAI_API_KEY": "sk-proj-cccccccccccccccc0003",
}


def fill(secrets: SecretStore) -> None:
    for name, value in VALUES.items():
        secrets.set(name, value)


def read_all(secrets: SecretStore) -> dict[str, str | None]:
    return {name: secrets.get(name) for name in VALUES}


def test_rotation_reencrypts_everything(tmp_path, monkeypatch, open_secrets):
    db, secrets = open_secrets()
    fill(secrets)
    old = key_file_bytes(tmp_path)
    before = db.execute("SELECT name, nonce, ciphertext FROM secrets ORDER BY name")

    result = secrets.rotate()
    new = key_file_bytes(tmp_path)
    assert (result.count, result.old_key_id, result.new_key_id) == (3, key_id(old), key_id(new))
    assert result.source == "file" and result.staged_key_file is None
    assert new != old
    assert stat.S_IMODE((tmp_path / "agentflow.key").stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir() if "key" in p.name) == ["agentflow.key"]
    after = db.execute("SELECT name, nonce, ciphertext, key_id FROM secrets ORDER BY name")
    assert all(a[1] != b[1] and a[2] != b[2] for a, b in zip(after, before, strict=True))
    assert {row[3] for row in after} == {key_id(new)}
    assert read_all(secrets) == VALUES

    monkeypatch.setenv(ENV, b64(old))
    with pytest.raises(SecretError, match=f"encrypted with key {key_id(new)}"):
        secrets.get("OPENAI_API_KEY")
    monkeypatch.setenv(ENV, b64(new))
    assert read_all(secrets) == VALUES


def test_rotation_to_a_given_key_and_bad_new_keys(tmp_path, open_secrets):
    _, secrets = open_secrets()
    fill(secrets)
    chosen = os.urandom(32)
    assert secrets.rotate(chosen).new_key_id == key_id(chosen)
    assert key_file_bytes(tmp_path) == chosen
    with pytest.raises(SecretError, match="is the current one"):
        secrets.rotate(chosen)
    with pytest.raises(SecretError, match="must be 32 bytes"):
        secrets.rotate(b"short")
    assert key_file_bytes(tmp_path) == chosen and read_all(secrets) == VALUES


def test_interrupted_rotation_leaves_everything_under_the_old_key(
    tmp_path, monkeypatch, open_secrets
):
    db, secrets = open_secrets()
    fill(secrets)
    old = key_file_bytes(tmp_path)
    # The last row (by name) cannot be decrypted: the rotation raises inside its
    # transaction after re-encrypting the first two.
    original = flip_byte(db, "OPENAI_API_KEY")
    with pytest.raises(SecretError, match="'OPENAI_API_KEY' cannot be decrypted"):
        secrets.rotate()

    assert key_file_bytes(tmp_path) == old
    assert not (tmp_path / "agentflow.key.new").exists()
    assert {row[0] for row in db.execute("SELECT key_id FROM secrets")} == {key_id(old)}
    db.execute("UPDATE secrets SET ciphertext = ? WHERE name = 'OPENAI_API_KEY'", [original])
    assert read_all(secrets) == VALUES
    monkeypatch.setenv(ENV, b64(old))
    assert read_all(secrets) == VALUES


def test_crash_after_commit_before_rename_is_completed_on_next_use(tmp_path, open_secrets):
    db, secrets = open_secrets()
    fill(secrets)
    old, new = key_file_bytes(tmp_path), os.urandom(32)
    secrets.rotate(new)
    db.close()
    # The files as a crash between the commit and the rename leaves them.
    write_key(tmp_path / "agentflow.key", old)
    write_key(tmp_path / "agentflow.key.new", new)

    _, reopened = open_secrets()
    assert read_all(reopened) == VALUES
    assert key_file_bytes(tmp_path) == new
    assert not (tmp_path / "agentflow.key.new").exists()


def test_crash_before_commit_discards_the_staged_key(tmp_path, open_secrets):
    _, secrets = open_secrets()
    fill(secrets)
    old = key_file_bytes(tmp_path)
    write_key(tmp_path / "agentflow.key.new", os.urandom(32))
    assert read_all(secrets) == VALUES
    assert key_file_bytes(tmp_path) == old
    assert not (tmp_path / "agentflow.key.new").exists()


def test_rotation_with_an_env_key_stages_the_new_key(tmp_path, monkeypatch, open_secrets):
    old = os.urandom(32)
    monkeypatch.setenv(ENV, b64(old))
    _, secrets = open_secrets()
    fill(secrets)
    result = secrets.rotate()
    staged = tmp_path / "agentflow.key.new"
    assert result.source == "env" and result.staged_key_file == staged
    assert stat.S_IMODE(staged.stat().st_mode) == 0o600
    new = base64.b64decode(staged.read_text())
    assert result.new_key_id == key_id(new) and not (tmp_path / "agentflow.key").exists()

    # The variable still holds the old key: the error says where the new one is.
    with pytest.raises(SecretError, match=f"{staged} holds key {key_id(new)}"):
        secrets.get("OPENAI_API_KEY")
    with pytest.raises(SecretError, match="earlier rotation"):
        secrets.rotate()
    monkeypatch.setenv(ENV, b64(new))
    assert read_all(secrets) == VALUES
    staged.unlink()

    # A caller-supplied key is already in the caller's hands: nothing is written.
    given = os.urandom(32)
    result = secrets.rotate(given)
    assert result.staged_key_file is None and not staged.exists()
    monkeypatch.setenv(ENV, given.hex())
    assert read_all(secrets) == VALUES


def test_rotation_of_an_empty_table_still_changes_the_key(tmp_path, open_secrets):
    _, secrets = open_secrets()
    first = secrets.rotate()
    assert first.count == 0 and key_file_bytes(tmp_path) != b""
    secrets.set("LATER_KEY", "value-value-later")
    assert secrets.get("LATER_KEY") == "value-value-later"


# -- the command line ----------------------------------------------------------------
def agentflow(home: Path, *args: str, stdin: str | None = None, key: str | None = None):
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env.update(AGENTFLOW_HOME=str(home), LITELLM_LOCAL_MODEL_COST_MAP="True")
    if key is not None:
        env[ENV] = key
    return subprocess.run(
        [AGENTFLOW, *args],
        capture_output=True,
        text=True,
        input=stdin if stdin is not None else "",
        timeout=60,
        env=env,
        cwd=ROOT,
    )


def stored(home: Path, name: str) -> str | None:
    with Database(home / "agentflow.duckdb") as db:
        return SecretStore(db, home).get(name)


def test_cli_set_list_delete(tmp_path):
    out = agentflow(tmp_path, "keys", "set", "OPENAI_API_KEY", stdin="sk-proj-abcdefghijkl1234\n")
    assert (out.returncode, out.stdout, out.stderr) == (
        0,
        "stored OPENAI_API_KEY (sk-…1234)\n",
        "",
    )
    # Exactly one trailing newline is dropped.
    agentflow(tmp_path, "keys", "set", "TWO_LINES", stdin="line-one\nline-two\n\n")
    agentflow(tmp_path, "keys", "set", "CRLF_KEY", stdin="windows-value-9999\r\n")
    assert stored(tmp_path, "OPENAI_API_KEY") == "sk-proj-abcdefghijkl1234"
    assert stored(tmp_path, "TWO_LINES") == "line-one\nline-two\n"
    assert stored(tmp_path, "CRLF_KEY") == "windows-value-9999"

    listing = agentflow(tmp_path, "keys", "list")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VALUE", "UPDATED"]
    assert [line.split()[:2] for line in lines[1:]] == [
        ["CRLF_KEY", "…9999"],
        ["OPENAI_API_KEY", "sk-…1234"],
        ["TWO_LINES", "line-…"],
    ]
    as_json = json.loads(agentflow(tmp_path, "keys", "list", "--json").stdout)
    assert [(item["name"], item["masked"]) for item in as_json] == [
        ("CRLF_KEY", "…9999"),
        ("OPENAI_API_KEY", "sk-…1234"),
        ("TWO_LINES", "line-…"),
    ]
    assert all(item["updatedAt"][:4].isdigit() for item in as_json)

    deleted = agentflow(tmp_path, "keys", "delete", "TWO_LINES")
    assert (deleted.returncode, deleted.stdout) == (0, "deleted TWO_LINES\n")
    again = agentflow(tmp_path, "keys", "delete", "TWO_LINES")
    assert (again.returncode, again.stdout) == (1, "")
    assert again.stderr == "agentflow: no secret 'TWO_LINES'\n"
    assert stored(tmp_path, "TWO_LINES") is None


def test_cli_refuses_bad_input(tmp_path):
    empty = agentflow(tmp_path, "keys", "set", "EMPTY_KEY", stdin="\n")
    assert empty.returncode == 2 and "no value for EMPTY_KEY" in empty.stderr
    bad = agentflow(tmp_path, "keys", "set", "openai", stdin="value-value\n")
    assert bad.returncode == 2 and "invalid secret name 'openai'" in bad.stderr
    # The value is never taken from the command line.
    argv = agentflow(tmp_path, "keys", "set", "ARGV_KEY", "sk-on-the-command-line")
    assert argv.returncode == 2 and "unrecognized arguments" in argv.stderr
    missing = agentflow(tmp_path, "keys", "delete", "NEVER_SET")
    assert missing.returncode == 1 and "no secret 'NEVER_SET'" in missing.stderr
    bare = agentflow(tmp_path, "keys")
    assert bare.returncode == 2
    none = agentflow(tmp_path, "keys", "list")
    assert (none.returncode, none.stdout, none.stderr) == (0, "", "no keys stored\n")
    assert stored(tmp_path, "EMPTY_KEY") is None and stored(tmp_path, "ARGV_KEY") is None


def test_cli_wrong_env_key_and_rotation(tmp_path):
    key = b64(os.urandom(32))
    agentflow(tmp_path, "keys", "set", "OPENAI_API_KEY", stdin="sk-env-abcdefghijkl5678", key=key)
    wrong = agentflow(tmp_path, "keys", "list", key=b64(os.urandom(32)))
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert "secret 'OPENAI_API_KEY' was encrypted with key" in wrong.stderr
    malformed = agentflow(tmp_path, "keys", "list", key="not-a-key!")
    assert malformed.returncode == 2 and f"{ENV} is not a base64 or hex" in malformed.stderr

    new = os.urandom(32)
    rotated = agentflow(tmp_path, "keys", "rotate", "--new-key-stdin", stdin=new.hex(), key=key)
    assert rotated.returncode == 0, rotated.stderr
    assert f"re-encrypted 1 key(s): master key {key_id(base64.b64decode(key))} -> " in (
        rotated.stdout
    )
    assert f"{ENV} still holds the old key" in rotated.stderr
    assert agentflow(tmp_path, "keys", "list", key=key).returncode == 2
    listing = agentflow(tmp_path, "keys", "list", key=b64(new))
    assert listing.returncode == 0 and "sk-…5678" in listing.stdout


def test_cli_db_option_puts_the_key_file_next_to_the_database(tmp_path):
    other = tmp_path / "elsewhere" / "mine.duckdb"
    out = agentflow(tmp_path, "keys", "set", "DB_KEY", "--db", str(other), stdin="value-x-1234")
    assert out.returncode == 0, out.stderr
    assert (other.parent / "agentflow.key").exists()
    assert not (tmp_path / "agentflow.key").exists()
    assert "DB_KEY" in agentflow(tmp_path, "keys", "list", "--db", str(other)).stdout
    assert agentflow(tmp_path, "keys", "list").stderr == "no keys stored\n"


def test_canary_plaintext_is_nowhere_on_disk_or_in_output(tmp_path):
    canary = f"sk-canary-{uuid.uuid4()}"
    outputs = [
        agentflow(tmp_path, "keys", "set", "CANARY_KEY", stdin=canary + "\n"),
        agentflow(tmp_path, "keys", "list"),
        agentflow(tmp_path, "keys", "list", "--json"),
        agentflow(tmp_path, "keys", "rotate"),
        agentflow(tmp_path, "keys", "list"),
    ]
    assert [out.returncode for out in outputs] == [0] * len(outputs)
    for out in outputs:
        assert canary not in out.stdout and canary not in out.stderr
        assert canary[3:-4] not in out.stdout + out.stderr
    assert stored(tmp_path, "CANARY_KEY") == canary  # the value is really in there

    files = [p for p in tmp_path.iterdir() if p.is_file()]
    assert tmp_path / "agentflow.duckdb" in files
    needles = [canary.encode(), canary.encode("utf-16-le"), canary[10:].encode()]
    for path in files:
        data = path.read_bytes()
        assert not any(needle in data for needle in needles), path
    # The scan does see the table's contents: names are stored in the clear.
    assert b"CANARY_KEY" in (tmp_path / "agentflow.duckdb").read_bytes()
