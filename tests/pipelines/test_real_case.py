"""The real loop case (GM12878 chr1:160-180 Mb, 10 kb) built with Ray Data end to end."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from mixhic.pipelines.schema import NEG_KINDS, WindowShape, validate_table

RES, W = 10_000, 50


@pytest.mark.integration
def test_real_case_builds_with_region_splits(ray_local, real_data, tmp_path_factory):
    from benchmarks.real_case import SPLITS, build_real_case, cached_inputs
    from mixhic.pipelines.windows import parse_region

    base = tmp_path_factory.getbasetemp()
    cached_inputs(base, real_data)  # the balanced cooler, shared with test_splits
    out = tmp_path_factory.mktemp("real-case")
    (out / "inputs").symlink_to(base / "real-case-inputs")
    case = build_real_case(out, real_data)
    m = case["manifest"]
    assert m.datasets == ["hic", "loops"]
    regions = {s: [parse_region(e)[2:] for e in v] for s, v in SPLITS.items()}
    for d in m.datasets:
        t = pq.read_table(f"{case['data_dir']}/{d}")
        validate_table(t, d, WindowShape(W, 1, W * RES // 200))
        split = np.asarray(t["split"].to_pylist())
        counts = {s: int((split == s).sum()) for s in ("train", "val", "test")}
        assert counts == m.rows[d] and min(counts.values()) > 0, (d, counts)
        start, end = np.asarray(t["x_start"]), np.asarray(t["y_start"]) + W * RES
        for s, spans in regions.items():
            inside = np.zeros(len(t), bool)
            for a, b in spans:
                inside |= (start >= a) & (end <= b)
            assert np.all(inside[split == s]), (d, s)
            assert not np.any(inside[split != s]), (d, s)
        assert m.splits["dropped_split_boundary"][d] > 0
    # the shipped map holds normalised values, not reads: no split-half ceiling
    from benchmarks.noise_ceiling import hic_noise_ceiling

    with pytest.raises(ValueError, match="not integers"):
        hic_noise_ceiling(case["data_dir"], case["cool"])
    loops = pq.read_table(f"{case['data_dir']}/loops")
    lab = np.asarray(loops["loop"])
    split = np.asarray(loops["split"].to_pylist())
    kind = np.asarray(loops["neg_kind"].to_pylist())
    for s in ("val", "test"):
        assert (lab[split == s] == 1).sum() >= 15, s  # enough real loops to evaluate
    assert set(kind) == set(NEG_KINDS)  # every hard-negative kind is there
    assert m.negatives["rows"]["positive"] == {s: int(((lab == 1) & (split == s)).sum())
                                               for s in ("train", "val", "test")}
