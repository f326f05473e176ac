"""One job over several processes: what textclf does when ``torchrun`` starts it.

torchrun (or any launcher that sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``)
starts one process per device. :func:`session` joins them into a process group (gloo for CPU
tensors, NCCL for CUDA ones), with a timeout, and makes the job the :func:`current` context.
Without torchrun, :data:`SINGLE` is current: one process, no group, and nothing changes.

Rank 0 alone writes files. What it decides reaches the others through :meth:`Context.decide`,
which carries an error as well as a value, so a failure there ends every rank with its message
instead of leaving them waiting. A rank that fails on its own leaves its one-line message in the
job's key-value store before it exits; a rank whose collective then breaks (the peer is gone)
finds that message and reports it (:class:`PeerError`), instead of a backend's stack of errors.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from textclf.errors import PeerError, TextclfError
from textclf.runtime.devices import resolve_device
from textclf.runtime.rank_watch import Heartbeat, stop_on_sigterm

TIMEOUT_ENV = "TEXTCLF_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600.0  # a collective that waits longer than this ends the job (a hung peer)
STALE_S = 60.0  # a peer silent this long while we wait on the store is taken for dead
PEER_WORD_S = 3.0  # how long a rank whose collective broke waits for the failing peer's message


def launched() -> bool:
    """Whether a launcher such as torchrun started this process as one rank of a job."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def shard(indices, rank: int, world: int):
    """This rank's part of ``indices``: every ``world``-th item from ``rank`` (as
    DistributedSampler, no padding)."""
    return indices[rank::world]


