"""Fine-tuned models ready for inference: loading from a model dir or MLflow, and forward.

A *source* is a model directory (``model.safetensors`` + ``mixhic.json``, see
:mod:`mixhic.platform.checkpoints`) or an MLflow model URI (``models:/NAME@ALIAS``,
``models:/NAME/VERSION``, ``runs:/RUN/PATH``), downloaded with
:func:`mixhic.platform.tracking.download_model_dir`. Weights are read from safetensors
(tensors only): nothing is unpickled.

:class:`TaskModel` is shared by the Serve model deployment and the Ray Data actors of
``mixhic predict``; it takes and returns numpy arrays:

* ``hic``:   epi (B, C, 2L) [+ hic (B, W, W)] -> predicted map (B, W, W)
* ``loops``: epi (B, C, 2L) + hic (B, W, W)  -> loop probability (B,)
* ``cage``:  epi (B, C, 2L) [+ hic (B, W, W)] -> log2(1 + CAGE) per bin (B, W)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mixhic.core.errors import MixHicError
from mixhic.models.tasks import HIC_INPUT_MODES, TASKS
from mixhic.pipelines.schema import WindowShape

__all__ = [
    "ModelCard",
    "TaskModel",
    "resolve_source",
    "card_from_meta",
    "load_task_model",
    "load_task_models",
    "pick_device",
    "TASKS",
    "MODES_WITH_HIC",
]

log = logging.getLogger(__name__)

MODES_WITH_HIC = HIC_INPUT_MODES  # modes whose forward needs the Hi-C window
_MLFLOW_SCHEMES = ("models:/", "runs:/", "mlflow-artifacts:/")


@dataclass(frozen=True, kw_only=True)
class ModelCard(WindowShape):
    """What a served model is: identity, task and the geometry of its windows
    (``window_bins`` W, ``n_tracks`` C, ``epi_bins`` L per anchor, and the shapes
    ``hic_shape`` / ``epi_shape``, from :class:`~mixhic.pipelines.schema.WindowShape`)."""

    source: str
    name: str
    version: str | None
    task: str
    mode: str
    preset: str | None
    run_id: str | None
    resolution: int  # bp per Hi-C bin
    epi_bin: int  # bp per epi bin
    tracks: tuple[str, ...]
    data: dict  # the ``data`` section of mixhic.json (normalisation parameters)

    @property
    def needs_hic(self) -> bool:
        return self.mode in MODES_WITH_HIC

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "task": self.task,
            "mode": self.mode,
            "preset": self.preset,
            "run_id": self.run_id,
            "window_bins": self.window_bins,
            "epi_bins": self.epi_bins,
            "n_tracks": self.n_tracks,
            "resolution": self.resolution,
            "epi_bin": self.epi_bin,
            "tracks": list(self.tracks),
            "needs_hic": self.needs_hic,
        }


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise MixHicError("device: 'cuda' requested but no CUDA device is visible")
    return device


def _is_mlflow_uri(source: str) -> bool:
    return str(source).startswith(_MLFLOW_SCHEMES)


def _registry_identity(uri: str) -> tuple[str, str | None]:
    """(name, version) of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``."""
    rest = uri[len("models:/"):]
    if "@" in rest:
        name, alias = rest.split("@", 1)
        try:
            from mlflow import MlflowClient

            return name, str(MlflowClient().get_model_version_by_alias(name, alias).version)
        except Exception as exc:  # the version is informative only
            log.warning("could not resolve %s to a version: %s", uri, exc)
            return name, None
    name, _, version = rest.partition("/")
    return name, version or None


def resolve_source(source: str) -> tuple[str, str, str | None]:
    """A loadable location for ``source`` (local dir or URI) plus (name, version)."""
    source = str(source)
    if _is_mlflow_uri(source):
        # lazy: pulls platform.tracking (+13 ms) into mixhic predict --help
        from mixhic.platform.tracking import download_model_dir

        path = str(download_model_dir(source))
        if source.startswith("models:/"):
            name, version = _registry_identity(source)
        else:
            name, version = source, None
        return path, name, version
    if "://" in source and not source.startswith("file://"):
        return source, source.rstrip("/").rsplit("/", 1)[-1], None  # pyarrow filesystem URI
    path = Path(source.removeprefix("file://")).expanduser()
    if not path.is_dir():
        raise MixHicError(f"{source}: model directory not found (nor an MLflow models:/ URI)")
    return str(path), path.resolve().name, None


def _read_model_dir(path: str):
    """(model, meta) from a model dir through the checkpoint module's reader (no pickle)."""
    # lazy: pulls torch (+1.2 s) into mixhic serve --help and predict --help
    from mixhic.platform.checkpoints import load_model_dir

    try:
        return load_model_dir(path)
    except (FileNotFoundError, ValueError) as exc:
        raise MixHicError(str(exc)) from None


