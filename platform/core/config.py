"""Typed run configs: YAML files -> frozen dataclasses, with ``key=value`` overrides.

Every recipe declares its config as a (nested) frozen dataclass. :func:`load_config`
reads a YAML file (a path, or the name of a config shipped in ``mixhic.platform.configs``),
applies dotted ``key=value`` overrides, and builds the dataclass, checking every key and
type on the way. Errors are :class:`ConfigError` and name the offending key, e.g.
``pretrain.yaml: train.lr: expected float, got 'fast'``.

    >>> cfg = load_config("demo-pretrain", PretrainConfig, ["train.epochs=3"])
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml

__all__ = [
    "ConfigError",
    "check",
    "load_config",
    "build",
    "to_dict",
    "parse_overrides",
    "apply_overrides",
    "Overrides",
    "as_overrides",
    "shipped_configs",
    "resolve_config_path",
]

T = TypeVar("T")

#: Marks a config field that holds overrides of another config (see :data:`Overrides`).
_OVERRIDES = "mixhic.config.overrides"
#: The type of a config field holding overrides of another config: a mapping of its keys,
#: dotted (``{"train.epochs": 1}``), nested (``{"train": {"epochs": 1}}``) or both, stored
#: flat (dotted key -> value) and applied with :func:`apply_overrides`. A list of
#: ``key=value`` strings is refused with a message that shows the mapping to write.
Overrides = Annotated[dict[str, Any], _OVERRIDES]


class ConfigError(ValueError):
    """A run config is invalid; the message names the file and the key (``key``: the
    dotted key, when known)."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def check(cond: Any, key: str, msg: str) -> None:
    """The one validation step of the config dataclasses (in ``__post_init__``):
    ``ConfigError("key: msg")`` unless ``cond``.

    ``key`` is dotted from the config's root when the section has one place
    (``data.batch_size``), else relative to the section (``step_bp`` of a grid plan):
    :func:`build` then prefixes the section's path (``datasets.hic.step_bp``).
    """
    if not cond:
        raise ConfigError(f"{key}: {msg}", key=key)


def shipped_configs() -> list[str]:
    """Names (without ``.yaml``) of the configs shipped in the package."""
    root = resources.files("mixhic.platform.configs")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A YAML path as given, or a shipped config by name (``demo-pretrain``)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return path
    if path.suffix in (".yaml", ".yml"):
        raise ConfigError(f"{path}: config file not found")
    shipped = resources.files("mixhic.platform.configs") / f"{name_or_path}.yaml"
    if shipped.is_file():
        return Path(str(shipped))
    raise ConfigError(
        f"{name_or_path}: no such config file, and no shipped config of that name "
        f"(shipped: {', '.join(shipped_configs())})"
    )


def _parse_scalar(text: str) -> Any:
    """An override value is YAML (so ``1e-4``, ``[chr1, chr2]``, ``null`` work)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["optim.lr=1e-4", "splits.val=[chr2]"]`` -> ``{"optim.lr": 1e-4, ...}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected key=value")
        out[key.strip()] = _parse_scalar(value)
    return out


def apply_overrides(raw: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Set dotted keys in a nested dict (a copy); unknown keys are caught by :func:`build`."""
    raw = _deep_copy(raw)
    for dotted, value in overrides.items():
        node = raw
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{dotted}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return raw


def as_overrides(value: Any, key: str, cli: bool = True) -> dict[str, Any]:
    """``value`` (the config field ``key``) as flat overrides ``{dotted key: value}``.

    A nested mapping is flattened (``{"train": {"epochs": 1}}`` -> ``{"train.epochs": 1}``;
    an empty mapping stays a value); a list of ``key=value`` strings is a ConfigError that
    says what to write instead.
    """
    if isinstance(value, (list, tuple)):
        try:
            shown = yaml.safe_dump(parse_overrides([str(v) for v in value]),
                                   default_flow_style=True, sort_keys=False).strip()
        except ConfigError:
            shown = "{train.epochs: 1, data.data_dir: data}"
        tail = f" (on the command line, one key each: {key}.train.epochs=1)" if cli else ""
        raise ConfigError(
            f"{key}: a list of key=value strings is not read any more; write a mapping of "
            f"the keys to set: {key}: {shown}{tail}")
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a mapping of config keys to values, got {value!r}")
    flat: dict[str, Any] = {}

    def walk(node: Mapping, path: str) -> None:
        for k, v in node.items():
            if not isinstance(k, str) or not k:
                raise ConfigError(f"{key}: keys must be config keys (text), got {k!r}")
            dotted = f"{path}.{k}" if path else k
            if isinstance(v, Mapping) and v:
                walk(v, dotted)
            else:
                flat[dotted] = _deep_copy(v)

    walk(value, "")
    return flat


def _deep_copy(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _deep_copy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_deep_copy(v) for v in obj]
    return obj


def load_config(
    name_or_path: str | Path,
    cls: type[T],
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> T:
    """Load a YAML config into ``cls`` after applying ``key=value`` overrides."""
    path = resolve_config_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys")
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    raw = apply_overrides(raw, overrides)
    try:
        return build(cls, raw)
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}") from None


def build(cls: type[T], raw: Any, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping, checking keys and types."""
    if isinstance(raw, cls):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix or '<root>'}: expected a mapping for {cls.__name__}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown key {where}{unknown[0]} (known: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, field in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in raw:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{key}: required key is missing")
            continue
        kwargs[name] = _coerce(hints[name], raw[name], key)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        key = exc.key
        if prefix and key is not None and key != prefix and not key.startswith(prefix + "."):
            raise ConfigError(f"{prefix}.{exc}", key=f"{prefix}.{key}") from None
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{prefix or cls.__name__}: {exc}") from None


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        if _OVERRIDES in tp.__metadata__:
            return as_overrides(value, key)
        return _coerce(args[0], value, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if origin in (tuple, list) or tp in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if origin is tuple and args:
            if len(args) != len(value):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {
            _coerce(kt, k, f"{key}.{k}"): _coerce(vt, v, f"{key}.{k}") for k, v in value.items()
        }
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if isinstance(value, str):
                try:
                    return float(value)
                except ValueError:
                    pass
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config dataclass as plain nested dicts/lists (for YAML dumps and MLflow params)."""
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)
