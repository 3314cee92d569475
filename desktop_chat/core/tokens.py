"""Token counting with tiktoken, offline: the encodings ship with the app."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken

# Chat-format overhead, from OpenAI's cookbook "How to count tokens with tiktoken":
# every message costs 3 tokens beyond its role and content, a ``name`` 1 more, and
# every reply is primed with 3 (<|start|>assistant<|message|>).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3

# Where an unknown model's count comes from; the count is then flagged as an estimate.
FALLBACK_ENCODING = "o200k_base"

# name: (file in desktop_chat.resources/tokenizers, sha256 tiktoken_ext.openai_public expects)
ENCODING_FILES: dict[str, tuple[str, str]] = {
    "o200k_base": (
        "o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
    "cl100k_base": (
        "cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
}

# Copied from tiktoken_ext/openai_public.py (tiktoken 0.14); a test builds tiktoken's own
# constructor dicts and asserts these are identical, so a drift fails loudly.
PATTERNS: dict[str, str] = {
    "o200k_base": "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
    "cl100k_base": (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+"""
        r"""| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
}
SPECIAL_TOKENS: dict[str, dict[str, int]] = {
    "o200k_base": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    "cl100k_base": {
        "<|endoftext|>": 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        "<|endofprompt|>": 100276,
    },
}

# Model families by name prefix; the longest matching prefix wins, and a prefix only
# matches at a name boundary, so "gpt-4" does not claim "gpt-4o" nor "o1" claim "o1x".
MODEL_FAMILIES: tuple[tuple[str, str], ...] = tuple(
    sorted(
        (
            ("gpt-5", "o200k_base"),
            ("gpt-4.1", "o200k_base"),
            ("gpt-4.5", "o200k_base"),
            ("gpt-4o", "o200k_base"),
            ("chatgpt-4o", "o200k_base"),
            ("gpt-oss", "o200k_base"),
            ("o1", "o200k_base"),
            ("o3", "o200k_base"),
            ("o4", "o200k_base"),
            ("gpt-4", "cl100k_base"),
            ("gpt-3.5", "cl100k_base"),
            ("gpt-35", "cl100k_base"),  # Azure's spelling of gpt-3.5
        ),
        key=lambda family: -len(family[0]),
    )
)
_BOUNDARY = frozenset("-.:@_")


def model_key(model: str) -> str:
    """The catalog key of a model name: lower case, without a router's "vendor/" prefix."""
    return model.strip().lower().rsplit("/", 1)[-1]


@functools.lru_cache(maxsize=512)
def encoding_name_for(model: str) -> tuple[str, bool]:
    """The encoding ``model`` uses, and whether that is a guess (a model we do not know)."""
    key = model_key(model)
    for prefix, encoding in MODEL_FAMILIES:
        if key.startswith(prefix) and (len(key) == len(prefix) or key[len(prefix)] in _BOUNDARY):
            return encoding, False
    return FALLBACK_ENCODING, True


def load_encoding(name: str, path: Path) -> tiktoken.Encoding:
    """Build the encoding ``name`` from a local ``.tiktoken`` file, checking its sha256.

    Read here, not with ``tiktoken.load``: that copies even a local file into
    tiktoken's cache (and fails where TIKTOKEN_CACHE_DIR cannot be written), and
    decodes it in 1.5x the time, which the window spends while opening the last chat.
    """
    import hashlib

    import tiktoken

    _, sha256 = ENCODING_FILES[name]
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"Hash mismatch: {path} does not have the expected sha256 {sha256}")
    encoding = tiktoken.Encoding(
        name=name,
        pat_str=PATTERNS[name],
        mergeable_ranks=_parse_ranks(data),
        special_tokens=SPECIAL_TOKENS[name],
    )
    # The Rust core has its own copy of the ranks; tiktoken keeps the Python
    # dict only to pickle the encoding, which we never do. Dropping it gives
    # back ~28 MB per encoding (200,000 bytes keys).
    encoding._mergeable_ranks = {}
    return encoding


def _parse_ranks(data: bytes) -> dict[bytes, int]:
    """The ``base64(token) rank`` lines of a .tiktoken file, as load_tiktoken_bpe reads them."""
    from binascii import a2b_base64

    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, _, rank = line.partition(b" ")
            ranks[a2b_base64(token)] = int(rank)
    return ranks


_loading = threading.Lock()


def get_encoding(name: str) -> tiktoken.Encoding:
    """The shipped encoding ``name`` (loaded once per process, never from the network).

    Locked: the window warms it up in one thread while planning may need it in another.
    """
    with _loading:
        return _shipped_encoding(name)


@functools.cache
def _shipped_encoding(name: str) -> tiktoken.Encoding:
    filename, _ = ENCODING_FILES[name]
    shipped = resources.files("desktop_chat.resources").joinpath("tokenizers", filename)
    # as_file gives a real path even when the package is imported from a zip.
    with resources.as_file(shipped) as path:
        return load_encoding(name, path)


def encoding_for(model: str) -> tiktoken.Encoding:
    """The encoding used to count ``model``'s tokens (o200k_base when unknown)."""
    return get_encoding(encoding_name_for(model)[0])


def count_text(text: str, model: str) -> int:
    """Tokens in ``text``; special-token look-alikes ("<|endoftext|>") count as plain text."""
    return len(encoding_for(model).encode(text, disallowed_special=()))


def count_texts(texts: Iterable[str], model: str) -> list[int]:
    """Token counts for many texts (one encoding lookup for all of them).

    Not tiktoken's encode_ordinary_batch: its thread pool made chat-sized texts
    about twice slower on a 2-core machine (bench/context.py prints both rates).
    """
    encode = encoding_for(model).encode_ordinary  # special look-alikes are plain text here
    return [len(encode(text)) for text in texts]


@functools.lru_cache(maxsize=64)
def message_overhead(role: str, model: str) -> int:
    """What one message costs beyond its content: the format's 3 tokens and its role."""
    return TOKENS_PER_MESSAGE + count_text(role, model)


def count_message(role: str, content: str, model: str, name: str | None = None) -> int:
    """One message of a chat request: its content plus the chat format's overhead."""
    total = message_overhead(role, model) + count_text(content, model)
    if name:
        total += TOKENS_PER_NAME + count_text(name, model)
    return total


def count_messages(payload: Iterable[Mapping[str, Any]], model: str) -> int:
    """The prompt tokens of a whole chat request ``payload``, reply priming included."""
    total = REPLY_PRIMING
    for message in payload:
        total += count_message(
            str(message.get("role") or ""),
            str(message.get("content") or ""),
            model,
            message.get("name"),
        )
    return total
