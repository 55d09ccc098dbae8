import asyncio
import threading

import pytest
import uvloop

STOP_AT = 0.8  # an async test still running at this part of its timeout (pytest-timeout) is stopped


def pytest_asyncio_loop_factories(config, item):
    """Every async test runs on uvloop, the loop the edge runs on in production."""
    return {"uvloop": uvloop.new_event_loop}


def _pending_tasks() -> str:
    """Each pending asyncio task (of every loop) and where it waits."""
    pending = [task for task in list(asyncio.tasks._all_tasks) if not task.done()]
    lines = [f"{len(pending)} pending asyncio tasks:"]
    for task in pending:
        lines.append(f"  {task!r}")
        lines += [f"    {f.f_code.co_filename}:{f.f_lineno} in {f.f_code.co_name}" for f in task.get_stack()]
    return "\n".join(lines)


def _stop_async_test(item) -> None:
    """In a timer thread: cancel the pending tasks of the loop the test runs on, the
    test's own among them, with the list of every pending task as the cancellation's
    message. pytest-timeout's signal cannot end an async test: under uvloop its handler
    runs only when the loop next runs Python code, which a test waiting forever never does."""
    report = _pending_tasks()
    name, path = item.function.__name__, str(item.path)
    for task in list(asyncio.tasks._all_tasks):
        code = getattr(task.get_coro(), "cr_code", None)
        if not task.done() and code is not None and code.co_name == name and code.co_filename == path:
            loop = task.get_loop()
            for other in list(asyncio.tasks._all_tasks):
                if other.get_loop() is loop and not other.done():
                    loop.call_soon_threadsafe(other.cancel, f"{item.nodeid} timed out; {report}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    timeout = float(item.config.getini("timeout") or 0)
    timer = None
    if timeout and asyncio.iscoroutinefunction(getattr(item.function, "__wrapped__", item.function)):
        timer = threading.Timer(timeout * STOP_AT, _stop_async_test, args=(item,))
        timer.daemon = True
        timer.start()
    try:
        return (yield)
    finally:
        if timer is not None:
            timer.cancel()
