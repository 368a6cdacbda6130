"""Typed run configs: YAML files -> frozen dataclasses, with ``key=value`` overrides.

Every recipe declares its config as a (nested) frozen stdlib dataclass. :func:`load_config`
reads a YAML file (a path, or the name of a config shipped in ``mixhic.platform.configs``),
applies dotted ``key=value`` overrides, resolves ``${...}`` references, and builds the
dataclass with :func:`build`, which validates every key and type with pydantic. Errors are
:class:`ConfigError` and start with the dotted key, e.g.
``pretrain.yaml: optim.lr: expected a number, got 'fast'``.

References (OmegaConf's interpolation): a value that is exactly ``${optim.lr}`` takes the
value of that key, with its type; ``${data.sample}`` inside longer text is replaced by the
value's text (``run_name: ft-${task}``); ``$${`` writes a literal ``${``. Keys are dotted
from the config's root and may refer to other references; they are resolved after the
overrides, so ``optim.lr=${optim.weight_decay}`` works on the command line. They see the
keys written in the YAML file and the overrides, not a dataclass's defaults. A reference
inside an ``Overrides`` mapping (``pretrain_overrides``) is resolved in the config that
holds it; ``$${train.epochs}`` there passes ``${train.epochs}`` on to the config it
overrides.

Defaults are shipped YAML, not code: a config class decorated with
:func:`shipped_defaults` takes its field defaults from the ``<module>.defaults.yaml`` beside
its module, so the dataclass holds each key's type, check and meaning, the YAML its value.

    >>> cfg = load_config("demo-pretrain", PretrainConfig, ["train.epochs=3"])
"""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
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
    "interpolate",
    "to_dict",
    "parse_overrides",
    "apply_overrides",
    "read_config_file",
    "Overrides",
    "as_overrides",
    "shipped_configs",
    "shipped_defaults",
    "resolve_config_path",
]

T = TypeVar("T")


class _OverridesField:
    """The validation of an :data:`Overrides` field: :func:`as_overrides`, named after the
    field (pydantic calls ``__get_pydantic_core_schema__`` on ``Annotated`` metadata)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema  # lazy: see _validator

        return core_schema.with_info_plain_validator_function(
            lambda value, info: as_overrides(value, info.field_name or "overrides"))


#: The type of a config field holding overrides of another config: a mapping of its keys,
#: dotted (``{"train.epochs": 1}``), nested (``{"train": {"epochs": 1}}``) or both, stored
#: flat (dotted key -> value) and applied with :func:`apply_overrides`. A list of
#: ``key=value`` strings is refused with a message that shows the mapping to write.
Overrides = Annotated[dict[str, Any], _OverridesField()]


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


def shipped_defaults(cls: type[T]) -> type[T]:
    """Give a config class its defaults from the YAML file shipped beside its module.

    Applied under ``@dataclass``: the defaults of the classes in ``pkg/mod.py`` are the
    mapping under the class's name in ``pkg/mod.defaults.yaml``; the class keeps the types,
    checks and the meaning of each key, the YAML file their values. A key of the YAML
    missing from the class, or given a value in both places, is a :class:`ConfigError` at
    import. A list becomes a tuple where the field is a tuple; a list or mapping is copied
    for each instance. Fields left out of the YAML stay required, and nested config
    sections keep ``field(default_factory=Section)`` (their defaults are their own
    class's)."""
    path, table = _defaults_file(cls.__module__)
    values = table.get(cls.__name__, {})
    if not isinstance(values, Mapping):
        raise ConfigError(f"{path}: {cls.__name__}: expected a mapping of its defaults")
    annotations = cls.__dict__.get("__annotations__", {})
    for name, value in values.items():
        if name not in annotations:
            raise ConfigError(f"{path}: {cls.__name__}.{name}: no such field "
                              f"(fields: {', '.join(annotations)})", key=name)
        if name in cls.__dict__:
            raise ConfigError(f"{path}: {cls.__name__}.{name}: also given a default in code",
                              key=name)
        if isinstance(value, list) and str(annotations[name]).startswith("tuple"):
            value = tuple(value)
        if isinstance(value, (list, dict)):
            value = dataclasses.field(default_factory=functools.partial(_deep_copy, value))
        setattr(cls, name, value)
    return cls


def _defaults_file(module: str) -> tuple[str, dict[str, Any]]:
    """``(path, {class name: {field: default}})`` of ``module``'s ``.defaults.yaml``."""
    source = Path(sys.modules[module].__file__)  # the module being imported
    path = source.with_name(f"{source.stem}.defaults.yaml")
    if not path.is_file():
        raise ConfigError(f"{path}: the defaults of {module}'s configs are missing")
    return str(path), _read_defaults(str(path))


@functools.cache  # once per file, not per class
def _read_defaults(path: str) -> dict[str, Any]:
    return read_config_file(Path(path))


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
            f"the keys to set: {key}: {shown}{tail}", key=key)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a mapping of config keys to values, got {value!r}",
                          key=key)
    flat: dict[str, Any] = {}

    def walk(node: Mapping, path: str) -> None:
        for k, v in node.items():
            if not isinstance(k, str) or not k:
                raise ConfigError(f"{key}: keys must be config keys (text), got {k!r}", key=key)
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


