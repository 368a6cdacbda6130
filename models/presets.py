"""Named model presets, read from ``models/presets.yaml``: each is the
:class:`MixHicConfig` defaults with a few keys changed.

- ``paper-128``: the paper's released size (E = 128; ~63 M pretraining parameters).
- ``paper-256``: the paper's larger size (E = 256).
- ``tiny``: tests and the demo; forward+backward of batch 8 at the paper geometry
  (W = 50, epi 2 x 5000) takes well under a second on one CPU core.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from mixhic.core.config import read_config_file

from .config import MixHicConfig

__all__ = ["get_preset", "preset_names", "PRESETS", "PRESETS_FILE"]

PRESETS_FILE = Path(__file__).with_name("presets.yaml")


#: name -> a builder of the preset's MixHicConfig (its lists become tuples there)
PRESETS: dict[str, Callable[[], MixHicConfig]] = {
    name: functools.partial(MixHicConfig, **changes)
    for name, changes in read_config_file(PRESETS_FILE).items()
}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def get_preset(name: str, **overrides) -> MixHicConfig:
    """The preset ``name`` with field overrides, e.g. ``get_preset("tiny", window_bins=40)``.

    Raises ValueError naming an unknown preset or an unknown / invalid field.
    """
    try:
        build = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; choose one of {preset_names()}") from None
    return build().replace(**overrides) if overrides else build()
