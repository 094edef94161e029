"""weft: queue's queues and threading's primitives, on the weft C++ library.

A drop-in for the standard library's ``queue`` (Queue, LifoQueue, PriorityQueue,
SimpleQueue, Empty, Full, ShutDown) and for threading's Lock, RLock, Condition, Semaphore,
BoundedSemaphore, Event and Barrier, with Python 3.13's semantics on every supported
version. ``Empty`` and ``Full`` are ``queue.Empty`` and ``queue.Full``; ``ShutDown`` is
``queue.ShutDown`` where it exists (3.13+); ``BrokenBarrierError`` is threading's.

Beyond the standard library: ``Queue.get_many``/``put_many``, and cancellation: every
blocking call takes ``cancel=token`` (a ``CancelToken``); ``token.cancel()`` makes the calls
waiting with it raise ``Cancelled``, having changed nothing.
"""

import os as _os

from weft._weft import (
    TIMEOUT_MAX,
    Barrier,
    BoundedSemaphore,
    BrokenBarrierError,
    Cancelled,
    CancelToken,
    Condition,
    Empty,
    Event,
    Full,
    LifoQueue,
    Lock,
    PriorityQueue,
    Queue,
    RLock,
    Semaphore,
    ShutDown,
    SimpleQueue,
)

__version__ = "0.1.0"

__all__ = [
    "Barrier",
    "BoundedSemaphore",
    "BrokenBarrierError",
    "Cancelled",
    "CancelToken",
    "Condition",
    "Empty",
    "Event",
    "Full",
    "LifoQueue",
    "Lock",
    "PriorityQueue",
    "Queue",
    "RLock",
    "Semaphore",
    "ShutDown",
    "SimpleQueue",
    "TIMEOUT_MAX",
]


def get_include():
    """The directory of weft's C++ headers for extensions (weft/python.hpp and weft/*.hpp)."""
    return _os.path.join(_os.path.dirname(__file__), "include")
