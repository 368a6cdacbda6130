"""Chromosome name matching between files."""

import pytest
from mixhic.core.errors import MixHicError
from mixhic.pipelines.names import ChromosomeNameError, match_names, name_key, resolve_name


@pytest.mark.parametrize("a,b", [("chr1", "1"), ("CHR1", "chr1"), ("chrX", "x"), ("chrM", "MT"),
                                 ("chrMT", "M"), ("chrMito", "MT"), ("Chr2L", "2L")])
def test_same_key(a, b):
    assert name_key(a) == name_key(b)


@pytest.mark.parametrize("a,b", [("chr1", "chr10"), ("chr1", "11"), ("chrX", "chrY"), ("chr2L", "chr2R")])
def test_different_key(a, b):
    assert name_key(a) != name_key(b)


def test_match_both_directions():
    assert match_names(["chr1", "chr2", "chrM"], ["1", "MT", "10"]) == {"chr1": "1", "chrM": "MT"}
    assert match_names(["1", "10", "MT"], ["chr1", "chr10", "chrM"]) == {
        "1": "chr1", "10": "chr10", "MT": "chrM"}


def test_exact_name_wins_and_aliases_first():
    assert match_names(["chr1"], ["chr1", "1"]) == {"chr1": "chr1"}
    assert match_names(["chr1"], ["NC_000001", "1"], {"chr1": "NC_000001"}) == {"chr1": "NC_000001"}
    # an alias that is not in the file falls back to the rules
    assert match_names(["chr1"], ["1"], {"chr1": "absent"}) == {"chr1": "1"}


def test_ambiguous_is_not_matched_silently():
    assert match_names(["chr1"], ["1", "CHR1"]) == {}
    with pytest.raises(ChromosomeNameError, match="ambiguous"):
        resolve_name("chr1", ["1", "CHR1"], "t.bw")


def test_resolve_error_names_file_and_chrom():
    with pytest.raises(MixHicError) as err:
        resolve_name("chr22", ["1", "2"], "tracks/atac.bw")
    msg = str(err.value)
    assert "tracks/atac.bw" in msg and "chr22" in msg and "alias" in msg
    assert resolve_name("chr2", ["1", "2"], "x") == "2"
