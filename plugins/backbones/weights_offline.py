"""Fail fast, in one line, when pretrained weights are neither cached nor downloadable.

timm and open_clip fetch weights through huggingface_hub, which retries a failed connection five
times with back-off: about 45 s per file on a machine without network (open_clip tries two files).
Before calling them, the families here check the local cache and, when the weights are not there,
open one TCP connection to the weights host: a machine without DNS answers in milliseconds, one
without a route within ``PROBE_TIMEOUT_S``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from typing import Optional
from urllib.parse import urlparse

from textclf.errors import TextclfError

PROBE_TIMEOUT_S = 3.0


def hf_offline() -> bool:
    """Whether huggingface_hub is in offline mode (``HF_HUB_OFFLINE``)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hf_cached(repo_id: str, filenames: Iterable[str]) -> bool:
    """Whether any of ``filenames`` of the Hugging Face repo is in the local cache."""
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, f), str) for f in filenames)


def hf_host() -> Optional[str]:
    """The Hugging Face endpoint's host name (``HF_ENDPOINT`` respected)."""
    from huggingface_hub import constants

    return urlparse(constants.ENDPOINT).hostname


def host_reachable(host: str, timeout: float = PROBE_TIMEOUT_S) -> Optional[str]:
    """None when a TCP connection to ``host:443`` opens within ``timeout``; else the reason."""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def unreachable_reason(kind: str, where: str) -> Optional[str]:
    """Why weights at ``where`` (``kind`` ``"hf-hub"`` or ``"url"``) cannot be downloaded, or
    None."""
    if kind == "hf-hub":
        if hf_offline():
            return "HF_HUB_OFFLINE is set"
        host = hf_host()
    else:
        host = urlparse(where).hostname
    if not host:
        return None
    reason = host_reachable(host)
    return f"{host}: {reason}" if reason else None


def require_downloadable(
    label: str,
    kind: str,
    where: str,
    what: str = "pretrained weights",
    hint: str = "use --no-pretrained or fetch them on a machine with network access",
) -> None:
    """Raise the one-line 'cannot be downloaded' error unless ``where`` can be reached."""
    reason = unreachable_reason(kind, where)
    if reason is not None:
        raise TextclfError(
            f"{label}: {what} ({kind} {where}) are not in the local cache and "
            f"cannot be downloaded ({reason}); {hint}"
        )


def load_error(label: str, kind: str, where: str, exc: BaseException) -> TextclfError:
    """One-line error for a failed weights load (the cause stays chained for debugging)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return TextclfError(
        f"{label}: pretrained weights ({kind} {where}) could not be loaded: "
        f"{type(exc).__name__}: {first[:200]}"
    )


def torch_hub_cached(url: str) -> bool:
    """Whether torch.hub's checkpoint folder holds the file that ``url`` names."""
    import torch

    return os.path.exists(
        os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))
    )
