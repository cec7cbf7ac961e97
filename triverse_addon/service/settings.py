"""Settings in effect: preferences first, then the environment, then defaults. No `bpy` module use."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import PREFERENCES, MissingApiKey, OnlineAccessDisabled

__all__ = ["DEFAULT_BASE_URL", "ENV_API_KEY", "ENV_API_URL", "Settings", "check_ready", "resolve"]

DEFAULT_BASE_URL = "https://api.triverse.ai/api/v1"
ENV_API_KEY = "TRIVERSE_API_KEY"
ENV_API_URL = "TRIVERSE_API_URL"


@dataclass(frozen=True)
class Settings:
    """Everything a download needs; built on the main thread, read by workers."""

    api_key: str = field(default="", repr=False)  # never in a repr, a log or a message
    base_url: str = DEFAULT_BASE_URL
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    ca_bundle: str = ""
    proxy: str = ""
    library_dir: str = ""  # "" keeps no library: downloads go to a temporary folder
    library_cap_bytes: int = 0  # 0 = no cap
    key_source: str = ""  # "preferences", "environment" or ""
    url_source: str = "default"

    @property
    def api_host(self) -> str:
        """Host (and port) of the API, for messages."""
        return urlsplit(self.base_url).netloc or self.base_url


def resolve(
    api_key: str = "",
    base_url: str = "",
    env: Mapping[str, str] | None = None,
    **options: object,
) -> Settings:
    """Settings from preference values, falling back to TRIVERSE_API_KEY / TRIVERSE_API_URL, then defaults."""
    env = os.environ if env is None else env
    key, key_source = api_key.strip(), "preferences"
    if not key:
        key, key_source = env.get(ENV_API_KEY, "").strip(), "environment"
    if not key:
        key_source = ""
    url, url_source = base_url.strip(), "preferences"
    if not url:
        url, url_source = env.get(ENV_API_URL, "").strip(), "environment"
    if not url:
        url, url_source = DEFAULT_BASE_URL, "default"
    return Settings(
        api_key=key,
        base_url=url.rstrip("/"),
        key_source=key_source,
        url_source=url_source,
        **options,  # type: ignore[arg-type]
    )


def check_ready(settings: Settings, online_access: bool) -> None:
    """What must hold before any request: a key, and Blender's permission to go online."""
    if not settings.api_key:
        raise MissingApiKey(f"No Triverse API key is set: enter it in {PREFERENCES}, or set TRIVERSE_API_KEY.")
    if not online_access:
        raise OnlineAccessDisabled(
            "Blender's online access is off: enable Edit > Preferences > System > Network > Allow Online Access "
            "(or start Blender with --online-mode)."
        )
