"""Is the Hugging Face hub reachable, or is what a run needs already in the local cache? One quick check before
any hub model or data set is asked for, so an offline run fails at once with a message that names the offline
alternative, and an offline machine with the files cached (``HF_HUB_OFFLINE=1`` on a cluster node) still runs."""

from __future__ import annotations

import os
import socket

from huggingface_hub import try_to_load_from_cache

_TRUE = ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 3.0, datasets: bool = False) -> tuple[bool, str]:
    """(reachable, reason). ``HF_HUB_OFFLINE`` (and ``HF_DATASETS_OFFLINE`` with ``datasets``) count as no."""
    flags = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE") if datasets else ("HF_HUB_OFFLINE",)
    for flag in flags:
        if os.environ.get(flag, "").strip().lower() in _TRUE:
            return False, f"{flag} is set"
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True, "ok"
    except OSError as err:
        return False, f"cannot reach {host} ({err.__class__.__name__}: {err})"


def hub_cached(repo_id: str, revision: str | None = None, filename: str = "config.json") -> bool:
    """True when ``filename`` of model ``repo_id`` at ``revision`` (None: main) is in the local hub cache
    (``HF_HUB_CACHE``, the layout ``models--<org>--<name>/snapshots/<commit>/`` with ``refs/<revision>``), so
    transformers can load it with the hub unreachable."""
    found = try_to_load_from_cache(repo_id, filename, revision=revision or "main")
    return isinstance(found, str)
