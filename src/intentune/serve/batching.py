"""Micro-batching: concurrent requests share one model call.

A model predicts 32 texts in one forward pass much faster than in 32, so the server does not call the model per
request. Each request puts its texts on a queue and waits; one background task takes the first request, waits up
to ``batch_wait_ms`` for others to join (up to ``max_batch_size`` texts), predicts them all with one
``predict_details`` call in a worker thread (so the event loop keeps accepting requests), and hands each request
its own slice of the results. While a batch runs, new requests queue up and form the next one, so batches grow
with the load by themselves.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from ..errors import IntentuneError

logger = logging.getLogger(__name__)

PredictFn = Callable[[list[str], int], list[dict[str, Any]]]


class PredictionError(IntentuneError):
    """The model failed on a batch; every request in that batch gets this error (the server answers 500)."""


@dataclass
class _Job:
    texts: list[str]
    top_k: int
    future: asyncio.Future[list[dict[str, Any]]] = field(repr=False)


class MicroBatcher:
    """Collects concurrent prediction requests into batches of at most ``max_batch_size`` texts.

    Args:
        predict: ``predict(texts, top_k)`` returning one result dict per text (the shape of
            :meth:`intentune.model.IntentClassifier.predict_details`); called in a worker thread, one batch at a time.
        max_batch_size: most texts per call. A single request with more texts is predicted alone, in one call.
        wait_ms: how long the first request of a batch waits for others; 0 takes only what is already queued.

    Example:
        >>> batcher = MicroBatcher(lambda texts, k: clf.predict_details(texts, top_k=k), max_batch_size=64)
        >>> results = await batcher.predict(["hi there"], top_k=3)  # inside the event loop
    """

    def __init__(self, predict: PredictFn, *, max_batch_size: int = 64, wait_ms: float = 5.0) -> None:
        self.predict_fn = predict
        self.max_batch_size = max_batch_size
        self.wait_s = wait_ms / 1000
        self.batches = 0  # model calls made, for tests and monitoring
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()  # binds to the event loop on first use
        self._task: asyncio.Task[None] | None = None
        self._carry: _Job | None = None  # taken from the queue but did not fit the last batch
        self._running: list[_Job] = []

    async def predict(self, texts: list[str], top_k: int = 1) -> list[dict[str, Any]]:
        """Predict ``texts`` as part of the next batch; results in ``texts`` order, each ``top`` cut to ``top_k``.

        Raises:
            PredictionError: if the model failed on the batch, or the batcher is stopped.
        """
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="intentune-micro-batcher")
        if self._task.done():
            raise PredictionError("the prediction worker has stopped; restart the server")
        job = _Job(list(texts), top_k, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(job)
        return await job.future

    async def close(self) -> None:
        """Stop the background task; requests still waiting fail with :class:`PredictionError`."""
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        waiting = [*self._running, *([self._carry] if self._carry else [])]
        while not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for job in waiting:
            if not job.future.done():
                job.future.set_exception(PredictionError("the server is shutting down"))

    async def _loop(self) -> None:
        while True:
            jobs = await self._collect()
            self._running = [job for job in jobs if not job.future.done()]  # skip requests whose client left
            if self._running:
                await self._run(self._running)
            self._running = []

    async def _collect(self) -> list[_Job]:
        first = self._carry or await self._queue.get()
        self._carry = None
        jobs = [first]
        self._take_queued(jobs)
        if sum(len(job.texts) for job in jobs) < self.max_batch_size and self.wait_s > 0:
            await asyncio.sleep(self.wait_s)
            self._take_queued(jobs)
        return jobs

    def _take_queued(self, jobs: list[_Job]) -> None:
        """Move queued jobs into ``jobs`` while they fit; the first one that does not waits for the next batch."""
        size = sum(len(job.texts) for job in jobs)
        while self._carry is None and not self._queue.empty():
            job = self._queue.get_nowait()
            if size + len(job.texts) > self.max_batch_size:
                self._carry = job
                return
            jobs.append(job)
            size += len(job.texts)

    async def _run(self, jobs: list[_Job]) -> None:
        texts = [text for job in jobs for text in job.texts]
        top_k = max(job.top_k for job in jobs)
        self.batches += 1
        try:
            results = await asyncio.to_thread(self.predict_fn, texts, top_k)
            if len(results) != len(texts):
                raise PredictionError(f"the model returned {len(results)} results for {len(texts)} texts")
        except Exception as exc:  # not swallowed: logged, and raised in every request of the batch
            logger.exception("prediction failed on a batch of %d texts from %d requests", len(texts), len(jobs))
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(PredictionError(f"prediction failed: {type(exc).__name__}"))
            return
        start = 0
        for job in jobs:
            part = results[start : start + len(job.texts)]
            start += len(job.texts)
            if not job.future.done():
                # Best-first lists: a request's top_k best are the first top_k of the batch's larger list.
                job.future.set_result([{**result, "top": result["top"][: job.top_k]} for result in part])
