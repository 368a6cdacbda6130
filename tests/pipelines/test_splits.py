"""Region splits: parsing and window assignment (pure numpy), then plans on a real Hi-C file.

The real-file tests use GM12878 chr1:160-180 Mb at 10 kb (rebased to bins from 0 and
balanced once per session by ``tests/benchmarks/real_case.py``) and run the chunks
without Ray; they skip when ``../shared/data/real`` is absent.
"""

from __future__ import annotations

import numpy as np
import pytest
from mixhic.core.errors import MixHicError
from mixhic.pipelines import windows as wn
from mixhic.pipelines.extract import open_handles, process_chunk
from mixhic.pipelines.prepare import build_tasks

RES, W = 10_000, 50


# ------------------------------------------------------------------------ pure functions


def test_parse_region_forms():
    assert wn.parse_region("chr10") == ("chrom", "chr10", None, None)
    assert wn.parse_region("chr1:1,000,000-2,500,000") == ("region", "chr1", 1_000_000, 2_500_000)
    assert wn.parse_region(" 2:5_000-7000 ") == ("region", "2", 5000, 7000)
    assert wn.parse_region("val.bed") == ("bed", "val.bed", None, None)
    assert wn.parse_region("regions/val.txt")[0] == "bed"
    assert wn.parse_region("chr1:5-3") == ("region", "chr1", 5, 3)  # checked by prepare


def test_merge_regions_joins_overlapping_and_touching():
    got = wn.merge_regions([50, 0, 10, 30, 80], [60, 10, 20, 40, 90])
    assert got.tolist() == [[0, 20], [30, 40], [50, 60], [80, 90]]
    assert wn.merge_regions([], []).shape == (0, 2)


def test_window_split_codes_equal_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(20):
        cuts = np.sort(rng.choice(np.arange(0, 10_000, 10), 8, replace=False))
        regions = np.c_[cuts[::2], cuts[1::2], rng.integers(1, 3, 4)]
        s = rng.integers(0, 9_000, 500)
        e = s + rng.integers(1, 2_000, 500)
        got = wn.window_split_codes(s, e, regions)
        for k in range(500):
            inside = [c for a, b, c in regions if a <= s[k] and e[k] <= b]
            touches = any(a < e[k] and s[k] < b for a, b, _ in regions)
            want = inside[0] if inside else (-1 if touches else 0)
            assert got[k] == want, (s[k], e[k], regions.tolist())


# ------------------------------------------------------------------------ real Hi-C file


@pytest.fixture(scope="module")
def real_inputs(real_data, tmp_path_factory):
    from benchmarks.real_case import cached_inputs

    return cached_inputs(tmp_path_factory.getbasetemp(), real_data)


def _config(inputs, tmp_path, **over):
    from benchmarks.real_case import real_case_config

    return real_case_config(inputs, tmp_path / "o", **over)


def _run_chunks(cfg):
    """Every chunk of the plan without Ray: ``{dataset: [table, ...]}`` and drops."""
    settings, tasks, meta = build_tasks(cfg)
    handles = open_handles(settings)
    tables, dropped = {}, {}
    for task in tasks:
        out, stats = process_chunk(settings, task, handles)
        for d, t in out.items():
            tables.setdefault(d, []).append(t)
        for d, reasons in stats["dropped"].items():
            dropped[d] = dropped.get(d, 0) + reasons.get("split_boundary", 0)
    return tables, dropped, meta


def test_region_splits_on_real_file(real_inputs, tmp_path):
    """Regions and a BED file: non-empty splits, no window crosses a boundary."""
    import pyarrow as pa

    bed = tmp_path / "test.bed"
    bed.write_text("chr1\t176000000\t178000000\nchr1\t177500000\t180000000\n")  # merged
    cfg = _config(real_inputs, tmp_path, **{
        "splits.val": ["chr1:171,000,000-175,000,000"], "splits.test": [str(bed)]})
    tables, dropped, meta = _run_chunks(cfg)
    assert meta["splits"]["val"] == ["chr1:171000000-175000000"]
    assert meta["splits"]["test"] == ["chr1:176000000-180000000"]
    regions = {"val": (171_000_000, 175_000_000), "test": (176_000_000, 180_000_000)}
    for d, parts in tables.items():
        t = pa.concat_tables(parts)
        split = np.asarray(t["split"].to_pylist())
        start = np.asarray(t["x_start"])
        end = np.asarray(t["y_start"]) + W * RES
        counts = {s: int((split == s).sum()) for s in ("train", "val", "test")}
        assert min(counts.values()) > 0, (d, counts)
        for s, (a, b) in regions.items():
            assert np.all((start[split == s] >= a) & (end[split == s] <= b)), (d, s)
        train = split == "train"
        for a, b in regions.values():  # train windows overlap no val/test region
            assert not np.any((start[train] < b) & (end[train] > a)), d
        # planned before the run: the same windows and the same boundary drops
        assert meta["splits"]["planned"][d]["crossing"] == dropped[d] or d == "loops"
    assert dropped["hic"] > 0 and dropped["loops"] > 0
    loops = pa.concat_tables(tables["loops"])
    lab, split = np.asarray(loops["loop"]), np.asarray(loops["split"].to_pylist())
    for s in ("train", "val", "test"):  # negative_ratio 1 within each split (less QC drops)
        pos, neg = (lab[split == s] == 1).sum(), (lab[split == s] == 0).sum()
        assert 0.8 * pos <= neg <= 1.2 * pos, (s, pos, neg)


