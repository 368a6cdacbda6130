"""Named model presets: small builder functions returning a MixHicConfig.

- ``paper-128``: the paper's released size (E = 128; ~63 M pretraining parameters).
- ``paper-256``: the paper's larger size (E = 256).
- ``tiny``: tests and the demo; forward+backward of batch 8 at the paper geometry
  (W = 50, epi 2 x 5000) takes well under a second on one CPU core.
"""

from __future__ import annotations

from collections.abc import Callable

from .config import MixHicConfig

__all__ = ["get_preset", "preset_names", "PRESETS"]


def paper_128() -> MixHicConfig:
    return MixHicConfig(embed_dim=128)


def paper_256() -> MixHicConfig:
    return MixHicConfig(embed_dim=256)


def tiny() -> MixHicConfig:
    return MixHicConfig(
        embed_dim=16,
        hic_depths=(1, 1, 1, 1),
        epi_depths=(1, 1, 1, 1),
        n_heads=1,
        epi_stem_convs=3,
        fusion_layers=1,
        loop_hidden=16,
        head_dropout=0.1,
    )


PRESETS: dict[str, Callable[[], MixHicConfig]] = {
    "paper-128": paper_128,
    "paper-256": paper_256,
    "tiny": tiny,
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
