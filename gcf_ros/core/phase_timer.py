"""Wall-clock timing of the named phases of a loop, for benchmarks; off unless a timer is attached.

The refiners wrap each phase of an iteration in ``with timed(self.timer, "render"): ...``. With
``self.timer = None`` (the default) ``timed`` returns one shared, do-nothing context manager, so the
hook costs a function call and a ``None`` test per phase and never touches a tensor. Attach a
:class:`PhaseTimer` to record every phase's duration; ``gcf-bench`` (:mod:`gcf_ros.bench`) does.

On CUDA, pass ``sync=torch.cuda.synchronize`` so that each phase is charged with the kernels it
launched rather than the ones still queued from the previous phase.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

__all__ = ["PhaseTimer", "timed"]

_OFF: AbstractContextManager[None] = nullcontext()


class PhaseTimer:
    """Records the wall time of every ``phase(name)`` block.

    Attributes:
        times: phase name -> durations in seconds, one per block, in call order.
    """

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.times: dict[str, list[float]] = {}
        self._sync = sync

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block; blocks may nest (each name gets its own list)."""
        if self._sync is not None:
            self._sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self._sync is not None:
                self._sync()
            self.times.setdefault(name, []).append(time.perf_counter() - t0)

    def clear(self) -> None:
        """Forget every recorded duration."""
        self.times.clear()


def timed(timer: PhaseTimer | None, name: str) -> AbstractContextManager[None]:
    """``timer.phase(name)``, or a shared no-op context when ``timer`` is None."""
    return _OFF if timer is None else timer.phase(name)
