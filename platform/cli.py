"""The ``mixhic`` command: one subcommand per step, each a thin wrapper over a library call.

Subcommands are imported lazily so that ``mixhic --help`` and ``mixhic simulate`` do not
pay for importing Ray, torch or MLflow. Each entry names the module whose ``cli_main``
takes the remaining argv and returns an exit status. ``prepare`` and ``predict`` live in
the top-level package (``mixhic._prepare``, ``mixhic._predict``): they parse and call
the notebook API (:func:`mixhic.prepare`, :func:`mixhic.predict_region`), the one
implementation of both. Modules are named here as strings, so this layer imports none
of them.

Every command with a config has the form ``mixhic COMMAND [CONFIG] [key=value ...]
[flags]``, parsed by :class:`mixhic.core.cliargs.ConfigCommand`. The global flags
``-v``/``-q`` are taken here, before or after the command (:func:`main`), never by a
command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from mixhic.core.errors import is_user_error
from mixhic.core.runtime import Terminated, install_signal_handlers, shutdown_ray

__all__ = ["main", "COMMANDS", "log_level"]

COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("mixhic.pipelines.simulate", "simulate a small realistic genome as .mcool/bigWig/bedpe/BED"),
    "prepare": ("mixhic._prepare", "window genome files into Parquet datasets with Ray Data"),
    "pretrain": ("mixhic.platform.pretrain", "pre-train MIX-HIC with Ray Train"),
    "finetune": ("mixhic.platform.finetune", "fine-tune on hic | loops | cage"),
    "evaluate": ("mixhic.platform.evaluate", "evaluate a checkpoint on a dataset split"),
    "demo": ("mixhic.platform.demo", "simulate -> prepare -> pretrain -> fine-tune -> evaluate -> register"),
    "ablate": ("mixhic.platform.ablate", "modality ablation table and few-shot curve"),
    "tune": ("mixhic.platform.tuning", "Ray Tune search over the pretraining loss weights"),
    "serve": ("mixhic.serve.app", "serve a model over HTTP with Ray Serve"),
    "predict": ("mixhic._predict", "genome-wide prediction to .cool / bedpe / bigWig"),
    "submit": ("mixhic.platform.jobs", "submit a mixhic command to a Ray cluster as a job"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return (
        "commands:\n" + "\n".join(lines) + "\n\n"
        "form: mixhic COMMAND [CONFIG] [key=value ...] [flags] (CONFIG: a shipped config name\n"
        "or a YAML path; every setting is a dotted key=value; `mixhic COMMAND --help` lists\n"
        "the command's flag aliases). submit: mixhic submit [flags] -- COMMAND ...\n\n"
        "global flags, before or after the command: -v/--verbose (-v tracebacks, -vv debug\n"
        "logging), -q/--quiet (-q warnings only, -qq errors only)."
    )


def log_level(verbose: int, quiet: int) -> int:
    """The logging level of ``-v``/``-q`` counts: INFO by default, ``-vv`` DEBUG, ``-q``
    WARNING, ``-qq`` ERROR (``-v`` alone keeps INFO and shows tracebacks)."""
    net = verbose - quiet
    if net >= 2:
        return logging.DEBUG
    if net >= 0:
        return logging.INFO
    return logging.WARNING if net == -1 else logging.ERROR


def main(argv: list[str] | None = None) -> int:
    # lazy: core.cliargs pulls yaml (+35 ms) into `import mixhic.platform.cli`
    from mixhic.core.cliargs import split_global_flags

    argv = list(sys.argv[1:] if argv is None else argv)
    verbose, quiet, argv = split_global_flags(argv)  # anywhere before a `--`
    parser = argparse.ArgumentParser(
        prog="mixhic",
        description="MIX-HIC: multimodal 3D-genome pre-training on Ray.",
        epilog=_usage(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (repeatable; before or after the command)")
    parser.add_argument("-q", "--quiet", action="count", default=0,
                        help="less logging (repeatable; before or after the command)")
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="command")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    logging.basicConfig(
        level=log_level(verbose, quiet),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    install_signal_handlers()  # SIGTERM unwinds like Ctrl-C (ensure_ray re-installs it)
    try:
        module = importlib.import_module(COMMANDS[ns.command][0])
        return int(module.cli_main(ns.args) or 0)
    except Terminated as exc:
        logging.getLogger("mixhic").error("terminated (%s): shutting down", exc)
        return 128 + exc.signum
    except KeyboardInterrupt:
        logging.getLogger("mixhic").error("interrupted: shutting down")
        return 130
    except Exception as exc:  # user-facing errors end in one clear line
        if is_user_error(exc) and verbose == 0:
            logging.getLogger("mixhic").error("%s", exc)
            return 2
        raise
    finally:
        shutdown_ray()  # a local Ray stops all its processes (else agents outlive us)


if __name__ == "__main__":
    raise SystemExit(main())
