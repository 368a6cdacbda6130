"""`mixhic prepare` end to end on a simulated genome with a local Ray; bad inputs.

Integration tests (Ray) share one prepared output; the error tests stop before Ray.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from mixhic.core.config import load_config
from mixhic.core.errors import MixHicError
from mixhic.pipelines import bed_reader, bigwig_reader, hic_reader, normalize
from mixhic.pipelines.extract import open_handles, process_chunk, write_chunk
from mixhic.pipelines.manifest import read_manifest
from mixhic.pipelines.prepare import PrepareConfig, build_tasks, plan_job, prepare
from mixhic.pipelines.schema import DATASETS, WindowShape, validate_table

W, RES = 50, 5000
SHAPE = WindowShape(50, 2, 2500)


def demo_config(genome, out, *overrides) -> PrepareConfig:
    return load_config("prepare-demo", PrepareConfig,
                       [f"root={genome.mcool.parent}", f"out={out}", *overrides])


@pytest.fixture(scope="module")
def prepared(ray_local, sim_genome, tmp_path_factory):
    out = tmp_path_factory.mktemp("prep") / "data"
    cfg = demo_config(sim_genome, out)
    manifest = prepare(cfg)
    tables = {d: pq.read_table(out / d) for d in DATASETS}
    return cfg, manifest, out, tables


def _keys(table):
    return list(zip(table["chrom"].to_pylist(), table["x_start"].to_pylist(),
                    table["y_start"].to_pylist()))


def test_schema_shapes_splits(prepared):
    cfg, manifest, out, tables = prepared
    assert sorted(manifest.datasets) == sorted(DATASETS)
    assert (out / "manifest.json").is_file() and not (out / ".staging").exists()
    for d, t in tables.items():
        validate_table(t, d, SHAPE)  # plain pyarrow: tensor types and shapes intact
        assert t.schema.field("hic").type.shape == [W, W]
        assert t.schema.field("epi").type.shape == [2, 5000]
        hic = t["hic"].combine_chunks().to_numpy_ndarray()
        epi = t["epi"].combine_chunks().to_numpy_ndarray()
        assert hic.shape == (t.num_rows, W, W) and epi.shape == (t.num_rows, 2, 5000)
        assert 0 <= hic.min() and hic.max() <= 1 and np.isfinite(epi).all() and epi.min() >= 0
        assert t.num_rows > 20, d
        assert len(set(_keys(t))) == t.num_rows, f"{d}: duplicate windows"
        assert min(t["nonzero_frac"].to_pylist()) >= 0.1
        assert max(t["masked_bins"].to_pylist()) <= cfg.qc.max_masked_bins
        # splits by chromosome, counts match the manifest
        split_of = dict(zip(t["chrom"].to_pylist(), t["split"].to_pylist()))
        assert split_of == {"chr1": "train", "chr2": "val", "chr3": "test"}
        got = {s: t["split"].to_pylist().count(s) for s in ("train", "val", "test")}
        assert got == manifest.rows[d]
    # pretrain: the paper's grid, diagonal; hic has the configured off-diagonal windows
    pre = tables["pretrain"]
    assert pre["x_start"].to_pylist() == pre["y_start"].to_pylist()
    starts = {x for c, x, _ in _keys(pre) if c == "chr1"}
    assert {0, 60_000, 125_000, 185_000} <= starts
    d = np.asarray(tables["hic"]["y_start"]) - np.asarray(tables["hic"]["x_start"])
    assert set(d.tolist()) == {0, 125_000}
    assert tables["cage"]["cage"].type.shape == [W]
    m = read_manifest(str(out))
    assert m.fingerprint == manifest.fingerprint and m.code["package"]
    assert m.inputs["hic"]["digest"] and "fast" in m.inputs["hic"]["method"]
    assert m.params["datasets"]["pretrain"]["step_bp"] == 62_500
    assert set(m.coverage) == {"atac", "dnase"} and min(m.coverage.values()) > 0.9


def test_windows_equal_naive_per_window_reads(prepared, sim_genome):
    """Rows sliced from chunk bands == one cooler fetch + one bigWig read per window."""
    _, manifest, _, tables = prepared
    import pyBigWig

    info = hic_reader.HicInfo(**manifest.hic)
    clr = hic_reader.open_cooler(info.uri)
    bws = [pyBigWig.open(str(sim_genome.atac)), pyBigWig.open(str(sim_genome.dnase))]
    cage_bw = pyBigWig.open(str(sim_genome.cage))
    for d in ("hic", "loops", "cage"):
        t = tables[d]
        hic = t["hic"].combine_chunks().to_numpy_ndarray()
        epis = t["epi"].combine_chunks().to_numpy_ndarray()
        for r in np.linspace(0, t.num_rows - 1, 6).astype(int):
            chrom, x0, y0 = t["chrom"][r].as_py(), t["x_start"][r].as_py(), t["y_start"][r].as_py()
            mat = clr.matrix(balance="weight").fetch((chrom, x0, x0 + W * RES),
                                                     (chrom, y0, y0 + W * RES))
            want = normalize.hic_transform(mat[None] * info.multiplier)[0]
            got = hic[r]
            assert np.allclose(got, want, atol=1e-6), (d, r)
            epi = epis[r]
            for c, bw in enumerate(bws):
                for k, s in enumerate((x0, y0)):
                    v = np.nan_to_num(bw.values(chrom, s, s + W * RES, numpy=True))
                    want = np.log2(1 + v.reshape(-1, 100).mean(1))
                    assert np.allclose(epi[c, k * 2500:(k + 1) * 2500], want, atol=1e-5)
            if d == "cage":
                v = np.nan_to_num(cage_bw.values(chrom, x0, x0 + W * RES, numpy=True))
                want = np.log2(1 + v.reshape(W, RES).mean(1))
                assert np.allclose(t["cage"].combine_chunks().to_numpy_ndarray()[r], want, atol=1e-5)


def test_planted_loops_land_in_positive_windows(prepared, sim_genome):
    cfg, manifest, _, tables = prepared
    t = tables["loops"]
    label = np.asarray(t["loop"])
    keys = _keys(t)
    centres = {(c, x + (W // 2) * RES, y + (W // 2) * RES): int(lab)
               for (c, x, y), lab in zip(keys, label)}
    bp = bed_reader.read_bedpe(str(sim_genome.loops))
    sizes = manifest.hic["chromsizes"]
    expected = set()
    for c1, s1, e1, c2, s2, e2 in zip(*(bp[k] for k in ("chrom1", "start1", "end1", "chrom2", "start2", "end2"))):
        i, j = sorted([(s1 + e1) // 2 // RES, (s2 + e2) // 2 // RES])
        n = -(-sizes[c1] // RES)
        if i - W // 2 >= 0 and j - W // 2 + W <= n and 20_000 <= (j - i) * RES:
            expected.add((c1, i * RES, j * RES))
    assert len(expected) >= 10
    hic = t["hic"].combine_chunks().to_numpy_ndarray()
    qc_dropped = sum(v for k, v in manifest.dropped["loops"].items() if not k.startswith("plan_"))
    found = [centres.get(k) for k in expected]
    assert found.count(1) >= len(expected) - qc_dropped  # every planted loop is a positive
    assert found.count(0) == 0  # never labelled negative
    positives = {k for k, v in centres.items() if v == 1}
    assert positives <= expected  # and nothing else is a positive
    # negatives: ~1:1, non-zero contact at the centre, distance in range
    neg = label == 0
    assert 0.8 * label.sum() <= neg.sum() <= label.sum()
    assert np.all(hic[neg, W // 2, W // 2] > 0)
    d_all = np.asarray(t["y_start"]) - np.asarray(t["x_start"])
    dist = d_all[neg]
    assert dist.min() >= 20_000 and dist.max() <= 2_000_000
    # the distance-matched kinds (anchor_signal pairs are not distance-matched)
    kind = np.asarray(t["neg_kind"].to_pylist())
    matched = np.isin(kind, ["distance", "high_contact", "near_loop"])
    pos_d = d_all[~neg]
    jitter = (cfg.datasets.loops.jitter_bins + 5) * RES  # + the near-loop ring
    assert pos_d.min() - jitter <= d_all[matched].min()
    assert d_all[matched].max() <= pos_d.max() + jitter
    # ~16 negatives here: a loose median check (tested closely in test_windows/negatives)
    assert abs(np.median(d_all[matched]) - np.median(pos_d)) < 0.35 * np.median(pos_d)


def test_loops_neg_kind_column_and_manifest_counts(prepared):
    """prepare-demo's hard-negative mix: every kind present, counts in the manifest."""
    cfg, manifest, _, tables = prepared
    t = tables["loops"]
    kind = np.asarray(t["neg_kind"].to_pylist())
    label = np.asarray(t["loop"])
    split = np.asarray(t["split"].to_pylist())
    assert set(kind[label == 1]) == {"positive"}
    assert "positive" not in set(kind[label == 0])
    assert set(kind[label == 0]) == set(cfg.datasets.loops.negatives)  # all four kinds
    rows = manifest.negatives["rows"]
    for k in set(kind):
        assert rows[k] == {s: int(((kind == k) & (split == s)).sum()) for s in ("train", "val", "test")}
    assert sum(manifest.negatives["sampled"].values()) >= (label == 0).sum()
    assert manifest.negatives["mix"] == dict(cfg.datasets.loops.negatives)
    # near_loop negatives sit 3-5 bins (exclude_bins 2 < Chebyshev <= 5) from a positive
    xs, ys = np.asarray(t["x_start"]) // RES, np.asarray(t["y_start"]) // RES
    chrom = np.asarray(t["chrom"].to_pylist())
    for r in np.flatnonzero(kind == "near_loop"):
        same = (label == 1) & (chrom == chrom[r])
        cheb = np.maximum(np.abs(xs[same] - xs[r]), np.abs(ys[same] - ys[r])).min()
        assert 3 <= cheb <= 5


