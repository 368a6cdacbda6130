"""Run configs, the LR schedule, few-shot subsets and batch columns: unit tests, no Ray."""

from __future__ import annotations

import math

import numpy as np
import pytest
from mixhic.core.config import ConfigError, build, load_config
from mixhic.platform.data import fraction_mask
from mixhic.platform.train_config import (
    AblateConfig,
    DemoConfig,
    FinetuneConfig,
    PretrainConfig,
)
from mixhic.platform.train_loop import _split_pairing, batch_columns, lr_factor, overlapping_windows


def _ft(**kw):
    raw = {"task": "loops", "data": {"data_dir": "d"}}
    for key, value in kw.items():
        node = raw
        *head, last = key.split("__")
        for h in head:
            node = node.setdefault(h, {})
        node[last] = value
    return build(FinetuneConfig, raw)


def test_defaults_and_overrides():
    cfg = load_config("demo-pretrain", PretrainConfig,
                      ["train.epochs=7", "optim.lr=3e-4", "scaling.num_workers=1"])
    assert cfg.train.epochs == 7 and cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.scaling.cpus_per_worker == 0.5  # fractional: Ray Data keeps a CPU
    assert cfg.model.preset == "tiny"


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("task", "loop", "task"),
        ("mode", "bi", "mode"),
        ("data__batch_size", 0, "batch_size"),
        ("data__train_fraction", 0.0, "train_fraction"),
        ("data__train_fraction", 1.5, "train_fraction"),
        ("optim__lr", -1.0, "optim.lr"),
        ("optim__min_lr_ratio", 2.0, "min_lr_ratio"),
        ("early_stopping__patience", 0, "patience"),
        ("scaling__num_workers", 0, "num_workers"),
        ("scaling__cpus_per_worker", 0.0, "cpus_per_worker"),
        ("model__overrides", {"window_bins": 40}, "manifest"),
        ("model__overrides", {"embed_dimm": 8}, "model.overrides.embed_dimm"),
        ("model__overrides", {"hic_input": "oe"}, "model.overrides.hic_input"),
        ("run__run_name", "a/b", "run_name"),
        ("data__cache", "yes", "cache"),
        ("bogus", 1, "bogus"),
    ],
)
def test_bad_values_name_the_key(key, value, needle):
    with pytest.raises((ConfigError, ValueError)) as err:
        _ft(**{key: value})
    assert needle in str(err.value)


def test_unknown_key_in_yaml_names_file_and_key(tmp_path):
    path = tmp_path / "ft.yaml"
    path.write_text("task: loops\ndata: {data_dir: x, batchsize: 3}\n")
    with pytest.raises(ConfigError, match=r"ft\.yaml: .*data\.batchsize"):
        load_config(path, FinetuneConfig)


def test_demo_and_ablate_validation():
    with pytest.raises(ValueError, match="finetune_modes"):
        build(DemoConfig, {"finetune_modes": {"loops": "both"}})
    with pytest.raises(ValueError, match="pretrained"):
        build(AblateConfig, {"finetune_config": "demo-finetune"})
    with pytest.raises(ValueError, match="fractions"):
        build(AblateConfig, {"finetune_config": "x", "pretrained": "p", "fractions": [0.0]})


