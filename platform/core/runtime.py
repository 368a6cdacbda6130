"""Connect to Ray: the cluster in ``RAY_ADDRESS`` if set, else a local Ray started here.

The local Ray is sized for a laptop (no dashboard, bounded object store) and is what the
demo and the tests use; the same code runs unchanged inside ``ray job submit``.

Signals: the Ray driver installs a C++ handler that answers SIGTERM with a stack dump and
an abort, leaving the Ray processes it started (agents) running. :func:`ensure_ray`
re-installs :func:`install_signal_handlers` after ``ray.init``: SIGTERM raises
:class:`Terminated` (a ``KeyboardInterrupt``) in the main thread like Ctrl-C does, so the
command unwinds, ``mixhic`` exits 130 (SIGINT) or 143 (SIGTERM) with one line, and
``ray.shutdown`` stops every process of the local Ray.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading

__all__ = ["ensure_ray", "configure_ray_data", "install_signal_handlers", "shutdown_ray",
           "Terminated"]

log = logging.getLogger(__name__)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM (or SIGHUP): unwind and shut down cleanly."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, frame) -> None:
    # once: a second signal while shutting down is logged, not raised into the cleanup
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _again)
    raise Terminated(signum) if signum != signal.SIGINT else KeyboardInterrupt()


def _again(signum, frame) -> None:
    log.warning("%s: already shutting down (SIGKILL to stop at once)",
                signal.Signals(signum).name)


def install_signal_handlers() -> None:
    """SIGINT, SIGTERM and SIGHUP raise in the main thread (no-op in other threads):
    ``KeyboardInterrupt`` for SIGINT, :class:`Terminated` for the others."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


@contextlib.contextmanager
def _signals_deferred():
    """Hold SIGINT/SIGTERM/SIGHUP while Ray starts, then raise the first one: an interrupt
    inside ``ray.init`` leaves Ray's agents running with nobody to stop them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum, frame) -> None:
        pending.append(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, hold)
    try:
        yield
    finally:
        install_signal_handlers()
    if pending:
        _on_signal(pending[0], None)


def shutdown_ray() -> None:
    """``ray.shutdown()`` if this process connected to or started Ray (a started local Ray
    stops all its processes, agents included); never raises."""
    import sys

    ray = sys.modules.get("ray")
    if ray is None or not hasattr(ray, "is_initialized"):
        return
    try:
        if ray.is_initialized():
            ray.shutdown()
    except Exception as exc:  # noqa: BLE001 - exiting anyway
        log.warning("ray.shutdown failed: %s", exc)


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
    with _signals_deferred():  # re-installs our handlers after ray.init (it sets its own)
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
