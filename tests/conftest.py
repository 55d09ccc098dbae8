import uvloop


def pytest_asyncio_loop_factories(config, item):
    """Every async test runs on uvloop, the loop the edge runs on in production."""
    return {"uvloop": uvloop.new_event_loop}
