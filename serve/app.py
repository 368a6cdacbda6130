"""The Ray Serve application: one deployment holding the FastAPI routes and the models.

    HAProxy (``http_ingress: haproxy``) or Serve's proxy actor (``proxy``) on host:port
        |  HTTP
    MixHic replica (:class:`MixHicServer`)   FastAPI (:mod:`mixhic.serve.api`): validates
        |                                   requests, reads regions
    GreedyBatcher per task                  stacks concurrent requests into one forward
        |  worker thread
    TaskModel (one per task)                CPU or GPU

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

import asyncio
import functools
import logging
import os
import shutil
import time
from typing import Any

import numpy as np
from mixhic.core.cliargs import Alias, ConfigCommand
from mixhic.core.config import as_overrides, load_config
from mixhic.core.errors import MixHicError
from mixhic.core.runtime import ensure_ray
from mixhic.serve import viewer, viewer_page
from mixhic.serve.api import MAX_ABS_INPUT, RequestError, build_api
from mixhic.serve.batching import GreedyBatcher
from mixhic.serve.config import HAPROXY_PUBLIC_PORTS, GenomeFiles, ServeConfig, haproxy_env
from mixhic.serve.engine import ModelCard, load_task_models
from mixhic.serve.regions import GenomeWindows
from mixhic.serve.viewer import MAX_LOOP_WINDOWS
from ray import serve

__all__ = ["MixHicServer", "build_app", "app_builder", "start_ray", "run",
           "config_from_args", "cli_main"]

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "serve-demo"


@serve.deployment(name="MixHic")
@serve.ingress()
class MixHicServer:
    """HTTP routes (:func:`mixhic.serve.api.build_api`) and the models, in one replica.

    Holds ``{task: TaskModel}`` and one :class:`~mixhic.serve.batching.GreedyBatcher` per
    task: concurrent requests of a task are stacked into one forward (up to
    ``max_batch_size``; a lone request waits at most ``batch_wait_timeout_s``). The
    forward runs in a worker thread, so the replica keeps accepting requests meanwhile.
    Routes and models share the replica: a request costs no second Ray hop (a separate
    model deployment behind a ``DeploymentHandle`` doubled the per-request CPU of the
    HTTP path; see ``tests/benchmarks/bench_serve.py``). Scale with replicas.
    """

    def __init__(self, sources: list[str], device: str = "auto", max_batch_size: int = 16,
                 batch_wait_timeout_s: float = 0.0, genome: GenomeFiles | None = None,
                 max_body_bytes: int = 8 * 2**20, max_abs_input: float = MAX_ABS_INPUT) -> None:
        _bind_replica_grpc_to_loopback()
        self.models = load_task_models(sources, device)
        self._cards = {task: m.card for task, m in self.models.items()}
        self._batchers = {
            task: GreedyBatcher(functools.partial(self._forward, task), max_batch_size,
                                batch_wait_timeout_s)
            for task in self.models
        }
        self._genome = genome or GenomeFiles()
        self._max_body_bytes = max_body_bytes
        self._max_abs_input = max_abs_input
        self._windows: dict[str, Any] = {}  # task -> GenomeWindows (opened lazily)
        self._view_batch = max(16, max_batch_size)  # windows per forward of a /view page

    def __serve_build_asgi_app__(self):
        return build_api(self, self._max_body_bytes, self._max_abs_input, self._cards)

    def region_example(self, task: str) -> dict[str, Any] | None:
        """A region request body the genome files can answer (the OpenAPI example)."""
        if not self.region_requests or task not in self._cards:
            return None
        reader = self._reader(self._cards[task])
        span = reader.W * reader.res
        need = 2 * span if task == "loops" else span
        for name, size in reader.chromsizes.items():
            if size >= need:
                return {"chrom": name, "start": 0, **({"start2": span} if task == "loops"
                                                      else {})}
        return None

    async def cards(self) -> dict[str, ModelCard]:
        return self._cards

    def stats(self) -> dict[str, dict[str, int]]:
        """Batches run and items served per task by this replica (mean batch size)."""
        return {t: {"batches": b.batches, "items": b.items} for t, b in self._batchers.items()}

    async def predict(self, task: str, epi: np.ndarray, hic: np.ndarray | None,
                      offset: float = 0.0) -> np.ndarray:
        """One window: epi (C, 2L), hic (W, W) | None, offset (bins from its x- to its
        y-anchor) -> hic (W, W) | loops () | cage (W,)."""
        if task not in self._batchers:
            raise ValueError(f"task: no {task} model is served here")
        return await self._batchers[task].submit((epi, hic, float(offset)))

    def _forward(self, task: str,
                 items: list[tuple[np.ndarray, np.ndarray | None, float]]) -> list:
        """Stack the well-formed items into one batch; malformed ones get their own error."""
        model = self.models[task]
        results: list[Any] = [None] * len(items)
        good = []
        for i, (epi, hic, _) in enumerate(items):
            try:
                model.check(epi[None], None if hic is None else hic[None])
                good.append(i)
            except ValueError as exc:
                results[i] = exc
        if good:
            epi = np.stack([items[i][0] for i in good])  # (B, C, 2L)
            hic = np.stack([items[i][1] for i in good]) if model.card.needs_hic else None
            offset = np.array([items[i][2] for i in good], np.float32)
            out = model.predict(epi, hic, offset)
            for k, i in enumerate(good):
                results[i] = out[k]
        return results

    @property
    def region_requests(self) -> bool:
        return self._genome.configured

    def _reader(self, card: ModelCard):
        if card.task not in self._windows:
            self._windows[card.task] = GenomeWindows(self._genome, card)
        return self._windows[card.task]

    async def view(self, region: str, loop_windows: int = MAX_LOOP_WINDOWS) -> str:
        """The viewer page of ``region`` (:func:`mixhic.serve.viewer.collect_region` over
        the served models and genome files), built in a worker thread."""
        def build() -> str:
            try:
                windows = {t: self._reader(c) for t, c in self._cards.items()}
                page = viewer.collect_region(
                    region, self._cards, windows,
                    lambda task, epi, hic, off: self.models[task].predict(epi, hic, off),
                    known_loops=self._genome.loops, max_loop_windows=loop_windows,
                    batch_size=self._view_batch)
            except (viewer.RegionError, RequestError):
                raise
            except MixHicError as exc:  # files that do not fit the models: server setup
                raise RequestError("region", f"cannot read {region!r}: {exc}", 400,
                                   "query") from None
            return viewer_page.render_region_html(page)

        return await asyncio.to_thread(build)

    async def region(self, card: ModelCard, chrom: str, start: int, start2: int | None):
        def read():
            try:
                return self._reader(card).request_window(chrom, start, start2)
            except RequestError:
                raise
            except ValueError as exc:  # files that do not fit the model: a server-side setup
                raise RequestError("chrom", f"cannot read the region: {exc}", 400) from None

        return await asyncio.to_thread(read)


def _bind_replica_grpc_to_loopback() -> None:
    """Keep this replica's inter-deployment gRPC server on loopback when Ray runs there.

    Ray 2.60 replicas bind that server to ``[::]:0`` (every interface; no setting) once
    the deployment's ``__init__`` has returned. On a node whose Ray address is a loopback
    address (the local Ray of ``mixhic serve``) it is bound to that address instead:
    handles reach replicas at the node address, so nothing else changes. On a cluster
    node (routable address) Ray's binding is kept. Called from the replica's
    ``__init__``; a Ray without that hook is left alone (logged)."""
    import ipaddress

    import ray

    try:
        node_ip = ray.util.get_node_ip_address()
        if not ipaddress.ip_address(node_ip).is_loopback:
            return
        from ray.serve._private import replica as replica_module
    except Exception as exc:  # noqa: BLE001 - a hardening step, never fatal
        log.warning("replica gRPC binding left to Ray: %s", exc)
        return
    original = getattr(replica_module, "add_port_to_grpc_server", None)
    if original is None:
        log.warning("this Ray has no replica.add_port_to_grpc_server: the replica's gRPC "
                    "server binds where Ray puts it")
        return
    if getattr(original, "mixhic_loopback", False):
        return

    def add_port(server, address: str):
        if address.startswith("[::]:"):
            address = f"{node_ip}:{address[len('[::]:'):]}"
        return original(server, address)

    add_port.mixhic_loopback = True
    replica_module.add_port_to_grpc_server = add_port


def build_app(cfg: ServeConfig):
    """The Serve ``Application`` for ``cfg`` (``cfg.models`` must name >= 1 model)."""
    if not cfg.models:
        raise MixHicError("models: no model to serve (give --model URI or --checkpoint DIR)")
    b = cfg.batching
    return MixHicServer.options(**cfg.model_deployment.serve_options()).bind(
        list(cfg.models), cfg.device, b.max_batch_size, b.batch_wait_timeout_s,
        cfg.genome, cfg.max_body_bytes, cfg.max_abs_input,
    )


def app_builder(args: dict[str, Any]):
    """Entry point for ``serve deploy`` / ``serve run`` (``import_path`` in serve-config.yaml).

    ``args``: ``config`` (shipped name or YAML path, default serve-demo), ``models``
    (list of sources), ``overrides`` (a mapping of serve config keys, dotted or nested:
    ``{batching.max_batch_size: 32}``).
    """
    args = dict(args or {})
    overrides = as_overrides(args.pop("overrides", None) or {}, "overrides", cli=False)
    models = args.pop("models", None)
    cfg_name = args.pop("config", DEFAULT_CONFIG)
    if args:
        raise ValueError(f"app args: unknown keys {sorted(args)} (known: config, models, "
                         f"overrides)")
    if models:
        overrides["models"] = list(models)
    return build_app(load_config(cfg_name, ServeConfig, overrides))


def start_ray(cfg: ServeConfig, **ray_kwargs) -> str | None:
    """Connect to Ray, or start a local Ray with the environment ``cfg.http_ingress`` needs.

    When this process starts Ray, the config decides the ingress: ``haproxy`` sets
    :func:`~mixhic.serve.config.haproxy_env` (without overriding the caller's values; its
    files under a new private directory, returned so that the caller can remove it),
    ``proxy`` turns a stray ``RAY_SERVE_ENABLE_HA_PROXY=1`` off. A running Ray or a
    cluster (``RAY_ADDRESS``) keeps its mode. ``ray_kwargs`` go to
    :func:`mixhic.core.runtime.ensure_ray`.
    """
    import tempfile

    import ray

    private_dir = None
    starting_here = not ray.is_initialized() and not os.environ.get("RAY_ADDRESS")
    if starting_here and cfg.http_ingress == "haproxy":
        # HAProxy takes socket paths of <= 97 bytes and Ray adds a 56-character node id:
        # a RAY_TMPDIR is mostly too long, so a private (0700) directory in the temp dir
        base = tempfile.gettempdir()
        if len(base) > 12:
            base = "/tmp"
        private_dir = tempfile.mkdtemp(prefix="mxhap", dir=base)  # mode 0700
        for key, value in haproxy_env(private_dir).items():
            os.environ.setdefault(key, value)
        log.warning("http_ingress=haproxy: Ray %s's HAProxy also listens on every interface "
                    "for %s; firewall those ports", ray.__version__,
                    " and ".join(HAPROXY_PUBLIC_PORTS))
    elif starting_here:
        if os.environ.get("RAY_SERVE_ENABLE_HA_PROXY") == "1":
            log.info("http_ingress=proxy: ignoring RAY_SERVE_ENABLE_HA_PROXY=1")
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "0"
    elif cfg.http_ingress == "haproxy":
        log.info("Ray is already running: HTTP goes through HAProxy only if it was started "
                 "with RAY_SERVE_ENABLE_HA_PROXY=1")
    ensure_ray(**ray_kwargs)
    return private_dir


def run(cfg: ServeConfig, blocking: bool = False) -> str:
    """Start Serve on ``cfg.host:cfg.port``, deploy the app, return its base URL."""
    import ray

    local_ray = not ray.is_initialized() and not os.environ.get("RAY_ADDRESS")
    private_dir = start_ray(cfg)
    serve.start(http_options={"host": cfg.host, "port": cfg.port,
                              "request_timeout_s": cfg.request_timeout_s,
                              "keep_alive_timeout_s": cfg.keep_alive_timeout_s})
    serve.run(build_app(cfg), name=cfg.app_name, route_prefix=cfg.route_prefix,
              blocking=False)
    url = f"http://{cfg.host}:{cfg.port}{cfg.route_prefix.rstrip('/')}"
    log.info("serving %s at %s (docs: %s/docs)", ", ".join(cfg.models), url, url)
    if blocking:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM (runtime.Terminated)
            log.info("%s: shutting down Serve", str(exc) or "SIGINT")
            if local_ray and cfg.http_ingress == "proxy":
                # drain the app's replicas; the caller's ray.shutdown() stops the rest
                # (serve.shutdown() here logs a spurious "graceful_shutdown failed")
                serve.delete(cfg.app_name)
            else:
                serve.shutdown()  # graceful: drains replicas, stops HAProxy
            raise
        finally:
            if private_dir:
                shutil.rmtree(private_dir, ignore_errors=True)
    return url


CLI = ConfigCommand(
    "mixhic serve",
    "Serve fine-tuned MIX-HIC models over HTTP with Ray Serve (one model per task; repeat "
    "--model/--checkpoint to serve several).",
    config_class=ServeConfig, default_config=DEFAULT_CONFIG,
    config_help="serve config: shipped config name (serve-demo) or YAML path",
    keys_help="e.g. mixhic serve serve-demo 'models=[models:/mixhic-hic@champion]' port=8001",
    aliases=[
        Alias("--model", "models", "MLflow model URI, e.g. models:/mixhic-hic@champion "
              "(repeatable)", kind="append", metavar="URI", example="models:/mixhic-hic@1"),
        Alias("--checkpoint", "models", "model directory (model.safetensors + mixhic.json) "
              "(repeatable)", kind="append", metavar="DIR", example="runs/hic/model"),
        Alias("--host", "host", "bind address (default 127.0.0.1)", example="0.0.0.0"),
        Alias("--port", "port", "HTTP port (default from config)", example="8123"),
    ],
)


config_from_args = CLI.config_from_args  # the ServeConfig ``ARGS`` run with


def cli_main(argv: list[str]) -> int:
    run(config_from_args(argv), blocking=True)
    return 0
