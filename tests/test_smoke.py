import pyasynq


async def test_async_enqueue_smoke(redis_url, r):
    async with pyasynq.AsyncClient(redis_url) as c:
        info = await c.enqueue(pyasynq.Task("t", b"x"), task_id="a")
    assert info.state is pyasynq.TaskState.PENDING
    assert r.lrange("asynq:{default}:pending", 0, -1) == [b"a"]


def test_sync_enqueue_smoke(redis_url, r):
    with pyasynq.Client(redis_url) as c:
        c.enqueue(pyasynq.Task("t", b"x"), task_id="a", queue="q")
    assert r.hget("asynq:{q}:t:a", "state") == b"pending"
