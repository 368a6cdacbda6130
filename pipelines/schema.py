"""The Arrow schema of every prepared dataset, defined once, and its validator.

One row per window. Tensor columns use Arrow's native ``arrow.fixed_shape_tensor``
extension type, so plain pyarrow (and Ray Data, and pandas via ``to_numpy_ndarray``)
reads them back with their shapes intact.

Columns (all datasets):
    sample      string   cell line / dataset id
    chrom       string   canonical chromosome name (the Hi-C file's spelling)
    x_start     int64    bp, start of the x-anchor (rows) of the window
    y_start     int64    bp, start of the y-anchor (columns); == x_start on the diagonal
    resolution  int32    bp per Hi-C bin
    split       string   train | val | test
    hic         tensor float32 [W, W]    log1p(balanced contacts) scaled; masked bins -> 0
    epi         tensor float32 [C, 2L]   C tracks; x-anchor bins then y-anchor bins
    nonzero_frac float32  fraction of non-zero pixels in ``hic``
    masked_bins int16    bins of the window masked by balancing (NaN weight)
Task columns:
    loop        int8     1 = positive anchor pair, 0 = negative (``loops``)
    neg_kind    string   ``positive``, or the negative's kind: ``distance``,
                         ``high_contact``, ``near_loop``, ``anchor_signal`` (``loops``;
                         see ``windows.sample_negative_mix``)
    cage        tensor float32 [W]  log2(1 + mean CAGE per bin) (``cage``)
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

__all__ = [
    "DATASETS",
    "NEG_KINDS",
    "SPLITS",
    "WindowShape",
    "dataset_schema",
    "validate_table",
    "SchemaError",
    "tensor_column",
]

DATASETS = ("pretrain", "hic", "loops", "cage")
SPLITS = ("train", "val", "test")
# values of the loops dataset's ``neg_kind`` column (``windows.NEGATIVE_KINDS`` + positive)
NEG_KINDS = ("positive", "distance", "high_contact", "near_loop", "anchor_signal")


class SchemaError(ValueError):
    """A table does not match the dataset's schema; the message names the column."""


@dataclass(frozen=True)
class WindowShape:
    """Geometry of one window: ``W`` Hi-C bins per axis, ``C`` tracks, ``L`` epi bins per anchor."""

    window_bins: int = 50
    n_tracks: int = 2
    epi_bins: int = 2500  # per anchor

    @property
    def hic_shape(self) -> tuple[int, int]:
        return (self.window_bins, self.window_bins)

    @property
    def epi_shape(self) -> tuple[int, int]:
        return (self.n_tracks, 2 * self.epi_bins)


def _tensor_type(shape: tuple[int, ...]) -> pa.DataType:
    return pa.fixed_shape_tensor(pa.float32(), list(shape))


def dataset_schema(dataset: str, shape: WindowShape) -> pa.Schema:
    """The Arrow schema of ``dataset`` (one of :data:`DATASETS`) for windows of ``shape``."""
    if dataset not in DATASETS:
        raise SchemaError(f"unknown dataset {dataset!r} (known: {', '.join(DATASETS)})")
    fields = [
        pa.field("sample", pa.string(), nullable=False),
        pa.field("chrom", pa.string(), nullable=False),
        pa.field("x_start", pa.int64(), nullable=False),
        pa.field("y_start", pa.int64(), nullable=False),
        pa.field("resolution", pa.int32(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("hic", _tensor_type(shape.hic_shape), nullable=False),
        pa.field("epi", _tensor_type(shape.epi_shape), nullable=False),
        pa.field("nonzero_frac", pa.float32(), nullable=False),
        pa.field("masked_bins", pa.int16(), nullable=False),
    ]
    if dataset == "loops":
        fields.append(pa.field("loop", pa.int8(), nullable=False))
        fields.append(pa.field("neg_kind", pa.string(), nullable=False))
    if dataset == "cage":
        fields.append(pa.field("cage", _tensor_type((shape.window_bins,)), nullable=False))
    return pa.schema(fields, metadata={"mixhic.dataset": dataset})


def tensor_column(array, shape: tuple[int, ...]) -> pa.ExtensionArray:
    """A numpy array ``(N, *shape)`` as an Arrow fixed-shape tensor column (zero-copy)."""
    import numpy as np

    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.shape[1:] != tuple(shape):
        raise SchemaError(f"tensor of shape {array.shape[1:]} where {tuple(shape)} expected")
    return pa.FixedShapeTensorArray.from_numpy_ndarray(array)


def validate_table(table: pa.Table, dataset: str, shape: WindowShape) -> None:
    """Raise :class:`SchemaError` naming the first column that does not match."""
    expected = dataset_schema(dataset, shape)
    for field in expected:
        if field.name not in table.column_names:
            raise SchemaError(f"{dataset}: column {field.name!r} is missing")
        got = table.schema.field(field.name).type
        if not got.equals(field.type):
            raise SchemaError(
                f"{dataset}: column {field.name!r} has type {got}, expected {field.type}"
            )
    extra = set(table.column_names) - set(expected.names)
    if extra:
        raise SchemaError(f"{dataset}: unexpected columns {sorted(extra)}")
    if table.num_rows:
        bad = set(table.column("split").unique().to_pylist()) - set(SPLITS)
        if bad:
            raise SchemaError(f"{dataset}: column 'split' has values {sorted(bad)}")
        if dataset == "loops":
            bad = set(table.column("neg_kind").unique().to_pylist()) - set(NEG_KINDS)
            if bad:
                raise SchemaError(f"{dataset}: column 'neg_kind' has values {sorted(bad)}")