def test_lr_schedule_warmup_then_cosine():
    total, warm, floor = 100, 10, 0.1
    f = [lr_factor(s, total, warm, floor) for s in range(total + 5)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a <= b + 1e-12 for a, b in zip(f[:10], f[1:10]))  # rising warm-up
    assert all(a >= b - 1e-12 for a, b in zip(f[10:], f[11:]))  # decaying afterwards
    assert f[total] == pytest.approx(floor) and f[-1] == pytest.approx(floor)
    mid = lr_factor(warm + (total - warm) // 2, total, warm, floor)
    assert mid == pytest.approx(floor + (1 - floor) * 0.5, abs=1e-9)
    assert lr_factor(0, 10, 0, 1.0) == 1.0 and math.isclose(lr_factor(9, 10, 0, 1.0), 1.0)


def _keys(n, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "sample": np.array(["a", "b"])[rng.integers(0, 2, n)],
        "chrom": np.array(["chr1", "chr2", "chr3"])[rng.integers(0, 3, n)],
        "x_start": rng.integers(0, 10**8, n),
        "y_start": rng.integers(0, 10**8, n),
    }


def test_fraction_mask_is_a_function_of_the_row_key():
    keys = _keys(20000)
    m10, m50 = fraction_mask(keys, 0.1, seed=3), fraction_mask(keys, 0.5, seed=3)
    assert abs(m10.mean() - 0.1) < 0.01 and abs(m50.mean() - 0.5) < 0.015
    assert not (m10 & ~m50).any()  # nested subsets
    perm = np.random.default_rng(1).permutation(20000)
    shuffled = {k: v[perm] for k, v in keys.items()}
    np.testing.assert_array_equal(fraction_mask(shuffled, 0.1, seed=3), m10[perm])  # order-free
    halves = [fraction_mask({k: v[s] for k, v in keys.items()}, 0.1, seed=3)
              for s in (slice(0, 7000), slice(7000, None))]
    np.testing.assert_array_equal(np.concatenate(halves), m10)  # batching-free
    assert (fraction_mask(keys, 0.1, seed=4) != m10).any()  # the seed matters
    assert fraction_mask(keys, 1.0).all()
    with pytest.raises(ValueError, match="train_fraction"):
        fraction_mask(keys, 0.0)


def test_batch_columns_never_feed_the_target_as_input():
    assert batch_columns("pretrain", None, None) == ["hic", "epi"]
    pos = ["x_start", "y_start", "resolution"]  # the anchor offset the heads see
    assert batch_columns("finetune", "loops", "bimodal") == ["epi", "hic", "loop", *pos]
    assert batch_columns("finetune", "loops", "infer") == ["epi", "loop", *pos]
    assert batch_columns("finetune", "cage", "epi") == ["epi", "cage", *pos]
    assert batch_columns("finetune", "hic", "infer") == ["epi", "hic", *pos]  # hic = target only


def test_finetune_cli_takes_options_between_config_and_overrides():
    """``mixhic finetune demo-finetune --task hic --mode infer key=value`` (the documented
    form) parses; the bad key then fails config validation, naming it."""
    from mixhic.core.config import ConfigError
    from mixhic.platform.finetune import cli_main

    with pytest.raises(ConfigError, match="no_such_key"):
        cli_main(["demo-finetune", "--task", "hic", "--mode", "infer", "no_such_key=1"])


# --------------------------------------------------------------------------- overrides inside configs
def test_overrides_inside_configs_are_mappings():
    """Configs that set keys of another config hold a mapping (dotted or nested keys),
    stored flat and applied with apply_overrides; the old key=value lists are refused with
    the mapping to write."""
    from mixhic.core.config import ConfigError, build, load_config
    from mixhic.platform.train_config import AblateConfig, DemoConfig
    from mixhic.platform.tune_config import TuneConfig

    demo = load_config("demo", DemoConfig, {"pretrain_overrides.train.epochs": 1,
                                            "finetune_overrides": {"train": {"epochs": 2},
                                                                   "data.batch_size": 8}})
    assert demo.pretrain_overrides == {"train.epochs": 1}
    assert demo.finetune_overrides == {"train.epochs": 2, "data.batch_size": 8}
    abl = load_config("ablate-demo", AblateConfig)
    assert abl.finetune_overrides == {"data.data_dir": "runs/demo/data",
                                      "run.storage_path": "runs/ablate/ray"}
    tune = load_config("tune-demo", TuneConfig)
    assert tune.finetune_overrides["early_stopping.patience"] is None
    assert tune.trial_pretrain_overrides["train.epochs"] == 1

    with pytest.raises(ConfigError, match=r"pretrain_overrides: a list of key=value strings.*"
                                          r"pretrain_overrides: \{train.epochs: 1\}"):
        load_config("demo", DemoConfig, ["pretrain_overrides=[train.epochs=1]"])
    with pytest.raises(ConfigError, match=r"finetune_overrides: .*\{data.data_dir: d\}"):
        build(AblateConfig, {"finetune_config": "demo-finetune", "pretrained": "m",
                             "finetune_overrides": ["data.data_dir=d"]})
    with pytest.raises(ConfigError, match="trial_pretrain_overrides: a list"):
        load_config("tune-demo", TuneConfig, ["trial_pretrain_overrides=[train.epochs=1]"])
    with pytest.raises(ConfigError, match="pretrain_overrides: a list"):
        DemoConfig(pretrain_overrides=("train.epochs=1",))  # built in Python: same rule


def test_shipped_configs_hold_no_key_value_strings():
    """No shipped config carries `key=value` strings (overrides are mappings)."""
    import yaml
    from mixhic.core.config import resolve_config_path, shipped_configs

    def strings(v):
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            for x in v.values():
                yield from strings(x)
        elif isinstance(v, list):
            for x in v:
                yield from strings(x)

    for name in shipped_configs():
        raw = yaml.safe_load(resolve_config_path(name).read_text())
        bad = [s for s in strings(raw) if "=" in s]
        assert not bad, f"{name}: key=value strings {bad}"


def test_overlapping_windows_pairs_same_chromosome_squares_that_share_pixels():
    chrom = np.array(["chr1", "chr1", "chr1", "chr2", "chr1"])
    x = np.array([0, 62_500, 250_000, 0, 0])
    y = np.array([0, 62_500, 250_000, 0, 250_000])  # the last one sits off the diagonal
    got = overlapping_windows(chrom, x, y, 250_000)  # 50 bins of 5 kb
    want = np.zeros((5, 5), bool)
    want[0, 1] = want[1, 0] = True  # 62.5 kb apart: overlap (0 and 2, 250 kb: only touch)
    want[1, 2] = want[2, 1] = True  # 187.5 kb apart
    want[1, 4] = want[4, 1] = True  # x 62.5 kb apart, y 187.5 kb apart
    np.testing.assert_array_equal(got, want)
    # per-window spans: the smaller of the two decides
    got = overlapping_windows(chrom[:2], x[:2], y[:2], np.array([250_000, 50_000]))
    assert not got.any()


def test_val_pairing_runs_over_the_whole_split_without_overlapping_windows():
    import torch

    torch.manual_seed(0)
    v = torch.randn(12, 64)
    x = np.arange(12) * 100_000  # 250 kb windows every 100 kb: each overlaps two either side

    keys = {"chrom": np.array(["chr2"] * 12), "x_start": x, "y_start": x,
            "resolution": np.full(12, 5_000)}

    def batches(epi, hic):  # the split's vectors and keys; windows of 50 bins of 5 kb
        return {"epi": epi, "hic": hic, "keys": keys, "window_bins": 50}

    got = _split_pairing(**batches(v, v + 0.01 * torch.randn(12, 64)), standardize=True)
    assert got["val_pair_acc"] == 1.0
    # the ends have 9 competitors, the next 8, the rest 7 (12 windows less itself and the
    # overlapping ones): a batch-wise count would have given 1/7 and 1/5
    assert got["val_baseline_pair_acc"] == pytest.approx((2 / 10 + 2 / 9 + 8 / 8) / 12)
    # Hi-C vectors dominated by the next window's signal: each epi vector is nearest its
    # upstream neighbour's Hi-C vector, which overlaps it, so it is still a hit; counted
    # against every window it would be a miss
    from mixhic.models.losses import pairing_accuracy

    mixed = v + 2 * v.roll(-1, 0)
    near = _split_pairing(**batches(v, mixed), standardize=False)["val_pair_acc"]
    assert near > 0.8 and pairing_accuracy(v, mixed).item() < 0.2
    # a window three away (no overlap) is a miss either way
    far = _split_pairing(**batches(v, v.roll(3, 0)), standardize=False)["val_pair_acc"]
    assert far < 0.2
    # capped: 4 evenly spaced windows (0, 4, 7, 11), none overlapping: chance 1/4
    capped = _split_pairing(**batches(v, v), standardize=False, max_windows=4)
    assert capped == {"val_pair_acc": 1.0, "val_baseline_pair_acc": 0.25}
