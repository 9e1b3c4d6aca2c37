"""A thread pool whose queue is ordered by priority: the earliest chunk's work goes first.

The engine walks the next chunk while the current one infers; on a plain FIFO pool the 64
walks of the next chunk queue in front of the current chunk's inference batches and the
two phases run one after the other. Here every task carries the chunk it serves: a free
thread takes the current chunk's batches first and fills idle time with the next chunk's
walks. Threads are `workers` many, never more: two cores run two tasks.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any


class PriorityPool:
    def __init__(self, workers: int, name: str = "eh") -> None:
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()  # FIFO among equal priorities
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{k}", daemon=True)
            for k in range(workers)
        ]
        for t in self._threads:
            t.start()

    def submit(self, fn: Callable, *args: Any, priority: int = 0) -> Future:
        fut: Future = Future()
        self._queue.put((priority, next(self._order), fn, args, fut))
        return fut

    def map(self, fn: Callable, items: Iterable, priority: int = 0) -> list:
        futures = [self.submit(fn, x, priority=priority) for x in items]
        return [f.result() for f in futures]

    def _work(self) -> None:
        while True:
            _, _, fn, args, fut = self._queue.get()
            if fn is None:
                return
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn(*args))
            except BaseException as e:  # handed to whoever waits on the future
                fut.set_exception(e)

    def shutdown(self) -> None:
        for _ in self._threads:
            self._queue.put((float("inf"), next(self._order), None, (), None))
        for t in self._threads:
            t.join()

    def __enter__(self) -> PriorityPool:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
