"""The Ray Serve application: a FastAPI ingress in front of a batching model deployment.

    MixHicIngress (FastAPI, :mod:`mixhic.serve.api`)   validates requests, reads regions
        |  DeploymentHandle (numpy arrays)
    MixHicModel (``@serve.batch`` per task)             one model per task, CPU or GPU

One application serves one model per task: give ``--model``/``--checkpoint`` once per
task to serve several (``--checkpoint hic_dir --checkpoint loops_dir``); a second model
of the same task is an error (run a second app for it). Models load from a model
directory or the MLflow registry (safetensors + JSON; nothing is unpickled).

Library: :func:`build_app` (an ``Application`` for ``serve.run``), :func:`app_builder`
(the ``import_path`` of ``serve/serve-config.yaml`` for ``serve deploy``), :func:`run`
(start Serve on host:port and deploy). CLI: ``mixhic serve``; it binds 127.0.0.1 unless
``--host`` says otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from typing import Any

import numpy as np
from ray import serve

from mixhic.serve.api import RequestError, build_api
from mixhic.serve.config import GenomeFiles, ServeConfig
from mixhic.serve.engine import ModelCard, load_task_models

__all__ = ["ModelServer", "Ingress", "build_app", "app_builder", "run", "config_from_args",
           "cli_main"]

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "serve-demo"


@serve.deployment(name="MixHicModel")
class ModelServer:
    """Holds ``{task: TaskModel}``; requests of a task are batched by ``@serve.batch``.

    The forward runs in a worker thread, so the replica keeps queueing requests while a
    batch computes: under load the next batch is full as soon as the last one ends, and
    ``batch_wait_timeout_s`` only matters at low load (where it is pure latency).
    """

    def __init__(self, sources: list[str], device: str = "auto", max_batch_size: int = 16,
                 batch_wait_timeout_s: float = 0.002) -> None:
        self.models = load_task_models(sources, device)
        self._stats = {task: {"batches": 0, "items": 0} for task in self.models}
        for fn in (self._batch_hic, self._batch_loops, self._batch_cage):
            fn.set_max_batch_size(max_batch_size)
            fn.set_batch_wait_timeout_s(batch_wait_timeout_s)

    def cards(self) -> dict[str, ModelCard]:
        return {task: m.card for task, m in self.models.items()}

    def stats(self) -> dict[str, dict[str, int]]:
        """Batches run and items served per task by this replica (mean batch size)."""
        return {t: dict(v) for t, v in self._stats.items()}

    async def predict(self, task: str, epi: np.ndarray, hic: np.ndarray | None) -> np.ndarray:
        """One window: epi (C, 2L), hic (W, W) | None -> hic (W, W) | loops () | cage (W,)."""
        if task not in self.models:
            raise ValueError(f"task: no {task} model is served here")
        batched = {"hic": self._batch_hic, "loops": self._batch_loops, "cage": self._batch_cage}
        out = await batched[task]((epi, hic))
        if isinstance(out, Exception):
            raise out
        return out

    def _forward(self, task: str, items: list[tuple[np.ndarray, np.ndarray | None]]) -> list:
        """Stack the well-formed items into one batch; malformed ones get their own error."""
        model = self.models[task]
        self._stats[task]["batches"] += 1
        self._stats[task]["items"] += len(items)
        results: list[Any] = [None] * len(items)
        good = []
        for i, (epi, hic) in enumerate(items):
            try:
                model.check(epi[None], None if hic is None else hic[None])
                good.append(i)
            except ValueError as exc:
                results[i] = exc
        if good:
            epi = np.stack([items[i][0] for i in good])  # (B, C, 2L)
            hic = np.stack([items[i][1] for i in good]) if model.card.needs_hic else None
            out = model.predict(epi, hic)
            for k, i in enumerate(good):
                results[i] = out[k]
        return results

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def _batch_hic(self, items: list) -> list:
        return await asyncio.to_thread(self._forward, "hic", items)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def _batch_loops(self, items: list) -> list:
        return await asyncio.to_thread(self._forward, "loops", items)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def _batch_cage(self, items: list) -> list:
        return await asyncio.to_thread(self._forward, "cage", items)


@serve.deployment(name="MixHicIngress")
@serve.ingress()
class Ingress:
    """HTTP front: the FastAPI app of :func:`mixhic.serve.api.build_api` over this backend."""

    def __init__(self, model, genome: GenomeFiles | None = None,
                 max_body_bytes: int = 8 * 2**20) -> None:
        self._model = model  # DeploymentHandle of MixHicModel
        self._genome = genome or GenomeFiles()
        self._max_body_bytes = max_body_bytes
        self._cards: dict[str, ModelCard] | None = None
        self._windows: dict[str, Any] = {}  # task -> GenomeWindows (opened lazily)

    def __serve_build_asgi_app__(self):
        return build_api(self, self._max_body_bytes)

    async def cards(self) -> dict[str, ModelCard]:
        if self._cards is None:
            self._cards = await self._model.cards.remote()
        return self._cards

    async def predict(self, task: str, epi: np.ndarray, hic: np.ndarray | None) -> np.ndarray:
        return await self._model.predict.remote(task, epi, hic)

    @property
    def region_requests(self) -> bool:
        return self._genome.configured

    def _reader(self, card: ModelCard):
        from mixhic.serve.regions import GenomeWindows

        if card.task not in self._windows:
            self._windows[card.task] = GenomeWindows(self._genome, card)
        return self._windows[card.task]

    async def region(self, card: ModelCard, chrom: str, start: int, start2: int | None):
        def read():
            try:
                return self._reader(card).request_window(chrom, start, start2)
            except RequestError:
                raise
            except ValueError as exc:  # files that do not fit the model: a server-side setup
                raise RequestError("chrom", f"cannot read the region: {exc}", 400) from None

        return await asyncio.to_thread(read)


def build_app(cfg: ServeConfig):
    """The Serve ``Application`` for ``cfg`` (``cfg.models`` must name >= 1 model)."""
    if not cfg.models:
        from mixhic.platform.errors import MixHicError

        raise MixHicError("models: no model to serve (give --model URI or --checkpoint DIR)")
    b = cfg.batching
    model = ModelServer.options(**cfg.model_deployment.serve_options()).bind(
        list(cfg.models), cfg.device, b.max_batch_size, b.batch_wait_timeout_s
    )
    return Ingress.options(**cfg.ingress.serve_options()).bind(
        model, cfg.genome, cfg.max_body_bytes
    )


def app_builder(args: dict[str, Any]):
    """Entry point for ``serve deploy`` / ``serve run`` (``import_path`` in serve-config.yaml).

    ``args``: ``config`` (shipped name or YAML path, default serve-demo), ``models``
    (list of sources), ``overrides`` (list of ``key=value``).
    """
    from mixhic.platform.config import load_config, parse_overrides

    args = dict(args or {})
    overrides = parse_overrides(list(args.pop("overrides", []) or []))
    models = args.pop("models", None)
    cfg_name = args.pop("config", DEFAULT_CONFIG)
    if args:
        raise ValueError(f"app args: unknown keys {sorted(args)} (known: config, models, "
                         f"overrides)")
    if models:
        overrides["models"] = list(models)
    return build_app(load_config(cfg_name, ServeConfig, overrides))


def run(cfg: ServeConfig, blocking: bool = False) -> str:
    """Start Serve on ``cfg.host:cfg.port``, deploy the app, return its base URL."""
    from mixhic.platform.runtime import ensure_ray

    ensure_ray()
    serve.start(http_options={"host": cfg.host, "port": cfg.port})
    serve.run(build_app(cfg), name=cfg.app_name, route_prefix=cfg.route_prefix,
              blocking=False)
    url = f"http://{cfg.host}:{cfg.port}{cfg.route_prefix.rstrip('/')}"
    log.info("serving %s at %s (docs: %s/docs)", ", ".join(cfg.models), url, url)
    if blocking:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            log.info("shutting down")
        finally:
            serve.shutdown()
    return url


def config_from_args(argv: list[str]) -> ServeConfig:
    """The :class:`ServeConfig` that ``mixhic serve ARGS`` runs with."""
    p = argparse.ArgumentParser(
        prog="mixhic serve",
        description="Serve fine-tuned MIX-HIC models over HTTP with Ray Serve "
                    "(one model per task; repeat --model/--checkpoint to serve several).",
    )
    p.add_argument("--model", action="append", default=[], metavar="URI",
                   help="MLflow model URI, e.g. models:/mixhic-hic@champion (repeatable)")
    p.add_argument("--checkpoint", action="append", default=[], metavar="DIR",
                   help="model directory (model.safetensors + mixhic.json) (repeatable)")
    p.add_argument("--config", default=DEFAULT_CONFIG,
                   help=f"serve config: shipped name or YAML path (default {DEFAULT_CONFIG})")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="HTTP port (default from config)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    ns = p.parse_args(argv)

    from mixhic.platform.config import load_config, parse_overrides

    overrides = parse_overrides(ns.overrides)
    sources = ns.model + ns.checkpoint
    if sources:
        overrides["models"] = sources
    if ns.host:
        overrides["host"] = ns.host
    if ns.port:
        overrides["port"] = ns.port
    return load_config(ns.config, ServeConfig, overrides)


def cli_main(argv: list[str]) -> int:
    run(config_from_args(argv), blocking=True)
    return 0
