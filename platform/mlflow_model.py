"""MLflow pyfunc for a fine-tuned MIX-HIC model ("models from code": nothing is pickled).

MLflow runs this file when it loads a model logged by
:func:`mixhic.platform.tracking.log_and_register_model`. The weights travel as the
artifact ``model_dir`` (``model.safetensors`` + ``mixhic.json``) and are read by
:func:`mixhic.platform.checkpoints.load_model_dir`.

Input: ``{"epi": (B, C, 2L) float32, "hic": (B, W, W) float32}`` (``hic`` needed by the
bimodal/nonpre modes, ignored by infer/epi), as a dict of arrays or a DataFrame whose
``epi``/``hic`` cells are arrays. Output (numpy float32): Hi-C task (B, W, W) maps; loops
(B,) probabilities (sigmoid of the logits); CAGE (B, W) tracks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mlflow
import numpy as np
from mixhic.models.tasks import HIC_INPUT_MODES
from mixhic.platform.checkpoints import load_model_dir

__all__ = ["MixHicPyfunc", "predict_arrays", "to_arrays"]


def to_arrays(model_input: Any) -> dict[str, np.ndarray]:
    """``{"epi": ..., "hic": ...}`` float32 arrays from a dict or a pandas DataFrame."""
    if hasattr(model_input, "columns"):  # pandas DataFrame: one row per sample
        cols = {c: [np.asarray(v, dtype=np.float32) for v in model_input[c]]
                for c in model_input.columns}
        model_input = {c: np.stack(v) for c, v in cols.items() if v}
    if not isinstance(model_input, Mapping):
        raise ValueError(
            f"model input: expected a dict/DataFrame with 'epi' (and 'hic'), got "
            f"{type(model_input).__name__}"
        )
    if "epi" not in model_input:
        raise ValueError("model input: missing 'epi' (B, C, 2L) array")
    out = {"epi": np.asarray(model_input["epi"], dtype=np.float32)}
    for key in ("hic", "offset"):
        if model_input.get(key) is not None:
            out[key] = np.asarray(model_input[key], dtype=np.float32)
    return out


def predict_arrays(model: Any, meta: Mapping[str, Any], inputs: Mapping[str, Any]) -> np.ndarray:
    """Run a fine-tuned model on numpy inputs (``epi`` (B, C, 2L), ``hic`` (B, W, W) for
    bimodal/nonpre, optional ``offset`` (B,): bins from each x-anchor to its y-anchor, 0 =
    diagonal windows); loops logits become probabilities."""
    import torch

    if meta.get("kind") != "finetune":
        raise ValueError(
            f"mixhic.json kind: only 'finetune' models predict, got {meta.get('kind')!r}"
        )
    arrays = to_arrays(inputs)
    epi = torch.from_numpy(np.ascontiguousarray(arrays["epi"]))
    if epi.ndim == 2:
        epi = epi[None]
    hic = None
    if meta.get("mode") in HIC_INPUT_MODES:
        if "hic" not in arrays:
            raise ValueError(
                f"model input: mode {meta.get('mode')!r} needs a 'hic' (B, W, W) array"
            )
        hic = torch.from_numpy(np.ascontiguousarray(arrays["hic"]))
        if hic.ndim == 2:
            hic = hic[None]
    offset = None
    if "offset" in arrays:
        offset = torch.as_tensor(np.asarray(arrays["offset"], dtype=np.float32).reshape(-1))
        if offset.shape != (epi.shape[0],):
            raise ValueError(f"model input: offset must hold one value per window "
                             f"({epi.shape[0]}), got shape {tuple(offset.shape)}")
    model.eval()
    with torch.inference_mode():
        return model.predict(epi, hic=hic, offset=offset).cpu().numpy()


class MixHicPyfunc(mlflow.pyfunc.PythonModel):
    """Loads the model directory artifact once; ``predict`` maps inputs to predictions."""

    # No type hints on load_context/predict: MLflow would read them as a schema (so it
    # warns once "Add type hints"; harmless, the logged signature describes the tensors).
    def load_context(self, context):
        self.model, self.meta = load_model_dir(context.artifacts["model_dir"])
        self.model.eval()

    def predict(self, context, model_input, params=None):
        return predict_arrays(self.model, self.meta, model_input)


mlflow.models.set_model(MixHicPyfunc())
