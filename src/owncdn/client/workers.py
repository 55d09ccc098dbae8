"""``Workers``: a push's upload threads, taking tasks that may be added while they run.

    workers = Workers(parallel=4)
    workers.add(lambda: send(batch))      # from any thread, also from a task
    workers.close()                       # nothing more from outside
    results = workers.join()              # in the order the tasks were added

Rules:
1. Up to ``parallel`` plain threads (``threading``, not ``concurrent.futures``: with
   ``logging``, about 6 ms of `owncdn push`'s start), started as tasks are added (never
   more threads than tasks). Tasks are begun in the order they were added, except one
   added with ``first=True``, which is begun before every task not begun yet.
2. Once a task raised, or ``stop(exc)`` was called (an error outside the tasks), no
   task is begun; ``join()`` waits for the tasks under way and raises the first error
   in the order the tasks were added (``stop``'s error after every task's).
3. After ``close()`` the threads end once no task is left and none is running (a running
   task may still add more: a question whose answer is the uploads to make).
4. ``wait(ready)`` returns once ``ready()`` (read under the workers' lock; a task that
   changes what it reads calls ``changed()``) holds, a task failed, or no task is left.
"""

from __future__ import annotations

import threading

TYPE_CHECKING = False  # not from typing: `owncdn push` starts without importing it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["Workers"]


class Workers:
    """Rules 1-4."""

    def __init__(self, parallel: int) -> None:
        self.parallel = max(1, parallel)
        self.lock = threading.Condition()
        self._tasks: list[Callable[[], Any]] = []
        self._results: list[Any] = []
        self._queue: list[int] = []  # indexes of tasks not begun, the next last (popped)
        self._urgent: list[int] = []  # those added with first=True
        self._errors: dict[int, BaseException] = {}
        self._running = 0
        self._closed = False
        self._threads: list[threading.Thread] = []

    def __repr__(self) -> str:
        return (f"<Workers threads={len(self._threads)} tasks={len(self._tasks)} waiting={len(self._queue) + len(self._urgent)}"
                f" running={self._running} errors={len(self._errors)}{' closed' if self._closed else ''}>")

    def add(self, task: Callable[[], Any], first: bool = False) -> None:
        """Rule 1."""
        with self.lock:
            i = len(self._tasks)
            self._tasks.append(task)
            self._results.append(None)
            if first:
                self._urgent.append(i)
            else:
                self._queue.insert(0, i)
            self.lock.notify()
            start = len(self._threads) < min(self.parallel, len(self._tasks))
            if start:
                thread = threading.Thread(target=self._work, name=f"owncdn-upload-{len(self._threads)}")
                self._threads.append(thread)
        if start:
            thread.start()

    def close(self) -> None:
        """Rule 3."""
        with self.lock:
            self._closed = True
            self.lock.notify_all()

    def stop(self, exc: BaseException) -> None:
        """Rule 2: begin nothing more; ``join()`` raises ``exc`` unless a task failed."""
        with self.lock:
            self._errors[1 << 62] = exc
            self._closed = True
            self.lock.notify_all()

    @property
    def failed(self) -> bool:
        """A task raised, or ``stop`` was called (Rule 2)."""
        return bool(self._errors)

    def changed(self) -> None:
        """Rule 4: what ``wait``'s ``ready`` reads has changed (call it holding ``lock``)."""
        self.lock.notify_all()

    def wait(self, ready: Callable[[], bool]) -> None:
        """Rule 4."""
        with self.lock:
            while not (ready() or self._errors or self._idle()):
                self.lock.wait()

    def join(self) -> list[Any]:
        """Rule 2: every task's result, in the order they were added."""
        self.close()
        try:
            for thread in self._threads:
                thread.join()
        except BaseException as exc:  # an interrupt: the threads end the task they are in and begin none
            self.stop(exc)
            raise
        if self._errors:
            raise self._errors[min(self._errors)]
        return self._results

    def _idle(self) -> bool:
        return not self._queue and not self._urgent and self._running == 0

    def _work(self) -> None:
        lock = self.lock
        while True:
            with lock:
                while not self._errors and not self._queue and not self._urgent and not (self._closed and self._running == 0):
                    lock.wait()
                if self._errors or (not self._queue and not self._urgent):
                    lock.notify_all()
                    return
                i = self._urgent.pop() if self._urgent else self._queue.pop()
                self._running += 1
            try:
                self._results[i] = self._tasks[i]()
            except BaseException as exc:  # raised by join()
                with lock:
                    self._errors[i] = exc
            finally:
                with lock:
                    self._running -= 1
                    lock.notify_all()