def test_rerun_is_a_noop_and_force_is_idempotent(prepared):
    cfg, manifest, out, tables = prepared
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    # scheduling options do not change the rows: still up to date
    again = prepare(dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, workers=1)))
    assert again.fingerprint == manifest.fingerprint
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before  # untouched
    forced = prepare(load_config("prepare-demo", PrepareConfig,
                                 [f"root={cfg.root}", f"out={out}", "run.force=true"]))
    assert forced.rows == manifest.rows
    for d in DATASETS:
        t = pq.read_table(out / d)
        assert sorted(_keys(t)) == sorted(_keys(tables[d]))
    assert not (out / ".staging").exists()


def test_resume_after_interruption_no_duplicates(prepared, sim_genome, tmp_path):
    """A crash leaves some chunks done, a temp file and no manifest: the rerun completes it."""
    _, manifest, _, tables = prepared
    out = tmp_path / "data"
    cfg = demo_config(sim_genome, f"file://{out}")
    job = plan_job(cfg)
    staging = out / ".staging"
    (staging / "_chunks").mkdir(parents=True)
    (staging / "_plan.json").write_text(json.dumps({"fingerprint": job.fingerprint}))
    handles = open_handles(job.settings)
    done = job.tasks[: len(job.tasks) // 2]
    for task in done:
        tables_, stats = process_chunk(job.settings, task, handles)
        write_chunk(str(staging), task, tables_, stats, "snappy")
    # a half-written part of a chunk that has no marker yet
    (staging / "pretrain").mkdir(exist_ok=True)
    (staging / "pretrain" / ".part-9999.parquet.tmp").write_bytes(b"PAR1 partial")
    result = prepare(cfg)
    assert result.rows == manifest.rows
    for d in DATASETS:
        t = pq.read_table(out / d)
        assert sorted(_keys(t)) == sorted(_keys(tables[d])), d
    assert not staging.exists() and (out / "manifest.json").exists()


# ---------------------------------------------------------------- bad input: one clear line


@pytest.mark.parametrize("overrides,pattern", [
    (["inputs.hic.uri=missing.mcool"], r"missing.mcool: Hi-C file not found"),
    (["inputs.tracks=[{name: atac, uri: nope.bw}]"], r"nope.bw: track 'atac' file not found"),
    (["chromosomes=[chr1, chr9]"], r"no chromosome matching 'chr9'"),
    (["inputs.hic.resolution=7000"], r"resolution 7000 bp is not in the file \(available: 5000, 10000"),
    (["inputs.hic.weight=KR"], r"no balancing weight column 'KR'.*cooler balance"),
])
def test_bad_inputs_fail_before_any_task(sim_genome, tmp_path, overrides, pattern):
    with pytest.raises(MixHicError, match=pattern):
        build_tasks(demo_config(sim_genome, tmp_path / "o", *overrides))


def test_region_past_chromosome_end(sim_genome, tmp_path):
    bedpe = tmp_path / "bad.bedpe"
    bedpe.write_text("chr1\t100000\t105000\tchr1\t9000000\t9005000\n")
    with pytest.raises(MixHicError, match=r"bad.bedpe: region chr1:.*past the end of chr1"):
        build_tasks(demo_config(sim_genome, tmp_path / "o", f"inputs.loops={bedpe}"))


def test_track_without_data_on_a_chromosome(sim_genome, tmp_path, make):
    sizes = bigwig_reader.track_chroms(str(sim_genome.atac))
    path = make.bigwig(tmp_path / "partial.bw", sizes, {"chr1": [(0, 1000, 1.0)]})
    over = [f"inputs.tracks=[{{name: atac, uri: {path}}}, {{name: dnase, uri: dnase.bw}}]"]
    with pytest.raises(MixHicError, match=r"partial.bw \(track 'atac'\): track has no data on chr2"):
        build_tasks(demo_config(sim_genome, tmp_path / "o", *over))
    # explicit opt-out: missing data becomes epi_fill
    settings, tasks, _ = build_tasks(
        demo_config(sim_genome, tmp_path / "o", *over, "normalize.require_track_data=false"))
    assert tasks


def test_track_names_are_matched(sim_genome, tmp_path, make):
    """A track spelled `1`, `2`, `3` pairs with Hi-C `chr1`..."""
    import pyBigWig

    src = pyBigWig.open(str(sim_genome.atac))
    sizes = {k[3:]: v for k, v in src.chroms().items()}
    ivs = {k[3:]: [(s, e, v) for s, e, v in src.intervals(k)[:50]] for k in src.chroms()}
    path = make.bigwig(tmp_path / "nochr.bw", sizes, ivs)
    settings, tasks, meta = build_tasks(demo_config(
        sim_genome, tmp_path / "o",
        f"inputs.tracks=[{{name: atac, uri: {path}}}, {{name: dnase, uri: dnase.bw}}]"))
    assert meta["chromosomes"]["chr2"]["tracks"] == ["2", "chr2"]


def test_cli_prints_one_line(sim_genome, tmp_path, caplog):
    from mixhic.platform.cli import main

    with caplog.at_level(logging.ERROR):
        rc = main(["prepare", "prepare-demo", f"root={tmp_path}", f"out={tmp_path / 'o'}"])
    assert rc == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "genome.mcool: Hi-C file not found" in errors[0]
    assert "\n" not in errors[0]


# ---------------------------------------------------------------- optional datasets


def test_optional_datasets_without_inputs_are_skipped(sim_genome, tmp_path, caplog):
    over = ["inputs.loops=absent.bedpe", "inputs.cage=null", "datasets.loops.optional=true",
            "datasets.cage.optional=true"]
    with caplog.at_level(logging.INFO, logger="mixhic.pipelines.prepare_plan"):
        settings, tasks, meta = build_tasks(demo_config(sim_genome, tmp_path / "o", *over))
    assert meta["datasets"] == ["pretrain", "hic"]
    assert set(settings["datasets"]) == {"pretrain", "hic"}
    assert "absent.bedpe: not found" in meta["skipped"]["loops"]
    assert "inputs.cage (not set)" in meta["skipped"]["cage"]
    notes = [r.getMessage() for r in caplog.records if "skipped (optional" in r.getMessage()]
    assert len(notes) == 2 and all("\n" not in n for n in notes)
    assert not any(t["loops_i"] for t in tasks)


def test_required_missing_inputs_fail_in_one_line(sim_genome, tmp_path):
    over = ["inputs.loops=absent.bedpe", "inputs.tss=null", "datasets.cage.optional=false"]
    with pytest.raises(MixHicError) as err:
        build_tasks(demo_config(sim_genome, tmp_path / "o", *over))
    msg = str(err.value)
    assert "\n" not in msg
    assert re.search(r"^missing inputs: datasets\.loops needs inputs\.loops \(.*absent\.bedpe: "
                     r"not found\); datasets\.cage needs inputs\.tss \(not set\)", msg), msg
    for d in ("loops", "cage"):
        assert f"datasets.{d}.enabled=false or datasets.{d}.optional=true" in msg
    # present inputs: optional changes nothing
    _, _, meta = build_tasks(demo_config(sim_genome, tmp_path / "o", "datasets.loops.optional=true"))
    assert meta["datasets"] == list(DATASETS) and meta["skipped"] == {}
    # everything optional and absent: nothing left to do is an error too
    with pytest.raises(MixHicError, match=r"every enabled dataset was skipped"):
        build_tasks(demo_config(sim_genome, tmp_path / "o", "datasets.pretrain.enabled=false",
                                "datasets.hic.enabled=false", *over[:2],
                                "datasets.loops.optional=true", "datasets.cage.optional=true"))


def test_bedpe_on_an_unknown_chromosome_is_refused(sim_genome, tmp_path):
    bedpe = tmp_path / "other.bedpe"
    bedpe.write_text("chr1\t100000\t105000\tchr1\t300000\t305000\n"
                     "chrZ\t100000\t105000\tchrZ\t300000\t305000\n")
    with pytest.raises(MixHicError, match=r"other.bedpe: chromosome\(s\) \['chrZ'\] are not in "
                                          r"the Hi-C file.*aliases"):
        build_tasks(demo_config(sim_genome, tmp_path / "o", f"inputs.loops={bedpe}"))


@pytest.mark.parametrize("where", ["file", "under_file", "proc"])
def test_unwritable_out_is_one_line_before_ray(sim_genome, tmp_path, where):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    out = {"file": blocker, "under_file": blocker / "sub", "proc": "/proc/mixhic-x"}[where]
    with pytest.raises(MixHicError, match=r"^out .*(not a directory|cannot write there)"):
        prepare(demo_config(sim_genome, out))
