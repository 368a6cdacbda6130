"""The readers of the files users bring, in one import: cooler (.cool/.mcool), bigWig,
bedpe and BED.

Everything takes paths/URIs and returns numpy arrays; handles are opened by the caller
(a Ray worker) and never travel between processes. Every failure users can cause is a
:class:`~mixhic.core.errors.MixHicError` whose one-line message names the file and the
problem. Each format has a module of its own:

- :mod:`mixhic.pipelines.hic_reader`: cooler URIs, resolutions and balancing weights
  (:func:`inspect_hic`), contact bands (:func:`read_band`, :func:`read_band_pixels`);
- :mod:`mixhic.pipelines.bigwig_reader`: binned track signal (:func:`read_track_bins`);
- :mod:`mixhic.pipelines.bed_reader`: BED intervals and bedpe loops;
- :mod:`mixhic.pipelines.paths`: the local-file check they share (:func:`local_path`).
"""

from __future__ import annotations

from mixhic.pipelines.bed_reader import read_bed, read_bedpe
from mixhic.pipelines.bigwig_reader import (
    check_track_data,
    open_bigwig,
    open_track,
    read_track_bins,
    track_chroms,
)
from mixhic.pipelines.hic_reader import (
    HicInfo,
    HicPixels,
    check_region,
    inspect_hic,
    list_resolutions,
    open_cooler,
    parse_cooler_uri,
    read_band,
    read_band_pixels,
    read_bin_mask,
    resolve_cooler_uri,
)
from mixhic.pipelines.paths import local_path

__all__ = [
    "local_path",
    # Hi-C (hic_reader)
    "parse_cooler_uri", "list_resolutions", "resolve_cooler_uri", "HicInfo", "inspect_hic",
    "open_cooler", "read_band", "HicPixels", "read_band_pixels", "read_bin_mask", "check_region",
    # bigWig (bigwig_reader)
    "open_bigwig", "open_track", "track_chroms", "check_track_data", "read_track_bins",
    # BED / bedpe (bed_reader)
    "read_bedpe", "read_bed",
]
