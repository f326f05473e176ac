"""Any exception that ends a command, as an exit code and one line that says what to do.

:func:`explain` is the CLI's last word: textclf's own errors keep their line and code; what the
operating system, the network stack, the allocator or an image decoder raise becomes exit 2 with
a line naming the file or value and what to do; anything else is exit 3, an internal error.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from textclf.errors import EXIT_INPUT, EXIT_INTERNAL, TextclfError, one_line
from textclf.files.paths import cache_root

# Module prefixes of HTTP stacks whose connection errors are not OSErrors (httpx, urllib3 wraps).
_NETWORK_MODULES = ("httpx", "httpcore", "requests", "urllib3", "huggingface_hub", "aiohttp")
_NETWORK_WORDS = ("Connect", "Timeout", "Offline", "Network", "Proxy", "SSL", "Protocol")


def explain(exc: BaseException) -> tuple[int, str]:
    """``(exit code, one line)`` for an exception that ended a command."""
    if isinstance(exc, TextclfError):
        return exc.exit_code, one_line(str(exc))
    if _is_out_of_memory(exc):
        return EXIT_INPUT, (
            f"out of memory: {_memory_hint(exc)}, or use a machine with more memory "
            f"({one_line(type(exc).__name__ + ': ' + str(exc), 120)})"
        )
    if type(exc).__name__ == "DecompressionBombError":
        return EXIT_INPUT, one_line(
            f"an image is too large to decode safely: {exc}; resize it first"
        )
    if isinstance(exc, RecursionError):
        return EXIT_INPUT, (
            "a file is nested too deeply to read (RecursionError); it is not a file textclf "
            "wrote or expects: check the JSON/TOML files given to this command"
        )
    if isinstance(exc, UnicodeDecodeError):
        return EXIT_INPUT, one_line(
            f"a file is not UTF-8 text ({exc.reason}, byte 0x{exc.object[exc.start]:02x} at "
            f"offset {exc.start}); save it as UTF-8"
        )
    if isinstance(exc, UnicodeEncodeError):
        return EXIT_INPUT, one_line(
            f"cannot write '{exc.object[exc.start : exc.end]}' in the {exc.encoding} "
            f"encoding; set PYTHONIOENCODING=utf-8"
        )
    if _is_network_error(exc):
        return EXIT_INPUT, one_line(
            f"network unavailable ({_reason(exc)}): textclf tried to download something; "
            "use a local copy (see the README for the dataset's or backbone's "
            "environment variable) or connect to the network"
        )
    if isinstance(exc, OSError):
        return EXIT_INPUT, _os_error_line(exc)
    return EXIT_INTERNAL, one_line(
        f"internal error: {type(exc).__name__}: {exc} (a bug in textclf; run with "
        f"--debug for the traceback)"
    )


# What holds memory in each command, and what to lower (CLI spelling, Python API spelling)
_IMAGES = (
    "the data or a batch does not fit (a very large image, a large {batch} or {size}?); use "
    "smaller images or batches"
)
_MEMORY_HINTS = {
    "describe": (
        "the descriptions held at once do not fit ({samples} for every class); lower {samples} or "
        "describe fewer classes at a time"
    ),
    "cache": "listing or checking the cache did not fit; close other programs",
    "plugins": "loading the plugins did not fit; close other programs",
}
_SPELLING = {
    "cli": {"batch": "--batch-size", "size": "--image-size", "samples": "--samples"},
    "api": {"batch": "batch_size=", "size": "image_size=", "samples": "samples="},
}


def _command_of(exc: BaseException) -> tuple[str, str]:
    """``(command, "cli" | "api")`` whose code was running when ``exc`` was raised, from the
    traceback: the first frame in a CLI command's module or in the Python API."""
    tb = exc.__traceback__
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        if module.startswith("textclf.cli.") and not module.rsplit(".", 1)[1].startswith("_"):
            return module.rsplit(".", 1)[1], "cli"
        if module == "textclf.api":
            return tb.tb_frame.f_code.co_name, "api"
        tb = tb.tb_next
    return "", "cli"


def _memory_hint(exc: BaseException) -> str:
    """What to lower, in the words of the command that ran out of memory."""
    command, style = _command_of(exc)
    return _MEMORY_HINTS.get(command, _IMAGES).format(**_SPELLING[style])


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # urllib's URLError wraps the socket error
    text = str(reason) if reason is not None else str(exc)
    return one_line(f"{type(exc).__name__}: {text}", 160)


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    # torch raises its own (a RuntimeError) when an allocation fails, on the CPU as on a GPU.
    name = type(exc).__name__
    return name == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)
    )


def _is_network_error(exc: BaseException) -> bool:
    import socket
    from urllib.error import URLError

    if isinstance(exc, (URLError, socket.gaierror, socket.timeout, ConnectionError)):
        return True
    module = type(exc).__module__ or ""
    return module.startswith(_NETWORK_MODULES) and any(
        w in type(exc).__name__ for w in _NETWORK_WORDS
    )


_HINTS = {
    errno.ENOSPC: "free some disk space, or write elsewhere (--run-dir, --output, $TEXTCLF_CACHE)",
    errno.EDQUOT: "free some of your disk quota, or write elsewhere (--run-dir, --output, "
    "$TEXTCLF_CACHE)",
    errno.EACCES: "check the permissions, or choose a folder you can write to",
    errno.EPERM: "check the permissions, or choose a folder you can write to",
    errno.EROFS: "choose a folder on a writable file system",
    errno.ENOENT: "check the path",
    errno.EISDIR: "give a file, not a folder",
}


def _os_error_line(exc: OSError) -> str:
    path = exc.filename
    what = exc.strerror or type(exc).__name__
    if path is None:
        return one_line(
            f"{what} ({type(exc).__name__}); "
            f"{_HINTS.get(exc.errno, 'check the files and folders given')}"
        )
    shown = f"'{os.fsdecode(path)}'" + (
        f" -> '{os.fsdecode(exc.filename2)}'" if exc.filename2 else ""
    )
    blocker = (
        _file_in_the_way(Path(os.fsdecode(path)))
        if exc.errno in (errno.ENOTDIR, errno.EEXIST)
        else None
    )
    if blocker is not None:
        where = "" if str(blocker) == os.fsdecode(path) else f"{what}: {shown}: "
        line = (
            f"{where}'{blocker}' is a file where textclf needs a folder; move it or choose "
            "another path"
        )
    else:
        line = f"{what}: {shown}; {_HINTS.get(exc.errno, 'check that path')}"
    cache = _cache_hint(Path(os.fsdecode(path)))
    return one_line(line + cache)


def _file_in_the_way(path: Path):
    """The path itself or its first existing ancestor, when that is not a folder."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return None if candidate.is_dir() else candidate
    return None


def _cache_hint(path: Path) -> str:
    root = cache_root()
    try:
        path.absolute().relative_to(root.absolute())
    except ValueError:
        return ""
    return f" (textclf's feature cache, $TEXTCLF_CACHE = '{root}': point it at a writable folder)"
