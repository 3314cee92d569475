"""User settings: providers, defaults for new conversations, appearance; a JSON file in config.

API keys are never stored here (see :mod:`desktop_chat.secrets`).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from desktop_chat.core.types import MemoryPolicy
from desktop_chat.errors import BadInputError

OPENAI_BASE_URL = "https://api.openai.com/v1"


@dataclass
class Provider:
    """An OpenAI-compatible endpoint. ``base_url`` None means OpenAI itself."""

    name: str = "openai"
    base_url: str | None = None
    default_model: str = "gpt-4o-mini"
    # Context windows for models the catalog does not know (local servers).
    model_overrides: dict[str, dict[str, int]] = field(default_factory=dict)
    # The longest silence tolerated before and during a streamed reply; a local
    # server on a CPU may need more to read a long prompt.
    stall_timeout: float = 60.0


@dataclass
class Settings:
    providers: list[Provider] = field(default_factory=lambda: [Provider()])
    active_provider: str = "openai"
    system_prompt: str = ""
    temperature: float | None = None
    max_output_tokens: int | None = None
    memory_policy: dict[str, Any] = field(default_factory=lambda: MemoryPolicy().to_json())
    theme: str = "system"  # "light", "dark" or "system"
    enter_sends: bool = True
    generate_titles: bool = True
    # Keep the database encrypted with SQLCipher, its key in the OS keyring (see
    # services.encryption); a change is applied when the database is next opened.
    # None: never chosen, so the database stays as it is.
    encrypt_database: bool | None = None
    # Automatic backups: one every so many days (0: none), the newest so many kept.
    backup_every_days: int = 1
    backups_kept: int = 7

    def provider(self, name: str | None = None) -> Provider:
        wanted = name or self.active_provider
        for provider in self.providers:
            if provider.name == wanted:
                return provider
        return self.providers[0] if self.providers else Provider()

    def default_policy(self) -> MemoryPolicy:
        return MemoryPolicy.from_json(self.memory_policy)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        known = {f for f in cls.__dataclass_fields__ if f != "providers"}
        values = {k: v for k, v in data.items() if k in known}
        providers = [
            Provider(**{k: v for k, v in p.items() if k in Provider.__dataclass_fields__})
            for p in data.get("providers") or []
            if isinstance(p, dict)
        ]
        return cls(providers=providers or [Provider()], **values)


def load(path: Path) -> Settings:
    """Read settings, or defaults when the file does not exist yet."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, ValueError) as exc:
        raise BadInputError(f"The settings file {path} cannot be read: {exc}.") from exc
    if not isinstance(data, dict):
        raise BadInputError(f"The settings file {path} is not a JSON object.")
    try:
        return Settings.from_json(data)
    except TypeError as exc:
        raise BadInputError(f"The settings file {path} has a bad value: {exc}.") from exc


def save(settings: Settings, path: Path) -> None:
    """Write atomically (temp file + rename), mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".settings-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(settings.to_json(), handle, indent=2, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
