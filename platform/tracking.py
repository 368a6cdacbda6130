"""MLflow tracking: embedded local store by default, any ``MLFLOW_TRACKING_URI`` otherwise.

The default store is ``sqlite:///<runs_dir>/mlflow.db`` with artifacts on the local disk
under ``<runs_dir>/mlartifacts`` (no server needed; ``mlflow ui --backend-store-uri
sqlite:///<runs_dir>/mlflow.db`` opens it). A remote server is used when
``MLFLOW_TRACKING_URI`` is set.

Rank 0 only: these functions log unconditionally. In a Ray Train loop, call them only
where ``ray.train.get_context().get_world_rank() == 0`` (and from the driver); other ranks
must not open runs.

Models are logged as MLflow pyfunc "models from code" (``mixhic/platform/mlflow_model.py``)
with the model directory (``model.safetensors`` + ``mixhic.json``) as an artifact: the
weights are a safetensors state_dict and nothing is pickled.

    >>> configure("runs")
    >>> with start_run("demo", run_name="pretrain") as run_id:
    ...     log_params_flat(to_dict(cfg)); log_config(cfg)
    ...     log_metrics({"loss": 0.3}, step=1)
    ...     mv = log_and_register_model(model_dir, "mixhic-loops", {"epi": epi}, alias="champion")
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import yaml

__all__ = [
    "MODEL_FILES",
    "default_tracking_uri",
    "configure",
    "get_or_create_experiment",
    "start_run",
    "flatten_params",
    "log_params_flat",
    "log_config",
    "log_metrics",
    "log_figure",
    "log_and_register_model",
    "download_model_dir",
    "find_model_dir",
]

log = logging.getLogger(__name__)

#: The files of a model directory (see ``mixhic.platform.checkpoints``).
MODEL_FILES = ("model.safetensors", "mixhic.json")

_MAX_PARAM_VALUE = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH
_MAX_KEY = 250
_BATCH = 100

# Set by configure(): where local experiments keep their artifacts, and the embedded URI
# it chose (mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, which must not then be
# mistaken for a user's choice by the next configure()).
_state: dict[str, Any] = {"runs_dir": None, "own_uri": None}


# --------------------------------------------------------------------------- setup
def default_tracking_uri(runs_dir: str | Path) -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<abs runs_dir>/mlflow.db``.

    Creates ``runs_dir`` when the embedded store is used.
    """
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env and env != _state["own_uri"]:
        return env
    root = Path(runs_dir).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root}/mlflow.db"


