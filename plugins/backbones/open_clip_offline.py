"""Where an ``open-clip:<arch>:<tag>`` checkpoint's weights and tokenizer come from, and failing
fast, in one
line, when they are neither on disk nor downloadable (offline machines)."""

from __future__ import annotations

from pathlib import Path

from textclf.errors import TextclfError
from textclf.plugins.backbones import weights_offline as offline


def require_open_clip():
    """The ``open_clip`` module, or a one-line error saying how to install it (it is an extra)."""
    try:
        import open_clip
    except ModuleNotFoundError as exc:
        raise TextclfError(
            "open-clip backbones need the package open_clip_torch: pip install 'textclf[open-clip]'"
        ) from exc
    return open_clip


def is_weights_file(tag: str) -> bool:
    """Whether a tag is a local checkpoint file (open_clip's ``pretrained`` also takes a path)."""
    return tag.endswith((".pt", ".pth", ".bin", ".safetensors")) and Path(tag).is_file()


def check_tokenizer_offline(arch: str) -> None:
    """Refuse, in one line, an architecture whose Hugging Face tokenizer cannot be fetched."""
    open_clip = require_open_clip()
    text_cfg = (open_clip.get_model_config(arch) or {}).get("text_cfg", {})
    hf_name = text_cfg.get("hf_tokenizer_name")
    if not hf_name or offline.hf_cached(hf_name, ("tokenizer.json", "tokenizer_config.json")):
        return
    offline.require_downloadable(
        f"open-clip:{arch}",
        "hf-hub",
        hf_name,
        what="the Hugging Face tokenizer files",
        hint="fetch them on a machine with network access, or choose an "
        "architecture that uses open_clip's bundled tokenizer",
    )


def weights_source(arch: str, tag: str) -> tuple[str, str]:
    """``(kind, where)`` open_clip downloads the tag's weights from (it prefers the HF hub)."""
    cfg = require_open_clip().get_pretrained_cfg(arch, tag)
    if cfg.get("hf_hub"):
        return "hf-hub", cfg["hf_hub"].rstrip("/")
    return "url", cfg.get("url", "")


def weights_cached(arch: str, tag: str) -> bool:
    """Whether the tag's weights are in the local cache (HF cache or open_clip's URL cache)."""
    if is_weights_file(tag):
        return True
    cfg = require_open_clip().get_pretrained_cfg(arch, tag)
    if cfg.get("file"):
        return True
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = (
            hub.rstrip("/").rsplit("/", 1) if not hub.endswith("/") else (hub.rstrip("/"), "")
        )
        names = (
            [filename]
            if filename
            else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        )
        return offline.hf_cached(repo, names)
    url = cfg.get("url", "")
    return bool(url) and (Path.home() / ".cache" / "clip" / Path(url).name).exists()


def check_weights_reachable(arch: str, tag: str) -> None:
    """Fail fast, in one line, when the tag's weights are neither cached nor downloadable."""
    if not weights_cached(arch, tag):
        offline.require_downloadable(f"open-clip:{arch}:{tag}", *weights_source(arch, tag))
