"""Typed configs of ``mixhic serve`` and ``mixhic predict`` (YAML -> frozen dataclasses).

Shipped defaults: ``platform/configs/serve-demo.yaml`` (:class:`ServeConfig`) and
``platform/configs/predict-demo.yaml`` (:class:`PredictConfig`); load them with
:func:`mixhic.core.config.load_config` and override keys as ``key=value``.

Models are named by *sources*: a model directory (``model.safetensors`` +
``mixhic.json``), or an MLflow model URI (``models:/NAME@ALIAS``, ``models:/NAME/3``,
``runs:/RUN_ID/model``). One app serves one model per task (hic, loops, cage): give
several sources to serve several tasks from one app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mixhic.core.config import check, shipped_defaults

__all__ = [
    "GenomeFiles",
    "Batching",
    "Autoscaling",
    "DeploymentOptions",
    "ServeConfig",
    "LoopCalling",
    "LoopScan",
    "PredictConfig",
    "Device",
    "HttpIngress",
    "HAPROXY_ENV",
    "HAPROXY_PUBLIC_PORTS",
    "haproxy_env",
]

Device = Literal["auto", "cpu", "cuda"]
HttpIngress = Literal["haproxy", "proxy"]

# Environment of the Ray processes for ``http_ingress: haproxy`` (Ray Serve's HAProxy
# ingress, Ray >= 2.55): it must be set before Ray starts. The drain period is shortened
# from 30 s (time for remote load balancers to deregister a stopping replica; HAProxy
# runs on the same node here), so that Ctrl-C and redeploys take seconds. Client
# inactivity is cut after 30 s (Ray's default, 3600 s, let a request with a lying
# Content-Length hold a connection), and no per-request log datagrams are sent to
# 127.0.0.1:514 (an unbound UDP socket on 0.0.0.0): see :func:`haproxy_env` for the
# files (admin socket, config) that go under a private directory.
HAPROXY_ENV = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
    "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "30",  # HAProxy starts slowly on a busy host
    "RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S": "30",
}
# Ray 2.60's HAProxy template binds its stats page (``listen stats bind *:8404``, no
# auth) and Prometheus exporter (``bind :9101``) on every interface, with no setting
# for the host: this is why ``http_ingress`` defaults to ``proxy``.
HAPROXY_PUBLIC_PORTS = ("stats :8404 (RAY_SERVE_HAPROXY_STATS_PORT)",
                        "metrics :9101 (RAY_SERVE_HAPROXY_METRICS_PORT)")


def haproxy_env(private_dir: str) -> dict[str, str]:
    """:data:`HAPROXY_ENV` plus HAProxy's files under ``private_dir`` (a directory only
    this user can enter, e.g. from ``tempfile.mkdtemp``): the admin socket (which Ray
    creates mode 666, level admin), the config, the server state, the metrics socket and
    the log target (a unix socket path: no UDP socket). Ray's default is a shared
    ``/tmp/haproxy-serve``. Keep ``private_dir`` short (<= 27 bytes): HAProxy takes unix
    socket paths of up to 97 bytes and Ray adds a 56-character node id."""
    import os

    def path(name: str) -> str:
        return os.path.join(private_dir, name)

    return {
        **HAPROXY_ENV,
        "RAY_SERVE_HAPROXY_SOCKET_PATH": path("admin.sock"),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": path("haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": private_dir,
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": path("server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": path("metrics.sock"),
        "RAY_SERVE_HAPROXY_LOG_TARGET": path("log.sock"),
    }


@dataclass(frozen=True)
@shipped_defaults
class GenomeFiles:
    """Genome files that region requests (and ``mixhic predict``) read windows from.

    ``mcool`` is a cooler URI: a ``.cool``, or ``.mcool`` (the resolution the model was
    trained at is picked, or give ``file.mcool::resolutions/5000``). ``tracks`` maps each
    track name the model was trained on (``mixhic.json`` ``data.tracks``) to a bigWig.
    Normalisation parameters (resolution, epi bin, transforms, weight column) come from
    the model's ``mixhic.json``, so requests see exactly what ``mixhic prepare`` wrote.
    """

    mcool: str | None
    tracks: dict[str, str]
    loops: str | None  # bedpe of known loops, marked by the region viewer (/view)

    def __post_init__(self) -> None:
        for name, path in self.tracks.items():
            check(str(path).strip(), f"tracks.{name}", "empty path")

    @property
    def configured(self) -> bool:
        return bool(self.mcool) or bool(self.tracks)


@dataclass(frozen=True)
@shipped_defaults
class Batching:
    """Dynamic batching of each task's requests (:class:`mixhic.serve.batching.GreedyBatcher`).

    A batch is cut when the model is free: under load it holds every request that queued
    meanwhile (up to ``max_batch_size``); a request arriving at an idle model waits at
    most ``batch_wait_timeout_s`` for company (0: runs at once, no added latency).
    """

    max_batch_size: int
    batch_wait_timeout_s: float

    def __post_init__(self) -> None:
        check(self.max_batch_size >= 1, "max_batch_size",
              f"must be >= 1, got {self.max_batch_size}")
        check(0 <= self.batch_wait_timeout_s <= 10, "batch_wait_timeout_s",
              f"must be in [0, 10] s, got {self.batch_wait_timeout_s}")


@dataclass(frozen=True)
@shipped_defaults
class Autoscaling:
    """Ray Serve ``autoscaling_config`` (replaces a fixed ``num_replicas`` when set)."""

    min_replicas: int
    max_replicas: int
    target_ongoing_requests: float

    def __post_init__(self) -> None:
        check(self.min_replicas >= 0, "min_replicas", f"must be >= 0, got {self.min_replicas}")
        check(self.max_replicas >= max(1, self.min_replicas), "max_replicas",
              f"must be >= max(1, min_replicas), got {self.max_replicas}")
        check(self.target_ongoing_requests > 0, "target_ongoing_requests",
              f"must be > 0, got {self.target_ongoing_requests}")


@dataclass(frozen=True)
@shipped_defaults
class DeploymentOptions:
    """Replicas and resources of one deployment."""

    num_replicas: int
    autoscaling: Autoscaling | None
    max_ongoing_requests: int
    num_cpus: float
    num_gpus: float

    def __post_init__(self) -> None:
        check(self.num_replicas >= 1, "num_replicas", f"must be >= 1, got {self.num_replicas}")
        check(self.max_ongoing_requests >= 1, "max_ongoing_requests",
              f"must be >= 1, got {self.max_ongoing_requests}")
        check(self.num_cpus >= 0, "num_cpus", f"must be >= 0, got {self.num_cpus}")
        check(self.num_gpus >= 0, "num_gpus", f"must be >= 0, got {self.num_gpus}")

    def serve_options(self) -> dict:
        """Keyword arguments for ``Deployment.options``."""
        opts: dict = {
            "max_ongoing_requests": self.max_ongoing_requests,
            "ray_actor_options": {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus},
        }
        if self.autoscaling is not None:
            a = self.autoscaling
            opts["autoscaling_config"] = {
                "min_replicas": a.min_replicas,
                "max_replicas": a.max_replicas,
                "target_ongoing_requests": a.target_ongoing_requests,
            }
        else:
            opts["num_replicas"] = self.num_replicas
        return opts


@dataclass(frozen=True)
@shipped_defaults
class ServeConfig:
    """Everything ``mixhic serve`` needs; ``models`` may be given on the command line.

    ``http_ingress``: ``proxy`` (default) uses Serve's Python proxy actor on host:port,
    which relays every request to a replica through Ray calls; ``haproxy`` puts Ray
    Serve's HAProxy ingress on host:port, forwarding each request to a replica that
    serves HTTP itself (about 1/5 of the CPU per request; ``proxy`` has a ~200 req/s
    ceiling on 2 cores), but in Ray 2.60 HAProxy also opens its stats page and metrics
    exporter on every interface (:data:`HAPROXY_PUBLIC_PORTS`, not configurable): use it
    behind a firewall or in a pod. It takes effect when ``mixhic serve`` starts Ray
    itself (:func:`haproxy_env`); an already running Ray or cluster keeps the mode its
    environment set at start.
    ``request_timeout_s``: a request (body upload included) taking longer gets 408/504
    and its connection is closed; ``keep_alive_timeout_s``: idle keep-alive connections
    are closed after this long.
    ``model_deployment``: replicas and resources of the one deployment (HTTP routes
    and models together, see :class:`mixhic.serve.app.MixHicServer`).
    """

    models: tuple[str, ...]
    host: str
    port: int
    app_name: str
    route_prefix: str
    max_body_mb: float
    max_abs_input: float  # larger |values| in epi/hic get 422 (mixhic.serve.api)
    device: Device
    http_ingress: HttpIngress
    request_timeout_s: float
    keep_alive_timeout_s: int
    batching: Batching = field(default_factory=Batching)
    model_deployment: DeploymentOptions = field(default_factory=DeploymentOptions)
    genome: GenomeFiles = field(default_factory=GenomeFiles)

    def __post_init__(self) -> None:
        check(0 < self.port < 65536, "port", f"must be in 1..65535, got {self.port}")
        check(self.max_body_mb > 0, "max_body_mb", f"must be > 0, got {self.max_body_mb}")
        check(0 < self.request_timeout_s <= 3600, "request_timeout_s",
              f"must be in (0, 3600], got {self.request_timeout_s}")
        check(0 < self.keep_alive_timeout_s <= 600, "keep_alive_timeout_s",
              f"must be in 1..600, got {self.keep_alive_timeout_s}")
        check(0 < self.max_abs_input <= 1e12, "max_abs_input",
              "must be in (0, 1e12] (the float32 forward overflows past ~1e19), got "
              f"{self.max_abs_input}")
        check(self.model_deployment.max_ongoing_requests >= self.batching.max_batch_size,
              "model_deployment.max_ongoing_requests",
              f"must be >= batching.max_batch_size ({self.model_deployment.max_ongoing_requests}"
              f" < {self.batching.max_batch_size}), else batches never fill")
        check(self.route_prefix.startswith("/"), "route_prefix",
              f"must start with '/', got {self.route_prefix!r}")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 2**20)


@dataclass(frozen=True)
@shipped_defaults
class LoopCalling:
    """Post-processing of scored candidates into loop calls (:mod:`mixhic.serve.loopcall`).

    Candidates (pixels with probability >= ``LoopScan.min_probability``) closer than
    ``cluster_radius_bins`` (Chebyshev, bins; at least the scan's ``stride_bins``, so 0
    links grid neighbours, diagonals included: :meth:`LoopScan.cluster_radius`) form a
    cluster, written as one call at its maximum with the cluster size; calls within
    ``min_separation_bp`` of a stronger call are suppressed; ``top_n`` keeps the strongest
    calls genome-wide (0: all).
    ``enabled: false`` writes every candidate as its own call (cluster size 1).
    Applied when the output files are assembled, so changing these never re-runs the
    model (the parts hold the candidates).
    """

    enabled: bool
    cluster_radius_bins: int
    min_separation_bp: int
    top_n: int

    def __post_init__(self) -> None:
        check(self.cluster_radius_bins >= 0, "cluster_radius_bins",
              f"must be >= 0, got {self.cluster_radius_bins}")
        check(self.min_separation_bp >= 0, "min_separation_bp",
              f"must be >= 0, got {self.min_separation_bp}")
        check(self.top_n >= 0, "top_n", f"must be >= 0 (0 = all), got {self.top_n}")


@dataclass(frozen=True)
@shipped_defaults
class LoopScan:
    """Candidate anchor pairs for genome-wide loop calling.

    Pairs (i, j) of bins with ``min_distance <= (j - i) * resolution <= max_distance``,
    ``i`` and ``j`` on a grid of ``stride_bins`` (aligned to the chromosome start, so a
    region's candidates are those of the whole chromosome); each pair is scored in the
    window centred on it. Pairs with probability >= ``min_probability`` are candidates,
    post-processed into calls by ``call`` (:class:`LoopCalling`).

    Defaults: 20 kb - 1 Mb, stride 2. The candidate count grows with
    ``max_distance / (resolution * stride_bins) ** 2`` per bp: the former default (2 Mb,
    stride 2) scored ~62 M windows on a human genome at 5 kb, these ~31 M; most loops
    called in Hi-C (HiCCUPS on GM12878) span well under 1 Mb, and clustering merges a
    loop's neighbouring pixels into one call, so stride 2 still places each call within
    one bin of the peak (``stride_bins=1`` for single-bin precision, 4x the windows).
    Cost (``tests/benchmarks/bench_predict.py``): the ``paper-128`` model scored 5-8
    windows/s per CPU core (two runs on a busy 2-core host), so these ~31 M windows take
    ~30-55 h on 32 cores; scan on GPUs, restrict to ``regions``, or take
    ``stride_bins=4`` (~7.7 M windows) for a first pass.
    """

    min_distance: int
    max_distance: int
    stride_bins: int
    min_probability: float
    call: LoopCalling = field(default_factory=LoopCalling)

    def __post_init__(self) -> None:
        check(self.min_distance >= 0, "min_distance",
              f"need 0 <= min_distance <= max_distance, got {self.min_distance}, "
              f"{self.max_distance}")
        check(self.max_distance >= self.min_distance, "max_distance",
              f"need 0 <= min_distance <= max_distance, got {self.min_distance}, "
              f"{self.max_distance}")
        check(self.stride_bins >= 1, "stride_bins", f"must be >= 1, got {self.stride_bins}")
        check(0 <= self.min_probability <= 1, "min_probability",
              f"must be in [0, 1], got {self.min_probability}")

    def cluster_radius(self) -> int:
        """Clustering radius of candidate pixels (bins): ``call.cluster_radius_bins``, at
        least the grid's stride (a smaller radius would link no grid neighbours)."""
        return max(self.call.cluster_radius_bins, self.stride_bins)


@dataclass(frozen=True)
@shipped_defaults
class PredictConfig:
    """Genome-wide prediction: windows of ``chroms`` -> .cool / .mcool / bedpe / bigWig.

    ``regions`` (``chrom:start-end``, bp, half-open) and ``regions_bed`` (a BED file)
    restrict prediction to those regions (their union); they replace ``chroms``.
    ``skip_unmappable``: windows whose anchors are unmappable in the Hi-C file (NaN or
    zero balancing weight) are not predicted: a loop candidate whose anchor bin ``i`` or
    ``j`` is masked, a diagonal window whose bins are all masked; they are counted in
    ``predict.json``. ``chunk_windows``: windows per Ray Data row (a chromosome chunk),
    run through the model ``batch_size`` at a time. ``mcool_resolutions``: zoom levels
    of ``predicted_hic.mcool`` (multiples of the model's resolution; empty: the model's
    resolution times 2^k up to HiGlass's quad-tree depth).
    """

    models: tuple[str, ...]
    out_dir: str
    chroms: tuple[str, ...]  # empty: every chromosome of the Hi-C file
    regions: tuple[str, ...]  # chrom:start-end; replace chroms
    regions_bed: str | None  # BED file of regions; replaces chroms
    genome: GenomeFiles = field(default_factory=GenomeFiles)
    step_bins: int  # stride of diagonal windows (hic, cage); 0: half a window
    loops: LoopScan = field(default_factory=LoopScan)
    skip_unmappable: bool
    batch_size: int
    chunk_windows: int
    concurrency: int  # model actors
    num_cpus: float  # per model actor
    num_gpus: float  # per model actor
    device: Device
    mcool_resolutions: tuple[int, ...]
    resume: bool
    progress: bool

    def __post_init__(self) -> None:
        check(self.step_bins >= 0, "step_bins", f"must be >= 0, got {self.step_bins}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.chunk_windows >= 1, "chunk_windows",
              f"must be >= 1, got {self.chunk_windows}")
        check(self.concurrency >= 1, "concurrency", f"must be >= 1, got {self.concurrency}")
        check(self.num_cpus >= 0, "num_cpus", f"must be >= 0, got {self.num_cpus}")
        check(self.num_gpus >= 0, "num_gpus", f"must be >= 0, got {self.num_gpus}")
        check(all(r > 0 for r in self.mcool_resolutions), "mcool_resolutions",
              f"must be > 0, got {list(self.mcool_resolutions)}")
        check(not (self.chroms and (self.regions or self.regions_bed)), "chroms",
              "give either chroms or regions/regions_bed, not both")