def test_whole_chromosome_split_and_spelling(real_inputs, tmp_path):
    """`1` matches the file's `chr1`; a whole-chromosome test split takes every window."""
    cfg = _config(real_inputs, tmp_path, **{"splits.val": [], "splits.test": ["1"]})
    settings, tasks, meta = build_tasks(cfg)
    planned = meta["splits"]["planned"]["hic"]
    assert planned["test"] > 0 and planned["train"] == planned["val"] == planned["crossing"] == 0
    assert meta["chromosomes"]["chr1"]["split"] == "test"


@pytest.mark.parametrize("splits,pattern", [
    ({"splits.val": ["chr1:170,000,000-175,000,000"], "splits.test": ["chr1:174,000,000-178,000,000"]},
     r"^splits\.val\[0\] overlaps splits\.test\[0\] on chr1"),
    ({"splits.val": ["chr2:1-1000000"]},
     r"^splits\.val\[0\]: chromosome 'chr2' is not in the Hi-C file .*\(chromosomes: chr1\)"),
    ({"splits.test": ["2"]},
     r"^splits\.test\[0\]: chromosome '2' is not in .*spells names with 'chr' \(e\.g\. 'chr1'\)"),
    ({"splits.val": ["chr1:175000000-172000000"]},
     r"^splits\.val\[0\]: region chr1:175000000-172000000 is empty \(start >= end\)"),
    ({"splits.test": ["chr1:175,000,000-185,000,000"]},
     r"^splits\.test\[0\]: region chr1:175000000-185000000 ends past the end of chr1 \(length 180000000 bp\)"),
    ({"splits.val": ["chr1:172,000,000-172,400,000"]},
     r"^splits\.val: no hic window lies inside the val regions \(chr1:172000000-172400000\); "
     r"planned hic windows per split: train \d+, val 0, test \d+, crossing a split boundary \d+"),
    ({"splits.test": ["nowhere/test.bed"]}, r"splits\.test\[0\]: BED file not found"),
])
def test_split_misconfigurations_fail_in_one_line(real_inputs, tmp_path, splits, pattern):
    with pytest.raises(MixHicError, match=pattern) as err:
        build_tasks(_config(real_inputs, tmp_path, **splits))
    assert "\n" not in str(err.value)


def test_bed_region_errors_name_the_line(real_inputs, tmp_path):
    bed = tmp_path / "val.bed"
    bed.write_text("chr1\t171000000\t172000000\nchr1\t179000000\t181000000\n")
    with pytest.raises(MixHicError, match=r"splits\.val\[0\] \(.*val\.bed, region 2\): region "
                                          r"chr1:179000000-181000000 ends past the end"):
        build_tasks(_config(real_inputs, tmp_path, **{"splits.val": [str(bed)]}))


def test_whole_chromosomes_outside_a_selection_are_ignored(real_inputs, tmp_path, caplog):
    """`chromosomes: [chr1]` with a test split on chr3 (absent here): a warning, no split."""
    import logging

    cfg = _config(real_inputs, tmp_path, chromosomes=["chr1"],
                  **{"splits.val": ["chr1:172,000,000-175,500,000"], "splits.test": ["chr3"]})
    with caplog.at_level(logging.WARNING):
        _, _, meta = build_tasks(cfg)
    assert meta["splits"]["test"] == [] and meta["splits"]["planned"]["hic"]["val"] > 0
    assert any("splits.test[0]: chr3 is not among the selected chromosomes" in r.getMessage()
               for r in caplog.records)
    with pytest.raises(MixHicError, match=r"splits\.test\[0\]: chromosome 'chr3' is not in"):
        build_tasks(_config(real_inputs, tmp_path, **{"splits.test": ["chr3"]}))