def card_from_meta(source: str, name: str, version: str | None, meta: dict) -> ModelCard:
    """The :class:`ModelCard` of a fine-tuned model's ``mixhic.json`` (checked)."""
    where = f"{source}: mixhic.json"
    if meta.get("kind") != "finetune":
        raise MixHicError(
            f"{where}: kind is {meta.get('kind')!r}; only fine-tuned models can be served"
        )
    task, mode = meta.get("task"), meta.get("mode")
    if task not in TASKS:
        raise MixHicError(f"{where}: task {task!r} is not one of {TASKS}")
    data = dict(meta.get("data") or {})
    mcfg = meta.get("model_config") or {}
    try:
        window_bins = int(data.get("window_bins", mcfg.get("window_bins")))
        epi_bins = int(data.get("epi_bins", mcfg.get("epi_bins")))
        n_tracks = int(data.get("n_tracks", mcfg.get("n_tracks")))
    except (TypeError, ValueError):
        raise MixHicError(f"{where}: data.window_bins/epi_bins/n_tracks missing") from None
    resolution = int(data.get("resolution") or 5000)
    return ModelCard(
        source=source,
        name=name,
        version=version,
        task=task,
        mode=str(mode),
        preset=meta.get("preset"),
        run_id=meta.get("run_id"),
        window_bins=window_bins,
        epi_bins=epi_bins,
        n_tracks=n_tracks,
        resolution=resolution,
        epi_bin=int(data.get("epi_bin") or (window_bins * resolution) // epi_bins),
        tracks=tuple(data.get("tracks") or ()),
        data=data,
    )


class TaskModel:
    """One fine-tuned model in eval mode on ``device``; numpy in, numpy out."""

    def __init__(self, model, card: ModelCard, device: str = "cpu") -> None:
        self.card = card
        self.device = device
        self.model = model.to(device).eval()

    def check(self, epi: np.ndarray, hic: np.ndarray | None) -> None:
        """Raise ValueError naming the field if a batch does not fit the model."""
        c = self.card
        if epi.ndim != 3 or epi.shape[1:] != c.epi_shape:
            raise ValueError(f"epi: expected shape (B, {c.epi_shape[0]}, {c.epi_shape[1]}), "
                             f"got {tuple(epi.shape)}")
        if c.needs_hic:
            if hic is None:
                raise ValueError(f"hic: required by a {c.mode} model")
            if hic.shape != (epi.shape[0], *c.hic_shape):
                raise ValueError(f"hic: expected shape (B, {c.window_bins}, {c.window_bins}), "
                                 f"got {tuple(hic.shape)}")

    def predict(self, epi: np.ndarray, hic: np.ndarray | None = None,
                offset: np.ndarray | None = None) -> np.ndarray:
        """Forward a batch: see the module docstring for shapes; loops give probabilities.
        ``offset`` (B,): bins from each window's x-anchor to its y-anchor (None: 0, diagonal
        windows); the heads use it for the genomic distance of every pixel."""
        import torch

        self.check(epi, hic)
        with torch.inference_mode():
            e = torch.as_tensor(np.ascontiguousarray(epi, dtype=np.float32), device=self.device)
            h = o = None
            if self.card.needs_hic:
                h = torch.as_tensor(np.ascontiguousarray(hic, dtype=np.float32),
                                    device=self.device)
            if offset is not None:
                o = torch.as_tensor(np.asarray(offset, dtype=np.float32).reshape(len(epi)),
                                    device=self.device)
            return self.model.predict(e, hic=h, offset=o).cpu().numpy()


def load_task_model(source: str, device: str = "auto") -> TaskModel:
    """Load one fine-tuned model from a model dir or an MLflow URI."""
    path, name, version = resolve_source(source)
    model, meta = _read_model_dir(path)
    card = card_from_meta(str(source), name, version, meta)
    device = pick_device(device)
    log.info("loaded %s (%s/%s) from %s on %s", name, card.task, card.mode, source, device)
    return TaskModel(model, card, device)


def load_task_models(sources, device: str = "auto") -> dict[str, TaskModel]:
    """``{task: TaskModel}``; at most one model per task."""
    sources = list(sources)
    if not sources:
        raise MixHicError("models: no model given (--model URI or --checkpoint DIR)")
    out: dict[str, TaskModel] = {}
    for src in sources:
        tm = load_task_model(src, device)
        if tm.card.task in out:
            raise MixHicError(
                f"models: {src} and {out[tm.card.task].card.source} are both "
                f"'{tm.card.task}' models; serve one model per task"
            )
        out[tm.card.task] = tm
    return out
