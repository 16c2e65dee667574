"""Access to the download hosts that never hangs offline: each host is probed first (timeout
:data:`NETWORK_TIMEOUT` seconds, env ``RFKIT_NETWORK_TIMEOUT``, answers cached for a minute); where it cannot be
reached, weights come from the local caches (the Hugging Face hub in offline mode, torch hub's checkpoints folder)
or are reported unavailable at once.
"""

from __future__ import annotations

import contextlib
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import torch

from rfkit.models.sources import PretrainedUnavailable

#: Seconds to wait for a download host before calling it unreachable.
NETWORK_TIMEOUT = float(os.environ.get("RFKIT_NETWORK_TIMEOUT", "5"))


_probes: dict[str, tuple[float, str | None]] = {}


def _unreachable(url: str, timeout: float | None = None) -> str | None:
    """Why the host of ``url`` cannot be reached (None if it answers). Cached for a minute."""
    parsed = urlparse(url)
    base = f"{parsed.scheme}://{parsed.netloc}"
    hit = _probes.get(base)
    if hit and time.monotonic() - hit[0] < 60:
        return hit[1]
    try:
        urllib.request.urlopen(urllib.request.Request(base, method="HEAD"), timeout=timeout or NETWORK_TIMEOUT).close()
        reason = None
    except urllib.error.HTTPError:  # the server answered
        reason = None
    except (OSError, ValueError) as e:
        why = getattr(e, "reason", None) or e
        reason = f"cannot reach {parsed.netloc} ({str(why).strip() or type(why).__name__})"
    _probes[base] = (time.monotonic(), reason)
    return reason


@contextlib.contextmanager
def _hub_offline(on: bool):
    """Hugging Face hub offline mode (cache only, no retries) while the block runs."""
    if not on:
        yield
        return
    from huggingface_hub import constants

    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def _hub_offline_env() -> bool:
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


_Unavailable = PretrainedUnavailable  # pretrained weights exist but cannot be had now


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__


def _torch_hub_cached(url: str) -> bool:
    return (Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)).is_file()


def _hub_name(loc) -> str:
    return loc[0] if isinstance(loc, tuple) else loc


def _hf_cached(loc) -> bool:
    """Whether a weight file timm would load for the Hugging Face hub location ``loc`` (``repo`` or ``(repo,
    filename)``) is in the local cache; True when that cannot be told (the load is then attempted)."""
    try:
        from huggingface_hub import try_to_load_from_cache
        from timm.models import _hub

        repo, filename = (loc[0], loc[1]) if isinstance(loc, tuple) else (loc, _hub.HF_WEIGHTS_NAME)
        repo_id, revision = _hub.hf_split(repo)
        names = [filename, *_hub._get_safe_alternatives(filename)]
        return any(isinstance(try_to_load_from_cache(repo_id, n, revision=revision), str) for n in names)
    except Exception:  # noqa: BLE001 -- private timm helpers: if they moved, try loading
        return True
