"""Model directories and Ray Train checkpoints: safetensors weights + JSON metadata, no pickle.

A **model directory** holds one model, loadable without the code that trained it:

    model.safetensors   the state_dict (tensors only)
    mixhic.json         {"kind": "pretrain"|"finetune", "task", "mode", "model_config",
                         "preset", "data": {window_bins, epi_bins, n_tracks, resolution,
                         epi_bin, tracks, epi_transform}, "run_id", "epoch", "metrics"}

A **training checkpoint** (what ``ray.train.report`` persists every epoch) is a model
directory plus the state needed to resume: ``train_state.pt`` (optimizer and LR-scheduler
state dicts, saved with ``torch.save`` and read back with ``weights_only=True``) and
``train_state.json`` (epoch, best validation score, per-epoch history).

Paths may be local directories or pyarrow filesystem URIs (``s3://...``, ``gs://...``);
``runs:/`` and ``models:/`` URIs are fetched from MLflow.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from mixhic.models import FinetuneModel, MixHicConfig, PretrainModel
from mixhic.platform.tracking import download_model_dir

__all__ = [
    "MODEL_FILE",
    "META_FILE",
    "STATE_FILE",
    "STATE_JSON",
    "save_model_dir",
    "load_model_dir",
    "read_meta",
    "build_model",
    "load_state_dict",
    "save_train_checkpoint",
    "load_train_checkpoint",
    "copy_model_dir",
    "data_mismatches",
    "GEOMETRY_HINT",
    "is_remote_uri",
    "local_copy",
    "upload_dir",
]

MODEL_FILE = "model.safetensors"
META_FILE = "mixhic.json"
STATE_FILE = "train_state.pt"
STATE_JSON = "train_state.json"

_KINDS = ("pretrain", "finetune")
_DATA_KEYS = ("window_bins", "epi_bins", "n_tracks")


# What a user changes in `mixhic prepare` to make data fit a model (or a model fit data).
GEOMETRY_HINT = (
    "The model's input is fixed by the prepared data: `window_bins` (W, Hi-C bins per window "
    "side), `epi_bin` (bp per track value; epi_bins L = W * resolution / epi_bin) and "
    "`inputs.tracks` (C, their names and order). To fine-tune a 5 kb model with "
    "window_bins=50, epi_bin=100 on 10 kb Hi-C, prepare with window_bins=50 epi_bin=200 "
    "(same W and L, twice the span: the model then sees 500 kb windows it was not "
    "pre-trained on)."
)

# Data properties compared between a pretrained model and fine-tuning data, with the
# prepare key that sets each.
_COMPARED = (
    ("resolution", "inputs.hic.resolution"),
    ("epi_bin", "epi_bin"),
    ("tracks", "inputs.tracks"),
    ("epi_transform", "normalize.epi"),
    ("hic_transform", "normalize.hic"),
    ("hic_cap", "normalize.hic_cap"),
    ("weight", "inputs.hic.weight"),
)


def data_mismatches(model_data: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """One line per data property (resolution, epi_bin, track names, normalisation) in
    which ``data`` (a ``data_meta`` block) differs from the data a model was trained on
    (its meta's ``data`` block). Properties either side does not record are not compared.
    """
    out = []
    for key, prepare_key in _COMPARED:
        a, b = model_data.get(key), data.get(key)
        if a is None or b is None or a == [] or b == []:
            continue
        if key == "tracks":
            a, b = [str(t) for t in a], [str(t) for t in b]
        if a != b:
            out.append(f"{key} (prepare key {prepare_key}): model {a!r}, data {b!r}")
    return out


def is_remote_uri(path: str | Path) -> bool:
    """True for ``scheme://`` URIs other than ``file://``."""
    text = str(path)
    return "://" in text and not text.startswith("file://")


def _strip_file(path: str | Path) -> str | Path:
    """``file:///x`` -> ``/x`` (local paths pass through)."""
    text = str(path)
    return text[len("file://"):] if text.startswith("file://") else path


def _is_mlflow_uri(path: str | Path) -> bool:
    return str(path).startswith(("runs:/", "models:/"))


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside DDP / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def _json_safe(value: Any) -> Any:
    """Metrics as JSON: numpy/torch scalars -> float, NaN/inf -> null."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _check_meta(meta: dict[str, Any], where: str) -> None:
    if meta.get("kind") not in _KINDS:
        raise ValueError(f"{where}: 'kind' must be one of {_KINDS}, got {meta.get('kind')!r}")
    if not isinstance(meta.get("model_config"), dict):
        raise ValueError(f"{where}: 'model_config' must be a mapping (asdict(MixHicConfig))")
    if meta["kind"] == "finetune" and not (meta.get("task") and meta.get("mode")):
        raise ValueError(f"{where}: a finetune model needs 'task' and 'mode'")
    data = meta.get("data")
    if not isinstance(data, dict) or any(k not in data for k in _DATA_KEYS):
        raise ValueError(f"{where}: 'data' must hold {', '.join(_DATA_KEYS)}")


def upload_dir(local: Path, uri: str) -> None:
    """Copy a local directory to a pyarrow filesystem URI (replacing files of the same name)."""
    import pyarrow.fs as pafs

    fs, root = pafs.FileSystem.from_uri(uri)
    fs.create_dir(root, recursive=True)
    pafs.copy_files(str(local), root, destination_filesystem=fs)


def local_copy(path_or_uri: str | Path) -> tuple[Path, tempfile.TemporaryDirectory | None]:
    """A local directory with the files of ``path_or_uri`` (downloaded when remote).

    Returns the path and the temporary directory to clean up (``None`` when local)."""
    text = str(path_or_uri)
    if _is_mlflow_uri(text):
        return Path(download_model_dir(text)), None
    text = str(_strip_file(text))
    if not is_remote_uri(text):
        path = Path(text)
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: model directory not found")
        return path, None
    import pyarrow.fs as pafs

    fs, root = pafs.FileSystem.from_uri(text)
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        raise FileNotFoundError(f"{text}: model directory not found")
    tmp = tempfile.TemporaryDirectory(prefix="mixhic-model-")
    pafs.copy_files(root, tmp.name, source_filesystem=fs)
    return Path(tmp.name), tmp


def save_model_dir(path: str | Path, model: torch.nn.Module, meta: dict[str, Any]) -> Path | str:
    """Write ``model``'s state_dict and ``meta`` as a model directory at ``path`` (or URI).

    Tensors are copied to CPU and un-shared (safetensors refuses aliased storage), so a
    DDP-wrapped or tied-weight model saves fine. Returns the path (the URI when remote)."""
    meta = _json_safe(dict(meta))
    _check_meta(meta, str(path))
    if is_remote_uri(path):
        with tempfile.TemporaryDirectory(prefix="mixhic-save-") as tmp:
            save_model_dir(tmp, model, meta)
            upload_dir(Path(tmp), str(path))
        return str(path)
    from safetensors.torch import save_file

    path = Path(_strip_file(path))
    path.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to("cpu").clone().contiguous()
        for k, v in _unwrap(model).state_dict().items()
    }
    save_file(state, str(path / MODEL_FILE), metadata={"format": "pt", "kind": meta["kind"]})
    (path / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """``mixhic.json`` of a local model directory, checked."""
    file = Path(path) / META_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file}: not a mixhic model directory (no {META_FILE})")
    try:
        meta = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{file}: not valid JSON: {exc}") from None
    _check_meta(meta, str(file))
    return meta


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors`` in a local model directory (CPU)."""
    from safetensors.torch import load_file

    file = Path(path) / MODEL_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file}: model weights missing")
    return load_file(str(file), device="cpu")