def _is_local(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file", "sqlite")


def configure(runs_dir: str | Path, tracking_uri: str | None = None) -> str:
    """Point MLflow (tracking and model registry) at :func:`default_tracking_uri`.

    tracking_uri: use this URI instead (e.g. the one the driver's ``configure`` returned,
        passed to a Ray Train worker, whose environment may lack the driver's settings).
    Experiments created later with a local store keep artifacts under
    ``<runs_dir>/mlartifacts/<experiment>``. Returns the tracking URI.
    """
    import mlflow

    env = os.environ.get("MLFLOW_TRACKING_URI")
    uri = tracking_uri or default_tracking_uri(runs_dir)
    _state["own_uri"] = None if uri == env else uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    _state["runs_dir"] = Path(runs_dir).expanduser().resolve()
    log.info("MLflow tracking URI: %s", uri)
    return uri


def get_or_create_experiment(name: str) -> str:
    """The id of experiment ``name``, created if absent (artifacts local, see :func:`configure`)."""
    import mlflow

    if not name or not isinstance(name, str):
        raise ValueError(f"experiment: expected a non-empty name, got {name!r}")
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    runs_dir = _state["runs_dir"]
    if runs_dir is not None and _is_local(mlflow.get_tracking_uri()):
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        path = runs_dir / "mlartifacts" / safe
        path.mkdir(parents=True, exist_ok=True)
        location = path.as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except Exception:  # created concurrently by another process
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


@contextlib.contextmanager
def start_run(
    experiment: str,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    parent_run_id: str | None = None,
    *,
    run_id: str | None = None,
) -> Iterator[str]:
    """Context manager: an MLflow run in ``experiment``; yields the run id.

    parent_run_id: make it a child run of that (active) run (tag ``mlflow.parentRunId``).
        Inside an already active run in this process the new run is nested automatically.
    run_id: resume that existing run (e.g. after a restart) instead of creating one.
    The run ends FINISHED, or FAILED when the block raises.
    """
    import mlflow

    exp_id = get_or_create_experiment(experiment)
    nested = parent_run_id is not None or mlflow.active_run() is not None
    with mlflow.start_run(
        run_id=run_id,
        experiment_id=None if run_id else exp_id,
        run_name=None if run_id else run_name,
        nested=nested,
        parent_run_id=parent_run_id,
        tags={k: str(v) for k, v in (tags or {}).items()} or None,
        log_system_metrics=False,
    ) as run:
        yield run.info.run_id


# --------------------------------------------------------------------------- logging
def _plain(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: _plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, np.generic):
        return v.item()
    return v


def flatten_params(cfg: Any, prefix: str = "") -> dict[str, str]:
    """A (nested) dict or config dataclass as ``{"a.b.c": "value"}`` strings.

    Lists are kept whole (``"[1, 2]"``); values longer than MLflow's limit (6000 chars)
    are truncated with a ``...`` marker (the whole config goes to :func:`log_config`).
    """
    out: dict[str, str] = {}

    def walk(v: Any, key: str) -> None:
        if isinstance(v, Mapping) and v:
            for k, x in v.items():
                walk(x, f"{key}.{k}" if key else str(k))
            return
        s = "None" if v is None else str(v)
        if len(s) > _MAX_PARAM_VALUE:
            s = s[: _MAX_PARAM_VALUE - 3] + "..."
        if len(key) > _MAX_KEY:
            raise ValueError(f"param key longer than {_MAX_KEY} chars: {key[:60]}...")
        out[key] = s

    walk(_plain(cfg), prefix)
    return out


def log_params_flat(cfg: Any, prefix: str = "") -> dict[str, str]:
    """Log a nested config as dotted-key params in the active run; returns what was logged."""
    import mlflow

    params = flatten_params(cfg, prefix)
    items = list(params.items())
    for i in range(0, len(items), _BATCH):
        mlflow.log_params(dict(items[i : i + _BATCH]))
    return params


def log_config(cfg: Any, name: str = "config.yaml") -> None:
    """Log the whole resolved config (dataclass or dict) as a YAML artifact ``name``."""
    import mlflow

    mlflow.log_text(yaml.safe_dump(_plain(cfg), sort_keys=False), name)


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> dict[str, float]:
    """Log numeric metrics at ``step`` in the active run (non-numeric values are skipped
    with a warning; NaN is logged as NaN). Returns what was logged."""
    import mlflow

    clean: dict[str, float] = {}
    for k, v in metrics.items():
        try:
            f = float(v)
        except (TypeError, ValueError):
            log.warning("log_metrics: skipping non-numeric metric %s=%r", k, v)
            continue
        clean[str(k)] = f
    if any(math.isinf(v) for v in clean.values()):
        log.warning("log_metrics: infinite metric values at step %s", step)
    if clean:
        mlflow.log_metrics(clean, step=step)
    return clean


def log_figure(fig: Any, path: str, close: bool = True) -> None:
    """Log a matplotlib Figure as artifact ``path`` (e.g. ``plots/hic_pairs.png``)."""
    import mlflow

    mlflow.log_figure(fig, path)
    if close and getattr(fig.canvas, "manager", None) is not None:  # a pyplot figure
        import matplotlib.pyplot as plt

        plt.close(fig)


# --------------------------------------------------------------------------- models
def _pyfunc_code_path() -> str:
    spec = importlib.util.find_spec("mixhic.platform.mlflow_model")
    if spec is None or spec.origin is None:
        raise RuntimeError("mixhic.platform.mlflow_model is not installed")
    return spec.origin


def _pip_requirements() -> list[str]:
    reqs = []
    for dist in ("mlflow", "torch", "safetensors", "numpy", "pyyaml"):
        try:
            reqs.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            reqs.append(dist)
    return reqs


def _predict_example(model_dir: Path, inputs: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Predictions of the model dir on the example, or None when it cannot be loaded here."""
    try:
        # lazy: pulls torch (+1.5 s) and mlflow (+1.0 s) into mixhic tune --help
        from mixhic.platform.checkpoints import load_model_dir
        from mixhic.platform.mlflow_model import predict_arrays
    except ImportError as e:
        log.warning("cannot load the model to infer the output signature: %s", e)
        return None
    model, meta = load_model_dir(model_dir)
    return predict_arrays(model, meta, inputs)


def log_and_register_model(
    model_dir: str | Path,
    registered_name: str,
    input_example: Mapping[str, np.ndarray],
    alias: str | None = None,
    *,
    output_example: np.ndarray | None = None,
    name: str = "model",
    tags: Mapping[str, Any] | None = None,
) -> Any:
    """Log ``model_dir`` as a pyfunc (models from code) and register it.

    model_dir: directory with ``model.safetensors`` + ``mixhic.json``.
    input_example: ``{"epi": (B, C, 2L) float32[, "hic": (B, W, W) float32]}``.
    output_example: the model's predictions on it (for the signature); computed by loading
        the model when None (needs ``mixhic.platform.checkpoints``); without it the
        signature holds the inputs only.
    alias: e.g. ``"champion"``: set on the new version.
    Only ``model.safetensors`` and ``mixhic.json`` are logged (a training checkpoint's
    optimizer state is left out). Logs into the active run if any. Returns the registered
    ``mlflow.entities.model_registry.ModelVersion``.
    """
    import mlflow
    from mlflow.models import infer_signature

    model_dir = Path(model_dir)
    missing = [f for f in MODEL_FILES if not (model_dir / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{model_dir}: not a model directory, missing {missing}")
    if not isinstance(input_example, Mapping) or "epi" not in input_example:
        raise ValueError("input_example: expected a dict of numpy arrays with an 'epi' key")
    example = {k: np.asarray(v) for k, v in input_example.items()}
    if output_example is None:
        output_example = _predict_example(model_dir, example)
    signature = infer_signature(example, output_example)
    with tempfile.TemporaryDirectory(prefix="mixhic-model-") as tmp:
        # Only the two model files travel: a training checkpoint dir also holds the
        # optimizer state (a torch pickle), which must not reach the registry.
        clean = Path(tmp) / "model_dir"
        clean.mkdir()
        for f in MODEL_FILES:
            shutil.copy2(model_dir / f, clean / f)
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=_pyfunc_code_path(),
            artifacts={"model_dir": str(clean)},
            signature=signature,
            input_example=example,
            registered_model_name=registered_name,
            pip_requirements=_pip_requirements(),
            tags={k: str(v) for k, v in (tags or {}).items()} or None,
        )
    client = mlflow.MlflowClient()
    mv = client.get_model_version(registered_name, str(info.registered_model_version))
    if alias:
        client.set_registered_model_alias(registered_name, alias, mv.version)
        mv = client.get_model_version(registered_name, mv.version)
    log.info("registered %s version %s%s", registered_name, mv.version,
             f" as @{alias}" if alias else "")
    return mv


def find_model_dir(root: str | Path) -> Path:
    """The directory under ``root`` (or ``root`` itself) that holds the model files."""
    root = Path(root)
    if all((root / f).is_file() for f in MODEL_FILES):
        return root
    for meta in sorted(root.rglob(MODEL_FILES[1])):
        if (meta.parent / MODEL_FILES[0]).is_file():
            return meta.parent
    raise FileNotFoundError(f"{root}: no directory with {' + '.join(MODEL_FILES)} inside")


def download_model_dir(model_uri: str | Path, dst: str | Path | None = None) -> Path:
    """Download a logged model (``models:/NAME@ALIAS``, ``models:/NAME/3``, ``runs:/ID/model``
    or a local path) and return the directory holding ``model.safetensors`` +
    ``mixhic.json``. Nothing is unpickled."""
    import mlflow

    local = Path(str(model_uri))
    if "://" not in str(model_uri) and ":/" not in str(model_uri) and local.exists():
        return find_model_dir(local)
    if dst is not None:
        Path(dst).mkdir(parents=True, exist_ok=True)
    path = mlflow.artifacts.download_artifacts(
        artifact_uri=str(model_uri), dst_path=None if dst is None else str(dst)
    )
    return find_model_dir(path)
