"""Reaching the Hugging Face Hub, or failing fast when it cannot be reached.

Without network, huggingface_hub retries each request for 20-45 s before giving up. We probe the Hub once with a
short HTTP request through huggingface_hub's session (proxy and endpoint aware); when it does not answer we switch
huggingface_hub to offline mode (so the local cache still works) and turn "not found" errors into one message that
says to pass a local path.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from finetune.compat import set_hub_offline_in_loaded_modules

_TRUE = {"1", "true", "yes", "on"}


def offline_requested() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE


@functools.lru_cache(maxsize=1)
def hub_is_reachable(timeout: float = 3.0) -> bool:
    """True when the Hub endpoint (HF_ENDPOINT, else huggingface_hub's) answers an HTTP request within `timeout`
    seconds, and offline mode is off. The request goes through huggingface_hub's own HTTP session, so it takes the
    route every later download takes: HTTPS_PROXY/HTTP_PROXY/NO_PROXY, certificates, the endpoint."""
    if offline_requested():
        return False
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    try:
        get_session().head(endpoint.rstrip("/") + "/", timeout=timeout)  # any HTTP answer: the Hub is there
    except Exception:  # connection refused, DNS, proxy, TLS, timeout: all mean "not reachable"
        return False
    return True


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
