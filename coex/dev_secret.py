"""The app secret that `coex dev` makes for a folder when COEX_APP_SECRET is unset.

Kept in `<data_dir>/dev-secret` so that `coex simulate` in a second terminal signs with it too.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from runtime.settings import Settings


def dev_secret_path(settings: Settings) -> Path:
    return settings.data_dir / "dev-secret"


def app_secret(settings: Settings) -> str | None:
    """COEX_APP_SECRET, else the folder's dev secret if `coex dev` made one."""
    if settings.app_secret is not None:
        return settings.app_secret.get_secret_value()
    path = dev_secret_path(settings)
    return path.read_text().strip() if path.exists() else None


def ensure_dev_secret(settings: Settings) -> str:
    existing = app_secret(settings)
    if existing:
        return existing
    path = dev_secret_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(secrets.token_hex(16))
    path.chmod(0o600)
    return path.read_text().strip()
