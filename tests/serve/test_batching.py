"""GreedyBatcher without Ray: batches cut when the model is free, errors stay per item."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from mixhic.core.config import ConfigError
from mixhic.serve.batching import GreedyBatcher


def _recorder(delay_s: float = 0.0):
    seen: list[list[int]] = []

    def fn(items):
        seen.append(list(items))
        time.sleep(delay_s)
        return [x * 10 if x >= 0 else ValueError(f"item {x}") for x in items]

    return fn, seen


def test_requests_queued_during_a_forward_form_the_next_batch():
    fn, seen = _recorder(delay_s=0.05)
    b = GreedyBatcher(fn, max_batch_size=8, wait_s=0.0)

    async def go():
        first = asyncio.create_task(b.submit(0))
        await asyncio.sleep(0.01)  # batch [0] is computing
        rest = [asyncio.create_task(b.submit(i)) for i in range(1, 11)]
        return [await first] + [await t for t in rest]

    assert asyncio.run(go()) == [i * 10 for i in range(11)]
    assert seen == [[0], list(range(1, 9)), [9, 10]]  # greedy, capped at max_batch_size
    assert (b.batches, b.items) == (3, 11)


def test_a_lone_request_runs_at_once_without_wait():
    fn, seen = _recorder()
    b = GreedyBatcher(fn, max_batch_size=16, wait_s=0.0)

    async def go():
        # with wait_s=0 a lone request is flushed as a batch of one; wait_for only
        # guards against a hang (no timing is asserted)
        return await asyncio.wait_for(b.submit(3), timeout=30)

    out = asyncio.run(go())
    assert out == 30 and seen == [[3]] and b.batches == 1


def test_wait_gathers_requests_arriving_within_the_window():
    fn, seen = _recorder()
    b = GreedyBatcher(fn, max_batch_size=16, wait_s=0.2)

    async def go():
        first = asyncio.create_task(b.submit(1))
        await asyncio.sleep(0.02)
        second = asyncio.create_task(b.submit(2))
        return await first, await second

    assert asyncio.run(go()) == (10, 20)
    assert seen == [[1, 2]]


def test_errors_reach_only_their_caller_and_a_failing_batch_reaches_all():
    fn, _ = _recorder(delay_s=0.02)
    b = GreedyBatcher(fn, max_batch_size=4)

    async def go():
        ts = [asyncio.create_task(b.submit(x)) for x in (1, -1, 2)]
        return await asyncio.gather(*ts, return_exceptions=True)

    ok1, bad, ok2 = asyncio.run(go())
    assert (ok1, ok2) == (10, 20) and isinstance(bad, ValueError)

    def boom(items):
        raise RuntimeError("forward failed")

    b2 = GreedyBatcher(boom, max_batch_size=4)

    async def go2():
        ts = [asyncio.create_task(b2.submit(x)) for x in range(3)]
        return await asyncio.gather(*ts, return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(go2()))

    async def after():  # the batcher still serves
        b2.fn = fn
        return await b2.submit(5)

    assert asyncio.run(after()) == 50


def test_forward_runs_off_the_event_loop_thread():
    loop_thread = []
    b = GreedyBatcher(lambda items: [threading.get_ident() for _ in items])

    async def go():
        loop_thread.append(threading.get_ident())
        return await b.submit(0)

    assert asyncio.run(go()) != loop_thread[0]


@pytest.mark.parametrize("kwargs", [{"max_batch_size": 0}, {"wait_s": -1}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))) as err:
        GreedyBatcher(lambda items: items, **kwargs)
    assert err.value.key == next(iter(kwargs))
