"""The one shape of a ``mixhic`` command: ``mixhic COMMAND [CONFIG] [key=value ...] [flags]``.

``CONFIG`` is a shipped config name or a YAML path (a command names its default); every
setting is a dotted ``key=value`` override (values in YAML syntax). A command's
convenience flags are :class:`Alias` es: each is only another spelling of one
``key=value`` and is rewritten to it here, in :meth:`ConfigCommand.parse`, for every
command alike (``--task loops`` is ``task=loops``; ``--model A --model B`` is
``models=[A, B]``; ``--track atac=a.bw`` sets ``genome.tracks.atac``). An alias given
beside its dotted form wins. The global flags ``-v/--verbose`` and ``-q/--quiet`` are
taken off the command line by ``mixhic`` itself (:func:`split_global_flags`), before or
after the command, so no command parses them. ``--print-config``, like ``--help``,
prints (the complete config the command line runs with, every default filled in, as YAML
that loads back as CONFIG) and exits.

    >>> cmd = ConfigCommand("mixhic finetune", "Fine-tune.", default_config="demo-finetune",
    ...                     aliases=[Alias("--task", "task", choices=("hic", "loops", "cage"))])
    >>> args = cmd.parse(["--task", "loops", "train.epochs=3"])
    >>> args.config, args.overrides
    ('demo-finetune', {'train.epochs': 3, 'task': 'loops'})
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import yaml
from mixhic.core.config import (
    ConfigError,
    _parse_scalar,
    apply_overrides,
    build,
    interpolate,
    load_config,
    parse_overrides,
    to_dict,
)

__all__ = [
    "Alias",
    "ConfigArgs",
    "ConfigCommand",
    "FORM",
    "GLOBAL_FLAGS",
    "command_parser",
    "split_global_flags",
]

T = TypeVar("T")

FORM = "mixhic COMMAND [CONFIG] [key=value ...] [flags]"
GLOBAL_FLAGS = (
    "global flags (before or after the command): -v/--verbose (repeatable: -v shows "
    "tracebacks, -vv debug logging), -q/--quiet (repeatable: -q warnings only, -qq errors only)"
)

AliasKind = Literal["value", "true", "false", "append", "list", "mapping"]


@dataclass(frozen=True)
class Alias:
    """A convenience flag that stands for one ``key=value`` override.

    ``kind``: ``value`` (``--flag V`` is ``key=V``), ``true`` / ``false`` (``--flag`` is
    ``key=true`` / ``key=false``), ``append`` (repeatable: ``--flag A --flag B`` is
    ``key=[A, B]``; aliases of one key add to one list, in declaration order), ``list``
    (``--flag A B`` is ``key=[A, B]``), ``mapping`` (repeatable ``--flag NAME=V`` is
    ``key.NAME=V``). Values are read as YAML, as in ``key=value``; list and mapping
    items stay strings. ``example`` is a valid value, shown in the help.
    """

    flag: str
    key: str
    help: str = ""
    kind: AliasKind = "value"
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    example: str | None = None

    @property
    def dest(self) -> str:
        return "alias_" + self.flag.lstrip("-").replace("-", "_")

    def spelled(self) -> str:
        """The override this alias stands for, as the help shows it."""
        v = self.metavar or "VALUE"
        return {"value": f"{self.key}={v}", "true": f"{self.key}=true",
                "false": f"{self.key}=false", "append": f"{self.key}=[{v}, ...]",
                "list": f"{self.key}=[{v}, ...]",
                "mapping": f"{self.key}.NAME=VALUE"}[self.kind]


@dataclass(frozen=True)
class ConfigArgs:
    """A parsed command line: the config to load, its overrides, and the other flags."""

    config: str | None
    overrides: dict[str, Any]
    ns: argparse.Namespace = field(compare=False)

    def load(self, cls: type[T]) -> T:
        """``cls`` from ``config`` (none: ``cls``'s defaults) with the overrides applied and
        ``${...}`` references resolved; :class:`~mixhic.core.config.ConfigError` names a bad
        key or value."""
        if self.config is None:
            return build(cls, interpolate(apply_overrides({}, self.overrides)))
        return load_config(self.config, cls, self.overrides)


def _wrap(text: str, hang: str = "  ") -> str:
    """Each line filled to 88 columns, its continuation lines indented by ``hang``."""
    out = []
    for line in text.splitlines():
        indent = " " * (len(line) - len(line.lstrip()))
        out.append(textwrap.fill(line, 88, subsequent_indent=indent + hang, break_on_hyphens=False,
                                 break_long_words=False) if line else "")
    return "\n".join(out)


def command_parser(prog: str, description: str, *, usage: str | None = None,
                   epilog: str = "") -> argparse.ArgumentParser:
    """An :class:`argparse.ArgumentParser` with the conventions of every ``mixhic``
    command (the global flags in the epilog, which keeps its line breaks)."""
    return argparse.ArgumentParser(
        prog=prog, usage=usage, description=_wrap(description, hang=""),
        epilog=_wrap("\n\n".join(x for x in (epilog.rstrip(), GLOBAL_FLAGS) if x)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


class ConfigCommand:
    """The parser of a command that takes a config: ``[CONFIG] [key=value ...] [flags]``.

    ``default_config``: the shipped config used without CONFIG (None: the config class's
    defaults, so required keys come as ``key=value``). ``config_help`` says what CONFIG
    names. ``config_class``: the config dataclass. ``resolve``: how a parsed command line
    becomes the config the command runs with, for :meth:`config_from_args` and
    ``--print-config`` (default: :meth:`ConfigArgs.load` of ``config_class``; None and no
    ``config_class``: neither). More (non-config) flags can be added to
    :attr:`parser`.
    """

    def __init__(self, prog: str, description: str, *, default_config: str | None,
                 config_class: type | None = None,
                 config_help: str = "shipped config name or YAML path",
                 aliases: Sequence[Alias] = (), keys_help: str = "", epilog: str = "",
                 resolve: Callable[[ConfigArgs], Any] | None = None):
        self.prog = prog
        self.config_class = config_class
        if resolve is None and config_class is not None:
            resolve = functools.partial(ConfigArgs.load, cls=config_class)
        self.resolve = resolve
        self.default_config = default_config
        self.aliases = tuple(aliases)
        lines = [f"form: {prog} [CONFIG] [key=value ...] [flags]; every setting is a dotted "
                 "key=value (values in YAML syntax)."]
        if keys_help:
            lines.append(keys_help)
        if self.aliases:
            lines.append("each flag alias above is only the key=value shown beside it "
                         f"({', '.join(a.flag for a in self.aliases)}).")
        self.parser = command_parser(prog, description,
                                     epilog="\n".join(lines) + ("\n\n" + epilog if epilog else ""))
        default = f"default {default_config}" if default_config else "default: none"
        self.parser.add_argument("config", nargs="?", default=None, metavar="CONFIG",
                                 help=f"{config_help} ({default})")
        self.parser.add_argument("overrides", nargs="*", default=[], metavar="key=value",
                                 help="config overrides (dotted keys, YAML values)")
        for a in self.aliases:
            kw: dict[str, Any] = {"dest": a.dest, "help": f"{a.help} (= {a.spelled()})".lstrip()}
            if a.kind in ("true", "false"):
                kw["action"] = "store_true"
            else:
                kw["metavar"] = a.metavar
                kw["choices"] = a.choices
                if a.kind in ("append", "mapping"):
                    kw.update(action="append", default=[])
                elif a.kind == "list":
                    kw["nargs"] = "+"
            self.parser.add_argument(a.flag, **kw)
        if self.resolve is not None:
            self.parser.add_argument(
                "--print-config", action="store_true",
                help="print the complete config this command line runs with (every key, "
                     "defaults filled in) as YAML that loads back as CONFIG, and exit")

    def parse(self, argv: Sequence[str]) -> ConfigArgs:
        """Split ``argv`` into CONFIG, ``key=value`` overrides (aliases rewritten to
        theirs) and the other flags. Raises ConfigError on a malformed override."""
        ns = self.parser.parse_intermixed_args(list(argv))  # flags may sit anywhere
        words = ([ns.config] if ns.config is not None else []) + list(ns.overrides)
        config = self.default_config
        if words and "=" not in words[0]:
            config = words.pop(0)
        stray = [w for w in words if "=" not in w]
        if stray:
            self.parser.error(f"{stray[0]!r}: expected key=value (CONFIG comes first, once)")
        overrides = parse_overrides(words)
        for key, value in self.alias_overrides(ns).items():
            overrides[key] = value
        args = ConfigArgs(config, overrides, ns)
        if getattr(ns, "print_config", False):  # like --help: print, then exit
            sys.stdout.write(self.dump(args))
            sys.stdout.flush()
            raise SystemExit(0)
        return args

    def dump(self, args: ConfigArgs) -> str:
        """The YAML ``--print-config`` prints for ``args``: every key of the config
        :attr:`resolve` builds, in declaration order."""
        if self.resolve is None:
            raise TypeError(f"{self.prog}: ConfigCommand has no config to print")
        return yaml.safe_dump(to_dict(self.resolve(args)), sort_keys=False,
                              default_flow_style=False)

    def config_from_args(self, argv: Sequence[str]) -> Any:
        """The config that ``prog ARGS`` runs with (:attr:`resolve`; nothing is run);
        ConfigError names a bad key or value."""
        if self.resolve is None:
            raise TypeError(f"{self.prog}: ConfigCommand built without config_class or "
                            "resolve")
        return self.resolve(self.parse(argv))

    def alias_overrides(self, ns: argparse.Namespace) -> dict[str, Any]:
        """The ``key=value`` overrides the aliases given in ``ns`` stand for."""
        out: dict[str, Any] = {}
        for a in self.aliases:
            got = getattr(ns, a.dest)
            if a.kind in ("true", "false"):
                if got:
                    out[a.key] = a.kind == "true"
            elif a.kind == "value":
                if got is not None:
                    out[a.key] = _parse_scalar(got)
            elif a.kind in ("append", "list"):
                if got:
                    out[a.key] = [*out.get(a.key, []), *got]
            else:  # mapping: NAME=VALUE
                for item in got:
                    name, sep, value = item.partition("=")
                    if not sep or not name:
                        raise ConfigError(f"{a.flag} {item!r}: expected NAME=VALUE")
                    out[f"{a.key}.{name}"] = value
        return out


_VERBOSE = re.compile(r"-v+")
_QUIET = re.compile(r"-q+")


def split_global_flags(argv: Sequence[str]) -> tuple[int, int, list[str]]:
    """``(verbose, quiet, rest)``: the global ``-v``/``--verbose`` and ``-q``/``--quiet``
    (repeatable, ``-vv``) counted wherever they sit before a ``--`` (what follows ``--``
    belongs to another command line, e.g. ``mixhic submit -- COMMAND``), and the rest."""
    verbose = quiet = 0
    rest: list[str] = []
    for i, word in enumerate(argv):
        if word == "--":
            rest.extend(argv[i:])
            break
        if word == "--verbose" or _VERBOSE.fullmatch(word):
            verbose += 1 if word == "--verbose" else len(word) - 1
        elif word == "--quiet" or _QUIET.fullmatch(word):
            quiet += 1 if word == "--quiet" else len(word) - 1
        else:
            rest.append(word)
    return verbose, quiet, rest
