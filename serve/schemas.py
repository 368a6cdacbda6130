"""Request and response bodies of the HTTP API (pydantic; they make the OpenAPI schema).

A window request gives either the arrays or a genomic region, never both:

* arrays: ``epi`` (C, 2L) tracks of the x-anchor then the y-anchor, transformed as in
  the training data (``mixhic prepare``), and ``hic`` (W, W) when the model needs it;
* region: ``chrom``, ``start`` (bp, x-anchor start, a multiple of the resolution) and
  optionally ``start2`` (y-anchor start; default ``start``, a diagonal window). The
  server reads the window from its configured .mcool/bigWig files and normalises it
  exactly as ``mixhic prepare`` does.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "WindowRequest",
    "WindowEcho",
    "HicResponse",
    "LoopResponse",
    "CageResponse",
    "ModelCardOut",
    "ModelsResponse",
    "Health",
    "ErrorItem",
    "ErrorResponse",
]


class WindowRequest(BaseModel):
    """One window, as arrays or as a genomic region."""

    # No schema-level examples: array shapes and regions depend on the served model and
    # genome, so each route's examples are made from them (``/openapi.json``, see
    # :func:`mixhic.serve.api.request_examples`); a fixed example would be a 422.
    model_config = ConfigDict(extra="forbid")

    epi: list[list[float]] | None = Field(
        None, description="(C, 2L) epigenomic tracks: x-anchor bins then y-anchor bins"
    )
    hic: list[list[float]] | None = Field(
        None, description="(W, W) Hi-C window, normalised as in training (bimodal models)"
    )
    offset: int | None = Field(
        None, ge=0, description="with arrays: bins from the x-anchor's start to the "
        "y-anchor's (default 0, a diagonal window); the model reads each pixel's genomic "
        "distance from it"
    )
    chrom: str | None = Field(None, description="chromosome (chr1 and 1 both match)")
    start: int | None = Field(None, ge=0, description="bp, start of the x-anchor")
    start2: int | None = Field(
        None, ge=0, description="bp, start of the y-anchor (default: start, a diagonal window)"
    )

    @model_validator(mode="after")
    def _one_form(self) -> WindowRequest:
        region = self.chrom is not None or self.start is not None or self.start2 is not None
        if region and self.offset is not None:
            raise ValueError("offset: only with arrays (a region's offset comes from start2)")
        arrays = self.epi is not None or self.hic is not None
        if region and arrays:
            raise ValueError("give either epi/hic arrays or a region (chrom, start), not both")
        if not region and not arrays:
            raise ValueError("epi: required (or give a region: chrom, start)")
        if region and (self.chrom is None or self.start is None):
            raise ValueError("chrom and start: both required for a region request")
        if arrays and self.epi is None:
            raise ValueError("epi: required with hic")
        return self

    @property
    def is_region(self) -> bool:
        return self.chrom is not None


class WindowEcho(BaseModel):
    """Where the window came from (region requests only)."""

    chrom: str = Field(description="chromosome as named in the genome files")
    x_start: int = Field(description="bp, x-anchor start")
    y_start: int = Field(description="bp, y-anchor start")
    resolution: int = Field(description="bp per Hi-C bin")


class _Base(BaseModel):
    model: str = Field(description="name of the model that answered")
    window: WindowEcho | None = Field(None, description="the resolved region, if any")


class HicResponse(_Base):
    hic: list[list[float]] = Field(description="(W, W) predicted Hi-C window (training scale)")


class LoopResponse(_Base):
    probability: float = Field(ge=0, le=1, description="loop probability of the anchor pair")


class CageResponse(_Base):
    cage: list[float] = Field(description="(W,) predicted log2(1 + CAGE) per Hi-C bin")


class ModelCardOut(BaseModel):
    name: str
    version: str | None
    source: str
    task: str
    mode: str
    preset: str | None
    run_id: str | None = Field(description="MLflow run that trained the model")
    window_bins: int
    epi_bins: int
    n_tracks: int
    resolution: int
    epi_bin: int
    tracks: list[str]
    needs_hic: bool = Field(description="requests must carry a Hi-C window (or a region)")


class ModelsResponse(BaseModel):
    models: list[ModelCardOut]
    tasks: list[str]
    region_requests: bool = Field(description="genome files are configured for region requests")


class Health(BaseModel):
    status: str = "ok"


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    detail: list[ErrorItem] | str
