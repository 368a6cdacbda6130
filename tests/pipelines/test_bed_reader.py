"""The BED / bedpe readers on tiny hand-written files."""

import pytest
from mixhic.core.errors import MixHicError
from mixhic.pipelines import bed_reader


def test_bedpe_and_bed(tmp_path):
    p = tmp_path / "l.bedpe"
    p.write_text("#chrom1\tx1\tx2\tchrom2\ty1\ty2\nchr1\t10\t20\tchr1\t100\t200\tname\t3\n"
                 "track name=x\n\n1\t5\t6\t2\t7\t8\n")
    bp = bed_reader.read_bedpe(str(p))
    assert bp["chrom1"].tolist() == ["chr1", "1"] and bp["end2"].tolist() == [200, 8]
    p.write_text("chr1\t10\t20\tchr1\t100\n")
    with pytest.raises(MixHicError, match=r"l.bedpe:1: bedpe needs 6 columns"):
        bed_reader.read_bedpe(str(p))
    p.write_text("chr1\t10\t20\tchr1\t100\t200\nchr1\tx\t20\tchr1\t100\t200\n")
    with pytest.raises(MixHicError, match=r"l.bedpe:2: bedpe coordinates"):
        bed_reader.read_bedpe(str(p))
    b = tmp_path / "t.bed"
    b.write_text("chr1 5 6 g1 0 -\nchr2\t7\t8\n")
    bed = bed_reader.read_bed(str(b))
    assert bed["strand"].tolist() == ["-", "."] and bed["name"].tolist() == ["g1", ""]


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ("chr1\t-5\t100\tchr1\t500\t600", "start1 -5 is negative"),
        ("chr1\t300\t100\tchr1\t500\t600", "start1 300 > end1 100"),
        ("chr1\t100\t200\tchr1\t700\t600", "start2 700 > end2 600"),
    ],
)
def test_bad_bedpe_rows_name_line_and_field(tmp_path, row, match):
    from mixhic.core.errors import MixHicError
    from mixhic.pipelines.bed_reader import read_bedpe

    p = tmp_path / "loops.bedpe"
    p.write_text("chr1\t0\t100\tchr1\t500\t600\n" + row + "\n")
    with pytest.raises(MixHicError, match=rf"loops.bedpe:2: {match}"):
        read_bedpe(str(p))
    p.write_text("chr1\t0\t100\tchr1\t500\t600\n")
    assert read_bedpe(str(p))["start2"].tolist() == [500]


def test_bad_bed_rows_are_refused(tmp_path):
    from mixhic.core.errors import MixHicError
    from mixhic.pipelines.bed_reader import read_bed

    p = tmp_path / "tss.bed"
    p.write_text("chr1\t10\t5\tg1\t0\t+\n")
    with pytest.raises(MixHicError, match=r"tss.bed:1: start 10 > end 5"):
        read_bed(str(p))
