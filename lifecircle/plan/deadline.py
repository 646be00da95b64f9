"""Run a computation in a worker process that is stopped at its deadline (for the exact MILP check).

HiGHS (behind :func:`scipy.optimize.milp`) checks its ``time_limit`` only between certain steps: on a
city-sized covering problem (a tiled 69,000-node city) it was still running 400 s after a 10 s limit. So the
exact check runs in a child process, and the parent stops waiting at the deadline and kills it.
On Linux the child is forked (it shares the parent's arrays, nothing is copied); elsewhere it is
spawned and the arguments are pickled to it.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import sys
import time
from typing import Any, Callable

log = logging.getLogger("lifecircle")

__all__ = ["TimedOut", "call_with_deadline"]

#: Seconds the parent waits past the deadline for a result already on its way.
GRACE_S = 0.5


class TimedOut(Exception):
    """The computation did not finish before its deadline (the worker was stopped)."""


def _context():
    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def _serve(conn, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    try:
        result = ("ok", fn(*args, **kwargs))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which re-raises it
        result = ("error", f"{type(exc).__name__}: {exc}")
    try:
        conn.send(result)
    finally:
        conn.close()


def call_with_deadline(fn: Callable[..., Any], *args: Any, time_limit_s: float, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a worker process; :class:`TimedOut` if it takes over ``time_limit_s``.

    The call returns by ``time_limit_s`` (plus :data:`GRACE_S`) whatever ``fn`` does: at the
    deadline the worker is killed. ``fn`` must be a module-level function; its result must pickle.

    Examples
    --------
    >>> import math
    >>> call_with_deadline(math.factorial, 10, time_limit_s=30)
    3628800
    >>> try:
    ...     call_with_deadline(time.sleep, 60, time_limit_s=0.2)
    ... except TimedOut as e:
    ...     print(e)
    not finished within 0.2 s
    """
    t0 = time.perf_counter()
    ctx = _context()
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_serve, args=(send, fn, args, kwargs), daemon=True)
    proc.start()
    send.close()
    try:
        remaining = time_limit_s + GRACE_S - (time.perf_counter() - t0)
        if remaining > 0 and recv.poll(remaining):
            try:
                status, value = recv.recv()
            except EOFError:  # the worker died without a word (e.g. out of memory)
                raise RuntimeError(f"the worker stopped without a result (exit code {proc.exitcode})") from None
            if status == "error":
                raise RuntimeError(value)
            return value
        raise TimedOut(f"not finished within {time_limit_s:g} s")
    finally:
        recv.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        log.debug("deadline worker %s after %.2f s (limit %g s)", "stopped" if proc.exitcode else "done",
                  time.perf_counter() - t0, time_limit_s)