def read_config_file(path: Path) -> dict[str, Any]:
    """A config file's top-level mapping (empty file: {}); ConfigError names the file
    when it is not YAML or not a mapping."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys")
    return raw


def load_config(
    name_or_path: str | Path,
    cls: type[T],
    overrides: Sequence[str] | Mapping[str, Any] = (),
) -> T:
    """Load a YAML config into ``cls`` after applying ``key=value`` overrides and resolving
    ``${...}`` references."""
    path = resolve_config_path(name_or_path)
    raw = read_config_file(path)
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides)
    try:
        return build(cls, interpolate(apply_overrides(raw, overrides)))
    except ConfigError as exc:
        raise ConfigError(f"{path.name}: {exc}", key=exc.key) from None


#: ``${dotted.key}`` (group 1: the key), or the escape ``$${`` (no group).
_REFERENCE = re.compile(r"\$\$\{|\$\{([^${}]*)\}")


def interpolate(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` (nested dicts and lists) with its ``${dotted.key}`` references resolved.

    A string that is exactly one reference takes the referenced value (a number stays a
    number, a section stays a section); a reference inside longer text is replaced by the
    value's ``str``; ``$${`` is a literal ``${``. Keys are dotted from the root of ``raw``
    and may chain. A missing key or a cycle is a ConfigError naming the key that holds the
    reference (``finetune.lr: ${train.lr2}: no such key``).
    """

    def lookup(ref: str, holder: str, chain: tuple[str, ...]) -> Any:
        if any(key == ref or key.startswith((ref + ".", ref + "[")) for key in chain):
            raise ConfigError(f"{holder}: ${{{ref}}}: reference cycle "
                              f"({' -> '.join([*chain, ref])})", key=holder)
        node: Any = raw
        for part in ref.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise ConfigError(f"{holder}: ${{{ref}}}: no such key", key=holder)
            node = node[part]
        return resolve(node, ref, chain)

    def resolve(node: Any, key: str, chain: tuple[str, ...]) -> Any:
        if isinstance(node, Mapping):
            return {k: resolve(v, f"{key}.{k}" if key else str(k), chain) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v, f"{key}[{i}]", chain) for i, v in enumerate(node)]
        if not isinstance(node, str) or "${" not in node:
            return node
        whole = _REFERENCE.fullmatch(node)
        if whole and whole.group(1) is not None:
            return lookup(whole.group(1).strip(), key, (*chain, key))
        return _REFERENCE.sub(lambda m: "${" if m.group(1) is None else
                              str(lookup(m.group(1).strip(), key, (*chain, key))), node)

    return resolve(raw, "", ())


