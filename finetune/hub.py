"""Reaching the Hugging Face Hub, or failing fast when it cannot be reached.

Without network, huggingface_hub retries each request for 20-45 s before giving up. We probe the Hub once with a
short TCP connect; when it does not answer we switch huggingface_hub to offline mode (so the local cache still
works) and turn "not found" errors into one message that says to pass a local path.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from finetune.compat import set_hub_offline_in_loaded_modules

_TRUE = {"1", "true", "yes", "on"}


def offline_requested() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE


@functools.lru_cache(maxsize=1)
def hub_is_reachable(timeout: float = 3.0) -> bool:
    """True when the Hub endpoint accepts a TCP connection within `timeout` seconds (and offline mode is off)."""
    if offline_requested():
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def prepare_for_hub(*names: str | None) -> None:
    """Call before importing huggingface_hub/transformers when any of `names` may be a Hub id.

    Local paths need no network. For anything else, an unreachable Hub turns on offline mode, so cached
    files still load and missing ones fail at once instead of after a minute of retries.
    """
    if offline_requested():
        return
    if all(name is None or Path(name).expanduser().exists() for name in names):
        return
    if not hub_is_reachable():
        os.environ["HF_HUB_OFFLINE"] = "1"
        set_hub_offline_in_loaded_modules()


def looks_like_path(name: str) -> bool:
    """A name that can only be a path on disk, never a Hub id (which is `name` or `owner/name`)."""
    return (name.startswith(("/", "./", "../", "~", ".\\")) or name in (".", "..") or "\\" in name
            or name.endswith("/") or name.count("/") > 1)


def not_found_hint(name: str, what: str) -> str:
    """The message for a model/dataset that is neither a local path nor loadable from the Hub."""
    if Path(name).expanduser().exists():
        return f"'{name}' exists but is not a {what} folder (no config or weights were found in it)."
    if looks_like_path(name):
        return f"{what.capitalize()} folder '{name}' not found (no such file or folder)."
    if offline_requested():
        return (
            f"{what.capitalize()} '{name}' is not a local path and is not in the Hugging Face cache, and the Hub "
            f"is offline (HF_HUB_OFFLINE=1 or unreachable). Pass a local {what} folder, or connect and retry."
        )
    return f"{what.capitalize()} '{name}' was not found on the Hugging Face Hub or on disk. Check the name or path."
