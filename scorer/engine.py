"""The local engine: fetch + decode on worker threads, batched inference on the calling thread.

onnxruntime releases the GIL while it runs, so the workers decode the next covers while the
current batch is being featurized; a bounded window keeps memory flat and the order stable.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

import numpy as np

from scorer.decode import InMemory, decode_image
from scorer.errors import RowError
from scorer.fetch import CoverFetcher

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Outcome(Generic[T]):
    """One input item and either its decoded image or the reason it has none."""

    item: T
    image: np.ndarray | None = None
    error: RowError | None = None


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, window: int) -> Iterator[tuple[T, Future]]:
    """Run ``fn`` over ``items`` on a thread pool, yielding ``(item, done future)`` in input order.

    At most ``window`` items are in flight, so a slow consumer never lets work pile up.
    """
    pending: deque[tuple[T, Future]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scorer-decode") as pool:
        for item in items:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= window:
                head = pending.popleft()
                head[1].exception()  # wait
                yield head
        while pending:
            head = pending.popleft()
            head[1].exception()
            yield head


def decoded(items: Iterable[T], ref: Callable[[T], str], fetcher: CoverFetcher,
            workers: int = 4, window: int = 256) -> Iterator[Outcome[T]]:
    """Fetch and decode each item's cover; every item yields exactly one :class:`Outcome`.

    Fetching streams ahead on the fetcher's event loop; decoding runs on ``workers`` threads.
    """

    def work(fetched: tuple[T, object]) -> np.ndarray:
        data = fetched[1]
        if isinstance(data, RowError):
            raise data
        return decode_image(cast(InMemory, data))  # bytes, or an image the fetcher holds in memory

    for (item, _), fut in ordered_map(work, fetcher.stream(items, ref), workers, window):
        err = fut.exception()
        if err is None:
            yield Outcome(item, image=fut.result())
        elif isinstance(err, RowError):
            yield Outcome(item, error=err)
        else:  # not a property of the row (a bug, a missing module): stop the run loudly
            raise err


def batched(outcomes: Iterable[Outcome[T]], size: int) -> Iterator[list[Outcome[T]]]:
    """Group outcomes so that each group holds at most ``size`` decoded images.

    Failed outcomes travel with the batch they arrived in, which keeps the input order.
    """
    batch: list[Outcome[T]] = []
    n_images = 0
    for outcome in outcomes:
        batch.append(outcome)
        if outcome.image is not None:
            n_images += 1
            if n_images >= size:
                yield batch
                batch, n_images = [], 0
    if batch:
        yield batch


def stack_images(batch: list[Outcome]) -> np.ndarray:
    images = [o.image for o in batch if o.image is not None]
    if not images:
        return np.zeros((0, 224, 224, 3), dtype=np.uint8)
    return np.stack(images)
