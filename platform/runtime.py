"""Connect to Ray: the cluster in ``RAY_ADDRESS`` if set, else a local Ray started here.

The local Ray is sized for a laptop (no dashboard, bounded object store) and is what the
demo and the tests use; the same code runs unchanged inside ``ray job submit``.
"""

from __future__ import annotations

import logging
import os

__all__ = ["ensure_ray", "configure_ray_data"]

log = logging.getLogger(__name__)


def configure_ray_data() -> None:
    """Write tensors as Arrow's native fixed-shape tensor type (shape survives plain pyarrow)."""
    from ray.data import DataContext
    from ray.data._internal.tensor_extensions.arrow import FixedShapeTensorFormat

    ctx = DataContext.get_current()
    ctx.arrow_fixed_shape_tensor_format = FixedShapeTensorFormat.ARROW_NATIVE


def ensure_ray(num_cpus: int | None = None, object_store_gb: float = 1.5) -> None:
    """Initialise Ray once per process (no-op if already initialised)."""
    import ray

    if ray.is_initialized():
        configure_ray_data()
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        log.info("connecting to Ray at %s", address)
        ray.init(address=address, log_to_driver=True)
    else:
        log.info("starting a local Ray (num_cpus=%s)", num_cpus or os.cpu_count())
        ray.init(
            num_cpus=num_cpus,
            object_store_memory=int(object_store_gb * 2**30),
            include_dashboard=False,
            log_to_driver=False,
        )
    configure_ray_data()
