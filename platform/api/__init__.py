"""mixhic for notebooks: plain functions over paths and arrays, one import path.

    import mixhic

    manifest = mixhic.prepare("prepare-demo", root="runs/genome", out="runs/data")
    model = mixhic.load_model("runs/finetune-hic/model")         # or models:/NAME@ALIAS
    out = mixhic.predict_region(model, "chr1:1,000,000-1,500,000",
                                hic="genome.mcool", tracks={"atac": "atac.bw", "dnase": "dnase.bw"})
    out["hic"]                                                   # (n, n) predicted map

* :func:`prepare` (config name/path + ``key=value`` overrides) -> the
  :class:`~mixhic.pipelines.manifest.Manifest` of the prepared data; runs on Ray Data (a
  local Ray is started when none is running), exactly as ``mixhic prepare``.
* :func:`load_model` (fine-tuned model dir or MLflow model URI) -> a
  :class:`~mixhic.serve.engine.TaskModel` (numpy in, numpy out); no Ray.
* :func:`predict_region` (model(s), region string + genome files, or arrays) -> dict of
  numpy arrays, as the Serve ``/v1`` routes and the ``/view`` region viewer compute them.

The ``mixhic prepare`` and ``mixhic predict`` commands call these functions. This
package is the top layer (above ``mixhic.serve``); names load on first use (PEP 562), so
``import mixhic`` imports neither torch nor Ray.
"""

from __future__ import annotations

import sys

from mixhic.core.lazy import lazy_exports

# An editable install (pip install -e) finds the namespace subpackage mixhic.platform
# (platform/ has no __init__.py) only through setuptools' path-hook entry on its parent's
# __path__ (pypa/setuptools#4943: its finder handles a namespace child of a namespace
# parent only); as a regular package, mixhic adds that entry. A wheel install has none.
__path__ += [p for p in sys.path if isinstance(p, str)  # noqa: F821 (a package's __path__)
             and p.startswith("__editable__.mixhic-") and p.endswith(".__path_hook__")]

_EXPORTS = {
    "prepare": "._prepare",
    "load_model": "._predict",
    "predict_region": "._predict",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