def build_model(meta: dict[str, Any]) -> torch.nn.Module:
    """An untrained model of the kind, task, mode and config that ``meta`` describes."""
    cfg = MixHicConfig(**meta["model_config"])
    if meta["kind"] == "pretrain":
        return PretrainModel(cfg)
    return FinetuneModel(cfg, task=meta["task"], mode=meta["mode"])


def load_model_dir(path_or_uri: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model (eval mode, CPU) and its metadata from a model directory or URI."""
    local, tmp = local_copy(path_or_uri)
    try:
        meta = read_meta(local)
        model = build_model(meta)
        state = load_state_dict(local)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ValueError(
                f"{path_or_uri}: weights do not match the model in {META_FILE}: {exc}"
            ) from None
    finally:
        if tmp is not None:
            tmp.cleanup()
    return model.eval(), meta


def save_train_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
) -> Path:
    """A resumable training checkpoint in local dir ``path``: model dir + optimizer,
    scheduler (``train_state.pt``) and the JSON ``state`` (epoch, best score, history)."""
    path = Path(save_model_dir(path, model, meta))
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
        path / STATE_FILE,
    )
    (path / STATE_JSON).write_text(json.dumps(_json_safe(state), indent=2) + "\n")
    return path


def load_train_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> dict[str, Any]:
    """Restore ``model`` (and optimizer/scheduler when given) in place from a local training
    checkpoint; returns its JSON state (``epoch`` = last finished epoch)."""
    path = Path(path)
    _unwrap(model).load_state_dict(load_state_dict(path), strict=True)
    if optimizer is not None or scheduler is not None:
        blob = torch.load(path / STATE_FILE, map_location="cpu", weights_only=True)
        if optimizer is not None:
            optimizer.load_state_dict(blob["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(blob["scheduler"])
    return json.loads((path / STATE_JSON).read_text())


def copy_model_dir(src: str | Path, dst: str | Path) -> Path | str:
    """Copy only the model-directory files (weights + meta) of ``src`` to ``dst``."""
    local, tmp = local_copy(src)
    try:
        if is_remote_uri(dst):
            with tempfile.TemporaryDirectory(prefix="mixhic-copy-") as out:
                for name in (MODEL_FILE, META_FILE):
                    shutil.copy2(local / name, Path(out) / name)
                upload_dir(Path(out), str(dst))
            return str(dst)
        dst = Path(_strip_file(dst))
        dst.mkdir(parents=True, exist_ok=True)
        for name in (MODEL_FILE, META_FILE):
            shutil.copy2(local / name, dst / name)
        return dst
    finally:
        if tmp is not None:
            tmp.cleanup()

