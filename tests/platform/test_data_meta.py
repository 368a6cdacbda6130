"""A model's ``data`` block carries the prepare transforms, so Serve cuts inputs the same way."""

from __future__ import annotations

import json
import os


def test_data_meta_carries_prepare_normalisation(tiny_data, tmp_path):
    from mixhic.platform.data import data_meta
    from mixhic.serve.regions import Normalisation

    # The same datasets with a manifest that says a non-default normalisation was used.
    for name in ("pretrain", "loops"):
        os.symlink(tiny_data / name, tmp_path / name)
    manifest = json.loads((tiny_data / "manifest.json").read_text())
    manifest["params"]["normalize"].update(
        {"hic": "log1p_fixed", "hic_cap": 99.0, "epi_missing": "ignore", "epi_fill": 0.5})
    manifest["params"]["inputs"]["hic"].update({"weight": "KR", "divisive": True})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))

    meta = data_meta(str(tmp_path), "loops")
    norm = Normalisation.from_data(meta)
    assert norm == Normalisation(weight="KR", hic_transform="log1p_fixed", hic_cap=99.0,
                                 epi_transform="log2p1", epi_missing="ignore", epi_fill=0.5,
                                 divisive=True, multiplier=None)
    # The shipped defaults round-trip too (the real manifest, not the edited one).
    default = Normalisation.from_data(data_meta(str(tiny_data), "loops"))
    assert (default.hic_cap, default.epi_missing, default.weight) == (255.0, "fill", "weight")
