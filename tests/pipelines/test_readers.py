"""The readers as one import (``mixhic.pipelines.readers``), and the missing-file
errors every reader shares."""

import pytest
from mixhic.core.errors import MixHicError
from mixhic.pipelines import bed_reader, bigwig_reader, hic_reader, paths, readers


def test_missing_file(tmp_path):
    with pytest.raises(MixHicError, match="not found"):
        hic_reader.inspect_hic(str(tmp_path / "nope.mcool"), 5000)
    with pytest.raises(MixHicError, match="not found"):
        bigwig_reader.open_bigwig(str(tmp_path / "nope.bw"))
    with pytest.raises(MixHicError, match="local file"):
        paths.local_path("s3://bucket/x.cool")


def test_readers_module_re_exports_every_reader():
    """``readers`` is the one import path of the per-format modules: same objects."""
    modules = (paths, hic_reader, bigwig_reader, bed_reader)
    for name in readers.__all__:
        owner = [m for m in modules if name in m.__all__]
        assert len(owner) == 1, name
        assert getattr(readers, name) is getattr(owner[0], name)
    assert sorted(readers.__all__) == sorted(n for m in modules for n in m.__all__)
