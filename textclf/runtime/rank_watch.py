"""How a rank learns that its job is ending: torchrun's SIGTERM, and a torchrun agent that died.

torchrun stops the ranks of a failed job with SIGTERM; :func:`stop_on_sigterm` turns it into a
:class:`~textclf.runtime.distributed.PeerError`, so the checkpoint in flight lands and the rank
ends with one line. :class:`Heartbeat` keeps a counter per rank in the job's store (peers waiting
on the store tell a live rank from a dead one by it) and watches the rank's parent, the agent.
"""

from __future__ import annotations

import os
import signal
import threading

from textclf.errors import PeerError

HEARTBEAT_S = 2.0
ORPHAN_GRACE_S = 20.0


def stop_on_sigterm():
    """From now on SIGTERM raises a :class:`PeerError` in the main thread; returns the handler it
    replaced."""

    def stop(signum, frame):
        err = PeerError(
            "stopped: the job is ending (another rank failed or was killed, or torchrun was "
            "stopped); "
            "files written so far are complete: continue with --resume"
        )
        err.stopped = True
        raise err

    try:
        return signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (a library user's worker thread): leave signals alone
        return signal.getsignal(signal.SIGTERM)


class Heartbeat:
    """Counts up ``alive/<rank>`` in the store of ``ctx`` (a
    :class:`~textclf.runtime.distributed.Context`)
    every few seconds, so waiting peers can tell it lives, and ends the rank when its torchrun agent
    is gone.

    A SIGKILLed agent cannot stop its ranks (torchrun starts each in its own session), and the
    orphans would go on training, racing a ``--resume`` for the run dir. So a rank whose parent
    changes stops itself the way torchrun would have: SIGTERM (the checkpoint in flight lands),
    and if that has not ended it within ``ORPHAN_GRACE_S`` seconds, a hard exit.
    """

    def __init__(self, ctx):
        self._stop = threading.Event()
        self._ctx = ctx
        self._parent = os.getppid() if "TORCHELASTIC_RUN_ID" in os.environ else None
        self._thread = threading.Thread(target=self._run, name="textclf-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        store_alive, tick = True, 0
        while not self._stop.is_set():
            if store_alive and tick % round(HEARTBEAT_S / 0.5) == 0:
                try:
                    self._ctx.store.add(f"alive/{self._ctx.rank}", 1)
                except Exception:  # the store went away with the job: nothing left to tell
                    store_alive = False
            if self._parent is not None and os.getppid() != self._parent:
                os.kill(os.getpid(), signal.SIGTERM)
                if not self._stop.wait(ORPHAN_GRACE_S):
                    os._exit(1)
                return
            tick += 1
            self._stop.wait(0.5)

    def stop(self) -> None:
        """End the heartbeat (the rank is done)."""
        self._stop.set()
