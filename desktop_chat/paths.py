"""Where the app keeps its data, config, logs and cache.

One module decides, with one override: ``--data-dir`` (or the environment
variable ``DESKTOP_CHAT_DATA_DIR``) puts everything under one folder, which is
also how tests isolate themselves. Directories are created 0700.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from desktop_chat import APP_ID

DATA_DIR_ENV = "DESKTOP_CHAT_DATA_DIR"
DB_URL_ENV = "DESKTOP_CHAT_DB_URL"
DB_FILENAME = "desktop-chat.sqlite3"


class AppPaths(NamedTuple):
    """The folders the app uses; create them with :meth:`ensure`.

    (A NamedTuple, not a dataclass: the window reads its lock file and theme from here
    before its first paint, and importing ``dataclasses`` then costs ~3 ms.)
    """

    data: Path
    config: Path
    cache: Path
    logs: Path

    @property
    def database(self) -> Path:
        return self.data / DB_FILENAME

    @property
    def settings_file(self) -> Path:
        return self.config / "settings.json"

    @property
    def log_file(self) -> Path:
        return self.logs / "desktop-chat.log"

    @property
    def backups(self) -> Path:
        return self.data / "backups"

    def ensure(self) -> AppPaths:
        """Create every folder with mode 0700 (tightening existing ones we own)."""
        for folder in (self.data, self.config, self.cache, self.logs):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            if folder.stat().st_mode & 0o077:
                folder.chmod(0o700)
        return self


def resolve(data_dir: str | os.PathLike[str] | None = None) -> AppPaths:
    """Paths for an explicit data dir, ``$DESKTOP_CHAT_DATA_DIR``, or the platform's."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV)
    if chosen:
        root = Path(chosen).expanduser().resolve()
        return AppPaths(data=root, config=root / "config", cache=root / "cache", logs=root / "logs")
    import platformdirs

    dirs = platformdirs.PlatformDirs(APP_ID, appauthor=False)
    return AppPaths(
        data=Path(dirs.user_data_dir),
        config=Path(dirs.user_config_dir),
        cache=Path(dirs.user_cache_dir),
        logs=Path(dirs.user_log_dir),
    )
