"""Config dataclass, presets and the derived geometry."""

import dataclasses
import json

import pytest
from mixhic.core.config import ConfigError
from mixhic.models import MixHicConfig, get_preset, preset_names
from mixhic.models.config import factor_pools


def test_presets_exist_and_validate():
    assert set(preset_names()) >= {"paper-128", "paper-256", "tiny"}
    assert get_preset("paper-128").embed_dim == 128
    assert get_preset("paper-256").embed_dim == 256
    for name in preset_names():
        get_preset(name)


def test_contract_call_and_asdict_round_trip():
    cfg = get_preset("tiny", window_bins=50, epi_bins=2500, n_tracks=2)
    d = dataclasses.asdict(cfg)
    assert MixHicConfig(**d) == cfg
    # JSON turns tuples into lists: still equal after the round trip
    assert MixHicConfig(**json.loads(json.dumps(d))) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.embed_dim = 3


def test_paper_geometry():
    cfg = get_preset("paper-128")
    assert cfg.epi_pools == (2, 5, 5)
    assert cfg.hic_grid_sizes == (25, 12, 6, 3)
    assert cfg.epi_token_counts == (100, 50, 25, 12)
    assert (cfg.hic_tokens, cfg.epi_tokens) == (9, 12)
    assert cfg.stage_dims == (128, 256, 512, 1024)
    assert (cfg.model_dim, cfg.proj_dim) == (1024, 512)


@pytest.mark.parametrize("factor,pools", [(1, ()), (2, (2,)), (50, (2, 5, 5)), (12, (2, 2, 3)),
                                          (7, (7,))])
def test_factor_pools(factor, pools):
    assert factor_pools(factor) == pools


@pytest.mark.parametrize("changes,field", [
    ({"epi_bins": 2501}, "epi_bins"),
    ({"window_bins": 51, "epi_bins": 2550}, "window_bins"),
    ({"n_heads": 3}, "n_heads"),
    ({"window_bins": 4, "epi_bins": 40}, "window_bins"),
    ({"temperature_init": 0.9}, "temperature_init"),
    ({"dropout": 1.0}, "dropout"),
    ({"hic_depths": (2, 2, 2)}, "epi_depths"),
    ({"embed_dim": 0}, "embed_dim"),
    ({"n_tracks": 1.5}, "n_tracks"),
])
def test_bad_values_name_the_field(changes, field):
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        get_preset("tiny", **changes)


def test_unknown_preset_and_field():
    with pytest.raises(ValueError, match="unknown model preset 'huge'"):
        get_preset("huge")
    with pytest.raises(ValueError, match="no field.*embed_dims"):
        get_preset("tiny", embed_dims=4)
