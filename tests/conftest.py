import asyncio
import sys
import threading

import pytest
import uvloop

STOP_AT = 0.8  # a test whose event loop still runs at this part of its timeout (pytest-timeout) is stopped


def pytest_asyncio_loop_factories(config, item):
    """Every async test runs on uvloop, the loop the edge runs on in production."""
    return {"uvloop": uvloop.new_event_loop}


def _main_thread_loop():
    """The loop pytest-asyncio's runner runs in the main thread now (a test, or an
    async fixture's set-up or teardown), if any."""
    frame = sys._current_frames().get(threading.main_thread().ident)
    while frame is not None:
        runner = frame.f_locals.get("self") if frame.f_code.co_name == "run" else None
        if isinstance(runner, asyncio.Runner):
            return runner._loop
        frame = frame.f_back
    return None


def _all_tasks() -> list:
    """asyncio's set of every task, read from another thread (it may change meanwhile)."""
    for _ in range(100):
        try:
            return list(asyncio.tasks._all_tasks)
        except RuntimeError:  # changed size during the iteration
            continue
    return []


def _pending_tasks() -> str:
    """Each pending asyncio task (of every loop) and where it waits."""
    pending = [task for task in _all_tasks() if not task.done()]
    lines = [f"{len(pending)} pending asyncio tasks:"]
    for task in pending:
        lines.append(f"  {task!r}")
        lines += [f"    {f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}" for f in task.get_stack()]
    return "\n".join(lines)


def _stop_event_loop(nodeid: str) -> None:
    """In a timer thread: cancel the pending tasks of the loop running in the main
    thread, with the list of every pending task as the cancellation's message.
    pytest-timeout's signal cannot end an async test: under uvloop its handler runs
    only when the loop next runs Python code, which a test waiting forever never does."""
    loop = _main_thread_loop()
    if loop is None:
        return  # a sync test: pytest-timeout's signal ends it
    report = _pending_tasks()
    for task in _all_tasks():
        if task.get_loop() is loop and not task.done():
            loop.call_soon_threadsafe(task.cancel, f"{nodeid} timed out; {report}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    timeout = float(item.config.getini("timeout") or 0)
    timer = None
    if timeout:
        timer = threading.Timer(timeout * STOP_AT, _stop_event_loop, args=(item.nodeid,))
        timer.daemon = True
        timer.start()
    try:
        return (yield)
    finally:
        if timer is not None:
            timer.cancel()
