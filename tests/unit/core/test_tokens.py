"""Token counting: known values, the cookbook's chat overhead, offline loading of shipped files."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiktoken_ext import openai_public

from desktop_chat.core import tokens

TOKENIZERS = Path(__file__).resolve().parents[3] / "resources" / "tokenizers"

# OpenAI cookbook, "How to count tokens with tiktoken": its example conversation is
# 129 prompt tokens for gpt-4 (cl100k_base) and 124 for gpt-4o (o200k_base).
COOKBOOK_EXAMPLE = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates "
        "corporate jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the "
        "client deliverable.",
    },
]


@pytest.mark.parametrize(
    ("model", "ids"),
    [("gpt-4o", [24912, 2375]), ("gpt-4", [15339, 1917]), ("gpt-3.5-turbo", [15339, 1917])],
)
def test_hello_world_is_two_known_tokens(model: str, ids: list[int]) -> None:
    assert tokens.encoding_for(model).encode("hello world") == ids
    assert tokens.count_text("hello world", model) == 2


@pytest.mark.parametrize(("model", "expected"), [("gpt-4", 129), ("gpt-4o", 124)])
def test_payload_count_matches_the_cookbook(model: str, expected: int) -> None:
    assert tokens.count_messages(COOKBOOK_EXAMPLE, model) == expected


def test_message_overhead_follows_the_cookbook() -> None:
    # 3 per message + the role ("user" is one token) + the content; a name costs 1 + itself.
    assert tokens.count_message("user", "hello world", "gpt-4o") == 3 + 1 + 2
    assert tokens.count_message("user", "hello world", "gpt-4o", name="bob") == 3 + 1 + 2 + 1 + 1
    assert tokens.count_messages([], "gpt-4o") == 3  # reply priming alone
    one = [{"role": "user", "content": "hello world"}]
    assert tokens.count_messages(one, "gpt-4o") == 3 + 6


def test_special_token_lookalikes_count_as_text() -> None:
    for model in ("gpt-4o", "gpt-4"):
        encoding = tokens.encoding_for(model)
        expected = len(encoding.encode_ordinary("<|endoftext|> and <|fim_prefix|>"))
        assert tokens.count_text("<|endoftext|> and <|fim_prefix|>", model) == expected > 2
    assert tokens.count_texts(["<|endoftext|>", "hello world", ""], "gpt-4o") == [
        tokens.count_text("<|endoftext|>", "gpt-4o"),
        2,
        0,
    ]


@pytest.mark.parametrize(
    ("model", "encoding", "estimate"),
    [
        ("gpt-5", "o200k_base", False),
        ("gpt-5-mini-2025-08-07", "o200k_base", False),
        ("gpt-5.1", "o200k_base", False),
        ("gpt-4.1-nano", "o200k_base", False),
        ("gpt-4o-2024-08-06", "o200k_base", False),
        ("GPT-4o-mini", "o200k_base", False),
        ("openai/gpt-4o", "o200k_base", False),
        ("o1", "o200k_base", False),
        ("o3-mini", "o200k_base", False),
        ("o4-mini", "o200k_base", False),
        ("gpt-4", "cl100k_base", False),
        ("gpt-4-0613", "cl100k_base", False),
        ("gpt-4-turbo", "cl100k_base", False),
        ("gpt-3.5-turbo", "cl100k_base", False),
        ("gpt-3.5-turbo-16k", "cl100k_base", False),
        ("llama3.2:1b", "o200k_base", True),
        ("o1x", "o200k_base", True),  # a prefix only counts at a name boundary
        ("", "o200k_base", True),
    ],
)
def test_encoding_for_model(model: str, encoding: str, estimate: bool) -> None:
    assert tokens.encoding_name_for(model) == (encoding, estimate)


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_encodings_match_tiktokens_own_definitions(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same pattern and special tokens as tiktoken's constructor, and the file it expects."""
    requested: list[tuple[str, str | None]] = []

    def fake_load(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        requested.append((url, expected_hash))
        return {}

    monkeypatch.setattr(openai_public, "load_tiktoken_bpe", fake_load)
    upstream = openai_public.ENCODING_CONSTRUCTORS[name]()
    ours = tokens.get_encoding(name)
    assert ours.name == upstream["name"]
    assert ours._pat_str == upstream["pat_str"]
    assert ours._special_tokens == upstream["special_tokens"]
    filename, sha256 = tokens.ENCODING_FILES[name]
    assert requested == [
        (f"https://openaipublic.blob.core.windows.net/encodings/{filename}", sha256)
    ]
    assert hashlib.sha256((TOKENIZERS / filename).read_bytes()).hexdigest() == sha256
    assert ours.n_vocab == {"o200k_base": 200019, "cl100k_base": 100277}[name]


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_ranks_are_read_as_tiktoken_reads_them(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tiktoken.load

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))  # it copies the file there
    path = TOKENIZERS / f"{name}.tiktoken"
    expected = tiktoken.load.load_tiktoken_bpe(str(path), expected_hash=None)
    assert tokens._parse_ranks(path.read_bytes()) == expected


def test_a_damaged_file_is_refused(tmp_path: Path) -> None:
    damaged = tmp_path / "cl100k_base.tiktoken"
    data = bytearray((TOKENIZERS / "cl100k_base.tiktoken").read_bytes())
    data[100] ^= 1
    damaged.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="Hash mismatch"):
        tokens.load_encoding("cl100k_base", damaged)


def test_loads_when_tiktokens_cache_dir_is_unusable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tiktoken.load copies even local files into TIKTOKEN_CACHE_DIR and raises if it
    cannot; we read the file ourselves, so a broken cache setting does not matter, and
    check its hash as tiktoken does."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(blocker / "cache"))
    encoding = tokens.load_encoding("cl100k_base", TOKENIZERS / "cl100k_base.tiktoken")
    assert encoding.encode("hello world") == [15339, 1917]
    damaged = tmp_path / "damaged.tiktoken"
    damaged.write_bytes(b"aGk= 0\n")
    with pytest.raises(ValueError, match="Hash mismatch"):
        tokens.load_encoding("cl100k_base", damaged)


NO_NETWORK = """
import socket, sys, urllib.request

def refuse(*args, **kwargs):
    raise OSError("network access attempted")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
try:  # prove the guard works: any download now fails
    urllib.request.urlopen("https://openaipublic.blob.core.windows.net/", timeout=5)
except OSError as error:
    assert "network access attempted" in str(error), error
else:
    sys.exit("the network guard let a request through")
"""


def test_counting_works_offline_on_first_run(tmp_path: Path) -> None:
    """A fresh process with an empty tiktoken cache and every network call refused counts."""
    cache = tmp_path / "empty-cache"
    env = {
        **os.environ,
        "TIKTOKEN_CACHE_DIR": str(cache),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    code = NO_NETWORK + (
        "from desktop_chat.core import tokens\n"
        "print(tokens.count_text('hello world', 'gpt-4o'), tokens.count_text('hi', 'gpt-4'),"
        " tokens.count_text('hello', 'some-local-model'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "1", "1"]


def test_importing_core_loads_neither_tiktoken_nor_qt() -> None:
    """Start-up budget: tiktoken is imported on the first count, not on import."""
    code = (
        "import sys\n"
        "import desktop_chat.core, desktop_chat.core.tokens, desktop_chat.core.catalog\n"
        "import desktop_chat.core.context\n"
        "from desktop_chat.core import catalog\n"
        "catalog.lookup('gpt-4o')\n"
        "print(sorted(m for m in ('tiktoken', 'PySide6') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
