"""Names that load on first use (PEP 562), for packages whose imports must stay cheap.

    __getattr__, __dir__ = lazy_exports(__name__, {"PretrainModel": ".pretrain", ...})

``mixhic.models`` (so the torch-free ``mixhic.models.tasks`` is cheap to import) and the
top-level ``mixhic`` (``import mixhic`` loads neither torch nor Ray) use it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``: ``exports`` maps a
    public name to the (relative) module defining it; the first access imports that
    module and caches the value in the package's namespace."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