@dataclass
class Context:
    """Where this process stands in the job: its rank, the world size and, when active, the
    group."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    active: bool = False  # a process group is set up (also with a world of 1 under torchrun)
    backend: str = ""
    store: Any = field(default=None, repr=False)
    _seq: int = field(default=0, repr=False)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one rank that writes files and prints progress."""
        return self.rank == 0

    def device(self, device):
        """The device this rank trains on: ``cuda`` becomes ``cuda:LOCAL_RANK``; anything else is
        unchanged."""
        import torch

        if self.active and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def shard(self, indices):
        """This rank's part of ``indices`` (all of them in a single process)."""
        return shard(indices, self.rank, self.world) if self.active else indices

    def barrier(self) -> None:
        """Wait for every rank (nothing to wait for in a single process)."""
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def all_sum(self, values, dtype=None):
        """The element-wise sum over ranks of a list of numbers, as a CPU tensor (float64 unless
        ``dtype``)."""
        import torch

        t = torch.as_tensor(values, dtype=dtype or torch.float64)
        if self.active:
            import torch.distributed as dist

            # A CPU tensor: gloo, also in a job whose CUDA tensors go through NCCL
            dist.all_reduce(t)
        return t

    def decide(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on rank 0 and hand its JSON-able result, or its error, to every rank.

        On rank 0 an error is raised as it is; on the others as a :class:`PeerError` with the same
        message, so no rank waits for a result that will never come.
        """
        if not self.active:
            return fn()
        outcome, error = None, None
        if self.is_main:
            try:
                outcome = {"ok": fn()}
            except BaseException as exc:  # every kind: the others must not wait for a value
                error = exc
                outcome = {"error": one_line(exc), "code": getattr(exc, "exit_code", 3)}
        outcome = self.broadcast_json(outcome)
        if error is not None:
            raise error
        if "error" in outcome:
            raise _peer_error(outcome["error"], outcome.get("code", 3))
        return outcome["ok"]

    def broadcast_json(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank, sent as JSON bytes (no pickle crosses between
        processes)."""
        if not self.active:
            return obj
        import torch
        import torch.distributed as dist

        data = json.dumps(obj).encode() if self.is_main else b""
        size = torch.tensor([len(data)], dtype=torch.int64)
        dist.broadcast(size, 0)
        buf = (
            torch.frombuffer(bytearray(data), dtype=torch.uint8)
            if self.is_main
            else torch.empty(int(size), dtype=torch.uint8)
        )
        if int(size):
            dist.broadcast(buf, 0)
        return json.loads(bytes(buf.numpy()).decode())

    def gather_to_main(self, tensor) -> Optional[list]:
        """Every rank's ``tensor`` (equal shapes) on rank 0, in rank order; None on the others."""
        if not self.active:
            return [tensor]
        import torch
        import torch.distributed as dist

        parts = [torch.empty_like(tensor) for _ in range(self.world)] if self.is_main else None
        dist.gather(tensor, parts, dst=0)
        return parts

    # ---- the job's key-value store: errors, work queues, results that arrive at different times
    # ----

    def key(self, name: str) -> str:
        """A store key for one use of ``name`` (every rank gets the same key at the same point)."""
        self._seq += 1
        return f"{name}/{self._seq}"

    def publish_error(self, message: str) -> None:
        """Leave this rank's failure in the store for the ranks whose collectives will now break."""
        if self.store is not None:
            with contextlib.suppress(Exception):  # the store may be gone with the job
                self.store.set(f"error/{self.rank}", message)

    def peer_error(self, wait_s: float = 0.0) -> Optional[str]:
        """The message another rank left in the store (waiting up to ``wait_s`` for one), or
        None."""
        if self.store is None:
            return None
        deadline = time.monotonic() + wait_s
        while True:
            for r in range(self.world):
                if r == self.rank:
                    continue
                with contextlib.suppress(Exception):
                    if self.store.check([f"error/{r}"]):
                        return self.store.get(f"error/{r}").decode("utf-8", "replace")
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.2)

    def wait_for(self, keys: Sequence[str], on_poll: Optional[Callable[[], None]] = None) -> None:
        """Wait until ``keys`` exist in the store, however long that takes, while every peer lives.

        For waits of unknown length (a rank finishing its share of an ablation grid), where a
        collective's timeout would be wrong: a peer that reports an error, or stops its heartbeat
        for ``STALE_S`` seconds, ends the wait with a :class:`PeerError`.
        """
        seen: dict[int, tuple[int, float]] = {}
        while not self.store.check(list(keys)):
            message = self.peer_error()
            if message is not None:
                raise PeerError(message)
            now = time.monotonic()
            for r in range(self.world):
                if r == self.rank:
                    continue
                beat = int(self.store.add(f"alive/{r}", 0))
                if seen.get(r, (None,))[0] != beat:
                    seen[r] = (beat, now)
                elif now - seen[r][1] > STALE_S:
                    raise PeerError(
                        f"rank {r} stopped responding (no sign of life for {STALE_S:.0f} s); the "
                        "job "
                        "ends. Finished work is kept: rerun with --resume"
                    )
            if on_poll is not None:
                on_poll()
            time.sleep(0.5)


SINGLE = Context()
_current: Context = SINGLE


def current() -> Context:
    """The job this process belongs to: the active :func:`session`, or :data:`SINGLE`."""
    return _current


@contextlib.contextmanager
def single_process() -> Iterator[Context]:
    """Within the block, training runs as a single process even inside a job (an ablation cell
    per rank)."""
    global _current
    outer, _current = _current, SINGLE
    try:
        yield SINGLE
    finally:
        _current = outer


