"""``mixhic.prepare``: genome files -> windowed Parquet datasets (and ``mixhic prepare``).

One call runs what ``mixhic prepare CONFIG key=value ...`` runs:
:func:`mixhic.pipelines.prepare.prepare` on Ray Data, after loading the config exactly as
the command does (shipped YAML name or path, dotted ``key=value`` overrides).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from mixhic.core.cliargs import ConfigCommand
from mixhic.core.config import apply_overrides, build, load_config, parse_overrides, to_dict
from mixhic.pipelines.manifest import Manifest

__all__ = ["prepare", "prepare_config", "config_from_args", "cli_main"]

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "prepare-demo"


def _merged(overrides: Sequence[str] | Mapping[str, Any], keys: Mapping[str, Any]
            ) -> dict[str, Any]:
    """``key=value`` strings or a mapping of dotted keys, then keyword keys (``__`` for ``.``)."""
    if isinstance(overrides, str):
        overrides = [overrides]
    merged = dict(overrides) if isinstance(overrides, Mapping) else parse_overrides(overrides)
    merged.update({k.replace("__", "."): v for k, v in keys.items()})
    return merged


def prepare_config(config: Any = DEFAULT_CONFIG,
                   overrides: Sequence[str] | Mapping[str, Any] = (), **keys: Any):
    """The :class:`~mixhic.pipelines.prepare.PrepareConfig` that :func:`prepare` runs
    with (arguments as there); raises :class:`~mixhic.core.config.ConfigError` naming the
    file and key of a bad value."""
    # lazy: pulls numpy and pyarrow (+0.25 s) into mixhic prepare --help
    from mixhic.pipelines.prepare import PrepareConfig

    merged = _merged(overrides, keys)
    if isinstance(config, PrepareConfig):
        return build(PrepareConfig, apply_overrides(to_dict(config), merged)) if merged else config
    return load_config(os.fspath(config), PrepareConfig, merged)


def prepare(config: Any = DEFAULT_CONFIG, overrides: Sequence[str] | Mapping[str, Any] = (),
            **keys: Any) -> Manifest:
    """Window genome files (.cool/.mcool, bigWig tracks, loop bedpe, CAGE) into Parquet
    datasets with Ray Data, as ``mixhic prepare`` does; return the manifest.

    Args:
        config: a shipped config name (``"prepare-demo"``, ``"prepare-paper"``), a YAML
            path, or a :class:`~mixhic.pipelines.prepare.PrepareConfig`.
        overrides: ``["root=runs/genome", "inputs.hic.resolution=10000"]`` (values in
            YAML syntax, as on the command line) or ``{"inputs.hic.resolution": 10000}``.
        **keys: more overrides as keyword arguments, ``__`` for a dot:
            ``root="runs/genome", out="runs/data", inputs__hic__resolution=10000``.

    Returns:
        The :class:`~mixhic.pipelines.manifest.Manifest` written to ``<out>/manifest.json``
        (``out`` resolved against ``root``): ``datasets`` (names), ``rows[dataset][split]``
        (windows per split), ``shapes`` (``hic`` [W, W], ``epi`` [C, 2L], ``tracks``,
        ``resolution``, ``epi_bin``), ``params`` (the resolved config, with ``out``).
        ``<out>/<dataset>/`` holds each dataset's Parquet files.

    Ray: uses the running Ray (``ray.init`` / ``RAY_ADDRESS``) or starts a local one
    (``run.num_cpus`` CPUs) that stays up for later calls. A rerun with the same inputs
    and parameters is a no-op (``run.force=true`` redoes it).

    Raises:
        ConfigError / MixHicError naming the config key or the input file.
    """
    # lazy: pulls numpy and pyarrow (+0.25 s) into mixhic prepare --help
    from mixhic.pipelines.prepare import prepare as run_prepare

    cfg = prepare_config(config, overrides, **keys)
    return run_prepare(cfg)


CLI = ConfigCommand(
    "mixhic prepare",
    "Window .cool/.mcool + bigWig (+ bedpe, TSS BED) into Parquet datasets with Ray Data. "
    "Relative paths resolve against `root`. Python: mixhic.prepare().",
    default_config=DEFAULT_CONFIG,
    config_help="shipped config name (prepare-demo, prepare-paper) or YAML path",
    keys_help="e.g. mixhic prepare prepare-demo root=runs/genome out=runs/data",
    resolve=lambda args: prepare_config(args.config, args.overrides),
)


config_from_args = CLI.config_from_args  # the PrepareConfig ``ARGS`` run with


def cli_main(argv: list[str]) -> int:
    """``mixhic prepare [CONFIG] [key=value ...]``: parse, then :func:`prepare`."""
    args = CLI.parse(argv)
    manifest = prepare(args.config, args.overrides)
    for d in manifest.datasets:
        log.info("%-8s %s", d, manifest.rows[d])
    return 0
