"""The upload threads of a push (client/workers.py): tasks added while they run."""

import threading

import pytest

from owncdn.client.workers import Workers


def test_a_task_added_first_is_begun_before_those_waiting():
    """Rule 1: one thread, held in its first task while three more are added."""
    workers, begun, hold = Workers(1), [], threading.Event()
    workers.add(lambda: (hold.wait(10), begun.append("a"))[1])
    workers.add(lambda: begun.append("b"))
    workers.add(lambda: begun.append("c"))
    workers.add(lambda: begun.append("first"), first=True)
    hold.set()
    workers.join()
    assert begun == ["a", "first", "b", "c"]


def test_tasks_added_by_a_task_after_close_still_run_and_results_keep_their_order():
    """Rules 2-3: a question's answer (the uploads) may come after ``close``."""
    workers = Workers(3)

    def ask():
        for n in (2, 3):
            workers.add(lambda n=n: n * 10)
        return 1

    workers.add(ask)
    workers.close()
    assert workers.join() == [1, 20, 30]
    assert "closed" in repr(workers) and "tasks=3" in repr(workers)


def test_after_stop_nothing_is_begun_and_join_raises_its_error():
    """Rule 2: an error outside the tasks (the directory could not be read)."""
    workers, begun, hold = Workers(1), [], threading.Event()
    workers.add(lambda: hold.wait(10))
    workers.add(lambda: begun.append("b"))
    workers.stop(KeyError("outside"))
    hold.set()
    with pytest.raises(KeyError, match="outside"):
        workers.join()
    assert begun == []


def test_a_task_error_is_raised_before_a_stop_error():
    workers = Workers(1)

    def fail():
        raise ValueError("task")

    workers.add(fail)
    workers.wait(lambda: False)  # Rule 4: returns once a task failed
    workers.stop(KeyError("outside"))
    with pytest.raises(ValueError, match="task"):
        workers.join()


def test_wait_returns_once_ready_holds():
    """Rule 4: ``ready`` is read again when a task calls ``changed``."""
    workers, hold, state = Workers(2), threading.Event(), {"asked": 0}

    def ask():
        with workers.lock:
            state["asked"] += 1
            workers.changed()
        hold.wait(10)  # still running: the workers are not idle

    workers.add(ask)
    workers.wait(lambda: state["asked"] == 1)
    assert "running=1" in repr(workers)
    hold.set()
    assert workers.join() == [None]