def build(cls: type[T], raw: Any, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping, validating every key and type.

    pydantic does the work (nested dataclasses, tuples, unions, ``Literal``), with the
    rules of :func:`_config_schema`; the dataclasses' ``__post_init__`` checks run as they
    do in Python. ``prefix``: the dotted path of ``raw`` in a larger config, for messages.
    """
    if isinstance(raw, cls):
        return raw
    from pydantic import ValidationError  # lazy: see _validator

    validator = _validator(cls)
    try:
        return validator.validate_python(raw)
    except ValidationError as exc:
        raise _config_error(exc, prefix) from None
    except TypeError as exc:  # pydantic passes a TypeError of a __post_init__ through
        raise ConfigError(f"{prefix or cls.__name__}: {exc}") from None


@functools.cache
def _validator(cls: type) -> Any:
    """pydantic's validator of dataclass ``cls``, built once per class.

    The adapter's core schema (pydantic's own description of ``cls``) is rewritten by
    :func:`_config_schema` before it is compiled: ``TypeAdapter(cls, config=...)`` is
    refused for dataclasses, and ``with_config`` would set ``__pydantic_config__`` on
    classes that ``models/`` owns and that must not know pydantic.
    """
    # lazy: importing pydantic (TypeAdapter, pydantic_core) costs ~90 ms of wall time and
    # the first validator ~40 ms more (measured: `from pydantic import TypeAdapter` 118 ms
    # vs. 29 ms for a bare python); `mixhic --help` (87 ms) and every `COMMAND --help`
    # import this module and would pay it, only building a config needs it.
    from pydantic import TypeAdapter
    from pydantic_core import SchemaValidator

    return SchemaValidator(_config_schema(TypeAdapter(cls).core_schema))


#: Keys of a core schema whose values are data, not schemas (a default may be a dict).
_DATA_KEYS = frozenset({"default", "metadata", "expected", "custom_error_context", "cls"})
#: The message of a scalar of the wrong type (pydantic's: "Input should be a valid ...").
_EXPECTED = {"bool": "expected true/false", "int": "expected an integer",
             "float": "expected a number", "str": "expected a string"}


def _config_schema(node: Any) -> Any:
    """A copy of a pydantic core schema with the rules our YAML configs keep.

    YAML gives bools, ints, floats and text; pydantic's lax mode would take ``yes``, ``1``
    or ``"true"`` for a bool and ``true`` or ``"3"`` for an int. Here a bool is only
    ``true``/``false``; an int is an int (``3.0`` becomes 3; ``true``, ``"3"``, ``3.5``
    are refused); a float takes ints and numeric text (PyYAML reads ``1e-4`` as text);
    text takes numbers (``name: 2024``); a Literal says "must be one of [...]"; a union
    member adds no tag to the error's key; a dataclass names its unknown key and its known
    ones. Tuples take lists (pydantic's lax default).
    """
    from pydantic_core import core_schema as cs  # lazy: see _validator

    if isinstance(node, (list, tuple)):
        return type(node)(_config_schema(x) for x in node)
    if not isinstance(node, dict):
        return node
    node = {k: v if k in _DATA_KEYS else _config_schema(v) for k, v in node.items()}
    kind, ref = node.get("type"), node.pop("ref", None)  # a ref moves to the outer wrapper
    if kind == "bool":
        node["strict"] = True
    elif kind == "str":
        node["coerce_numbers_to_str"] = True
    elif kind == "int":
        node = cs.no_info_before_validator_function(_int_input, {**node, "strict": True})
    elif kind == "float":
        node = cs.no_info_before_validator_function(_float_input, {**node, "strict": True})
    elif kind == "dataclass":
        node = cs.no_info_before_validator_function(_KnownKeys(node["cls"]), node)
    elif kind == "literal":
        node = cs.custom_error_schema(node, "choice", custom_error_message=(
            f"must be one of {list(node['expected'])}"))
    elif kind == "union":
        node["choices"] = [(c[0] if isinstance(c, tuple) else c, "") for c in node["choices"]]
    if kind in _EXPECTED:
        node = cs.custom_error_schema(node, "type", custom_error_message=_EXPECTED[kind])
    return {**node, "ref": ref} if ref else node


def _int_input(value: Any) -> Any:
    """``3.0`` (YAML ``3.0``, ``1.0e+6``) as the int it is; anything else as given."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _float_input(value: Any) -> Any:
    """Numeric text (YAML reads ``1e-4`` as text) as a float; anything else as given."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


class _KnownKeys:
    """Refuses a mapping with a key that is not an init field of ``cls``, naming it and the
    known ones (pydantic's own ``extra_forbidden`` error names neither the known keys nor,
    for a nested section, which dataclass was meant)."""

    def __init__(self, cls: type) -> None:
        self.known = sorted(f.name for f in dataclasses.fields(cls) if f.init)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            unknown = sorted((k for k in value if k not in self.known), key=str)
            if unknown:
                from pydantic_core import PydanticCustomError  # lazy: see _validator

                raise PydanticCustomError("unknown_key", "unknown key {key} (known: {known})",
                                          {"key": unknown[0], "known": ", ".join(self.known)})
        return value


def _config_error(exc: Any, prefix: str = "") -> ConfigError:
    """A pydantic ValidationError as one ConfigError, each problem starting with its dotted
    key (``inputs.tracks[0].path``; ``prefix`` leads) and the first one's key as ``.key``."""
    problems: list[tuple[str, str]] = []
    for err in exc.errors():
        loc = err["loc"]
        key = _dotted(loc, prefix)
        ctx = err.get("ctx") or {}
        cause = ctx.get("error")
        if err["type"] == "unknown_key":
            key = _dotted((*loc, ctx["key"]), prefix)
            problems.append((key, f"unknown key {key} (known: {ctx['known']})"))
        elif err["type"] == "missing":
            what = "item" if loc and isinstance(loc[-1], int) else "required key"
            problems.append((key, f"{key}: {what} is missing"))
        elif isinstance(cause, ConfigError) and cause.key:  # a check() of a __post_init__
            problems.append(_from_root(cause, loc, prefix))
        elif cause is not None:  # another ValueError of a __post_init__ or validator
            problems.append((key, f"{key or '<root>'}: {cause}"))
        else:
            problems.append((key, f"{key or '<root>'}: {err['msg']}, got {err['input']!r}"))
    return ConfigError("; ".join(text for _, text in problems), key=problems[0][0] or None)


def _dotted(loc: Sequence[Any], prefix: str = "") -> str:
    """``("inputs", "tracks", 0, "path")`` -> ``inputs.tracks[0].path`` (after ``prefix``);
    the empty union tags of :func:`_config_schema` are dropped."""
    key = prefix
    for part in loc:
        if isinstance(part, int):
            key = f"{key}[{part}]"
        elif part != "":
            key = f"{key}.{part}" if key else str(part)
    return key


def _from_root(cause: ConfigError, loc: Sequence[Any], prefix: str) -> tuple[str, str]:
    """The key and message of a :func:`check` failure raised at ``loc``, dotted from the
    root: a key already from the root stays; one relative to its section (``step_bp`` of
    a grid plan) gets the section's path (``datasets.hic.step_bp``). A field's own
    validator (an :data:`Overrides` field) raises at the field, naming it."""
    where, rel = _dotted(loc, prefix), cause.key
    if loc and loc[-1] == rel:
        where = _dotted(loc[:-1], prefix)
    if where and rel != where and not rel.startswith(where + "."):
        return f"{where}.{rel}", f"{where}.{cause}"
    return rel, str(cause)


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
