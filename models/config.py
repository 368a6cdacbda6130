"""MIX-HIC model hyperparameters: one frozen dataclass, validated on construction.

Input geometry comes from the config, never from constants:

- ``window_bins`` (W): Hi-C bins per window axis (paper: 50 bins of 5 kb = 250 kb).
- ``epi_bins`` (L): epigenomic bins per anchor (paper: 2,500 bins of 100 bp). The model
  input is ``epi`` of shape (B, n_tracks, 2L): x-anchor bins then y-anchor bins.
- The epigenomic stem max-pools each anchor from L bins to W tokens (one token per Hi-C
  bin), so ``epi_bins`` must be a multiple of ``window_bins``; the pooling factor L / W is
  split into its prime factors (2500 / 50 = 50 -> pools 2, 5, 5).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mixhic.core.config import check, shipped_defaults

__all__ = ["MixHicConfig", "HIC_INPUTS", "factor_pools", "conv_down_len"]

#: Hi-C encoder inputs: the map alone (the published model) or the map plus its
#: distance-normalised contrast (``HicEncoder``).
HIC_INPUTS = ("raw", "raw+oe")


def factor_pools(factor: int) -> tuple[int, ...]:
    """Split a pooling factor into ascending prime factors: 50 -> (2, 5, 5); 1 -> ()."""
    if factor < 1:
        raise ValueError(f"pooling factor must be >= 1, got {factor}")
    out: list[int] = []
    p, n = 2, factor
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return tuple(out)


def conv_down_len(n: int) -> int:
    """Length after a Conv(k=4, s=2, p=1) downsampling: floor((n + 2 - 4) / 2) + 1."""
    return (n - 2) // 2 + 1


@dataclass(frozen=True)
@shipped_defaults
class MixHicConfig:
    """Hyperparameters of the MIX-HIC pretraining and fine-tuning models.

    Stage widths are ``embed_dim * 2**i`` for ``i < n_stages`` (paper: E, 2E, 4E, 8E); the
    interaction, mapping and fusion blocks work at the last width (8E), and the shared /
    specific projections at half of it (4E).

    Positional information: by default both encoders add a learned absolute positional
    embedding to their first-stage tokens (``hic_pos_embed`` / ``epi_pos_embed``). The
    published model has none in the Hi-C encoder beyond the depthwise 3x3 convolution of
    its LeFF MLP (reference note 5); set ``hic_pos_embed=False`` to reproduce that.
    We add positions because a Hi-C window's content depends strongly on the absolute
    offset from the diagonal, which zero-padded convolutions only recover near borders.
    """

    # Input geometry
    window_bins: int
    epi_bins: int
    n_tracks: int
    # Widths and depths
    embed_dim: int
    patch_size: int
    hic_depths: tuple[int, ...]
    epi_depths: tuple[int, ...]
    n_heads: int
    mlp_ratio: float
    epi_stem_convs: int
    fusion_layers: int
    loop_hidden: int
    # Regularisation
    dropout: float
    head_dropout: float
    # Positions (see class docstring)
    hic_pos_embed: bool
    epi_pos_embed: bool
    # Hi-C encoder input (see HicEncoder): "raw+oe" adds an observed-over-expected channel
    hic_input: str
    # Contrastive temperature: learnable, kept inside [min, max]
    temperature_init: float
    temperature_min: float
    temperature_max: float

    def __post_init__(self) -> None:
        # JSON/YAML give lists: store tuples so asdict round-trips compare equal.
        for name in ("hic_depths", "epi_depths"):
            val = getattr(self, name)
            if isinstance(val, list):
                object.__setattr__(self, name, tuple(val))
        self._validate()

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        def ok(cond: bool, field: str, msg: str) -> None:
            check(cond, field, f"{msg} (got {getattr(self, field)!r})")

        for name in ("window_bins", "epi_bins", "n_tracks", "embed_dim", "patch_size",
                     "n_heads", "epi_stem_convs", "loop_hidden", "fusion_layers"):
            val = getattr(self, name)
            ok(isinstance(val, int) and not isinstance(val, bool) and val >= 1, name,
               "must be a positive integer")
        for name in ("hic_depths", "epi_depths"):
            val = getattr(self, name)
            ok(isinstance(val, tuple) and bool(val)
               and all(isinstance(d, int) and d >= 1 for d in val), name,
               "must be a non-empty tuple of positive integers")
        ok(len(self.hic_depths) == len(self.epi_depths), "epi_depths",
           f"must have as many stages as hic_depths ({len(self.hic_depths)})")
        ok(self.mlp_ratio > 0, "mlp_ratio", "must be > 0")
        for name in ("dropout", "head_dropout"):
            ok(0.0 <= getattr(self, name) < 1.0, name, "must be in [0, 1)")
        for name in ("hic_pos_embed", "epi_pos_embed"):
            ok(isinstance(getattr(self, name), bool), name, "must be true or false")
        ok(self.hic_input in HIC_INPUTS, "hic_input", f"must be one of {', '.join(HIC_INPUTS)}")
        ok(self.epi_bins % self.window_bins == 0, "epi_bins",
           f"must be a multiple of window_bins ({self.window_bins}) so that each Hi-C bin "
           "gets one epigenomic token")
        ok(self.window_bins % self.patch_size == 0, "window_bins",
           f"must be a multiple of patch_size ({self.patch_size})")
        ok(0 < self.temperature_min < self.temperature_max, "temperature_min",
           f"must satisfy 0 < min < temperature_max ({self.temperature_max})")
        ok(self.temperature_min < self.temperature_init < self.temperature_max,
           "temperature_init", "must lie strictly inside [temperature_min, temperature_max]")
        ok(all(d % self.n_heads == 0 for d in self.stage_dims), "n_heads",
           f"must divide every stage width {self.stage_dims}")
        ok(self.hic_grid_sizes[-1] >= 1, "window_bins",
           f"too small for {self.n_stages} stages (Hi-C grid sizes {self.hic_grid_sizes})")
        ok(self.epi_token_counts[-1] >= 1, "window_bins",
           f"too small for {self.n_stages} stages (epi token counts {self.epi_token_counts})")

    # ------------------------------------------------------------------ derived sizes
    @property
    def n_stages(self) -> int:
        return len(self.hic_depths)

    @property
    def stage_dims(self) -> tuple[int, ...]:
        """Widths per stage: (E, 2E, 4E, 8E) for four stages."""
        return tuple(self.embed_dim * 2**i for i in range(self.n_stages))

    @property
    def model_dim(self) -> int:
        """Width of the encoders' outputs and of interaction/mapping/fusion (8E)."""
        return self.stage_dims[-1]

    @property
    def proj_dim(self) -> int:
        """Width of each shared / specific projection (4E); concat gives model_dim."""
        return self.model_dim // 2

    @property
    def epi_pools(self) -> tuple[int, ...]:
        """Max-pool sizes of the epigenomic stem: L / W split in primes (50 -> 2, 5, 5)."""
        return factor_pools(self.epi_bins // self.window_bins)

    @property
    def hic_grid_sizes(self) -> tuple[int, ...]:
        """Side of the Hi-C token grid per stage: W=50, p=2 -> (25, 12, 6, 3)."""
        sizes = [self.window_bins // self.patch_size]
        for _ in range(self.n_stages - 1):
            sizes.append(conv_down_len(sizes[-1]))
        return tuple(sizes)

    @property
    def epi_token_counts(self) -> tuple[int, ...]:
        """Epigenomic tokens per stage: 2W=100 -> (100, 50, 25, 12)."""
        counts = [2 * self.window_bins]
        for _ in range(self.n_stages - 1):
            counts.append(conv_down_len(counts[-1]))
        return tuple(counts)

    @property
    def hic_tokens(self) -> int:
        """Hi-C tokens out of the encoder (9 at the paper geometry)."""
        return self.hic_grid_sizes[-1] ** 2

    @property
    def epi_tokens(self) -> int:
        """Epigenomic tokens out of the encoder (12 at the paper geometry)."""
        return self.epi_token_counts[-1]

    def replace(self, **changes) -> MixHicConfig:
        """A copy with some fields changed; unknown names raise ValueError naming them."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"MixHicConfig has no field(s) {unknown}; fields: {sorted(names)}")
        return dataclasses.replace(self, **changes)