def one_line(exc: BaseException) -> str:
    """An exception as the one line a user sees."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _peer_error(message: str, code: int) -> PeerError:
    err = PeerError(message)
    err.exit_code = code
    return err


def timeout_seconds() -> float:
    """The collective timeout: ``$TEXTCLF_DIST_TIMEOUT`` seconds, else ``DEFAULT_TIMEOUT_S``."""
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise TextclfError(f"{TIMEOUT_ENV} '{raw}' must be a number of seconds > 0")
    return value


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        raise TextclfError(
            f"environment variable {name}={os.environ[name]!r} is not an integer"
        ) from None


@contextlib.contextmanager
def session(device: str = "auto") -> Iterator[Context]:
    """Join the job torchrun started (a no-op yielding :data:`SINGLE` when it did not).

    ``device`` (``auto|cpu|cuda``) picks the backend: gloo alone for CPU work, NCCL for CUDA
    tensors plus gloo for the small CPU messages. Each rank uses ``cuda:LOCAL_RANK``. Within the
    block SIGTERM (how torchrun stops the ranks when one fails) raises a :class:`PeerError`, so
    the checkpoint in flight lands and the rank ends with one line. Errors leaving the block are
    published to the other ranks, and broken collectives are explained by what a peer published.
    """
    global _current
    if not launched():
        yield SINGLE
        return

    ctx = _init(device)
    outer, _current = _current, ctx
    old_handler = stop_on_sigterm()
    beat = Heartbeat(ctx)
    failed = False
    try:
        yield ctx
    except BaseException as exc:
        failed = True
        beat.stop()
        # The rank is ending: from here torchrun's SIGTERM (sent once another rank has exited) is
        # ignored, so it neither cuts short the wait for a peer's message below nor kills the
        # process before it prints its one line. torchrun still SIGKILLs it after its grace period.
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # First: a failure of this rank is published before its sockets close
        explained = _explain(ctx, exc)
        # NCCL's teardown can block on a dead peer: the process exit ends it instead
        if ctx.backend == "gloo":
            _destroy()
        if explained is exc:
            raise
        raise explained from None
    else:
        beat.stop()
        _destroy()
    finally:
        beat.stop()
        _current = outer
        if not failed:
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signal.SIGTERM, old_handler)


def _destroy() -> None:
    import torch.distributed as dist

    with contextlib.suppress(Exception):
        dist.destroy_process_group()


def _explain(ctx: Context, exc: BaseException) -> BaseException:
    """What a rank raises for ``exc``: its own error published for the others, or a peer's
    failure."""
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return exc
    if isinstance(exc, PeerError):
        # Torchrun's SIGTERM: say why, when the failing rank left word
        if getattr(exc, "stopped", False):
            # torchrun waits 30 s before SIGKILL; a loaded machine can need seconds to answer the
            # store
            message = ctx.peer_error(wait_s=PEER_WORD_S)
            if message is not None:
                return _peer_error(f"{message} (the job stopped because of it)", exc.exit_code)
        return exc
    if isinstance(exc, TextclfError) or not _is_collective_failure(exc):
        ctx.publish_error(f"rank {ctx.rank}: {one_line(exc)}")
        return exc
    message = ctx.peer_error(wait_s=PEER_WORD_S)  # the failing rank publishes just before it exits
    if message is not None:
        return PeerError(f"{message} (the job stopped because of it)")
    return PeerError(
        f"rank {ctx.rank} lost the other ranks of the job ({one_line(exc)[:160]}): a rank was "
        "killed "
        "or its machine went away. Files written so far are complete: continue with --resume"
    )


def _is_collective_failure(exc: BaseException) -> bool:
    import torch.distributed as dist

    if isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(
        s in text
        for s in (
            "gloo",
            "nccl",
            "connection closed",
            "connection reset",
            "broken pipe",
            "timed out",
        )
    )


def _init(device: str) -> Context:
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    if not dist.is_available():
        raise TextclfError(
            "this torch build has no torch.distributed; run textclf without torchrun"
        )
    rank, world = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    local_world = _env_int("LOCAL_WORLD_SIZE", world)
    use_cuda = resolve_device(device).type == "cuda"
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise TextclfError(
                f"rank {rank} has LOCAL_RANK {local_rank} but this machine shows "
                f"{torch.cuda.device_count()} CUDA device(s); start at most that many processes "
                "per node (--nproc-per-node)"
            )
        torch.cuda.set_device(local_rank)
    backend = "cpu:gloo,cuda:nccl" if use_cuda else "gloo"
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_seconds()))
    except (RuntimeError, ValueError) as exc:
        raise TextclfError(
            f"rank {rank} could not join the job ({one_line(exc)[:200]}); check the rendezvous "
            "endpoint and that every node runs the same command"
        ) from None
    from torch.distributed.distributed_c10d import _get_default_store

    run_id = os.environ.get("TORCHELASTIC_RUN_ID", "job")
    prefix = f"textclf/{run_id}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
    store = dist.PrefixStore(prefix, _get_default_store())
    return Context(rank, world, local_rank, local_world, True, backend, store)
