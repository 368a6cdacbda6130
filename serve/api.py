"""The HTTP API (FastAPI), independent of Ray Serve: :func:`build_api` over a backend.

Routes (all JSON; schemas in :mod:`mixhic.serve.schemas`, listed in ``/openapi.json``):

    GET  /healthz        liveness
    GET  /v1/model       the served models: name, version, preset, task, mode, run id
    POST /v1/hic         predicted Hi-C window (W, W) from tracks (infer-mode model)
    POST /v1/loops       loop probability of a window's anchor pair (bimodal model)
    POST /v1/cage        predicted log2(1 + CAGE) per Hi-C bin (W,)
    GET  /view?region=chr1:0-2000000   HTML page: observed vs predicted map, loops,
                         input tracks, model and data identity (:mod:`mixhic.serve.viewer`)

Each POST takes arrays or a region as JSON (see :class:`~mixhic.serve.schemas.WindowRequest`),
or the arrays as a binary NumPy body (``Content-Type: application/x-npy``,
``application/x-npz`` or ``application/octet-stream``): a ``.npy`` holding ``epi``, or a
``.npz`` (``np.savez``) holding ``epi`` and, for models that need it, ``hic``; any float
or integer dtype (cast to float32), read with ``allow_pickle=False``. Parsing a binary
body costs ~0.1 ms against ~1.4 ms of JSON for a 2 x 5000 ``epi``.
Bad requests get a 4xx whose ``detail`` names the field (FastAPI's error layout:
``[{"loc": ["body", "epi"], "msg": ..., "type": ...}]``): 413 body too large, 422 bad
field (shape, non-finite values, values beyond :data:`MAX_ABS_INPUT`, unknown
chromosome, region off the chromosome, unreadable .npy/.npz), 404 no model for the task.
The backend (the Serve ingress, or anything with the same three methods) does the work;
it is never handed an unchecked array, and a non-finite model output is never sent as a
200 (JSON has no NaN: it would arrive as ``null``): it is a 422 naming the input.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ValidationError

from mixhic.serve.engine import ModelCard
from mixhic.serve.schemas import (
    CageResponse,
    ErrorResponse,
    Health,
    HicResponse,
    LoopResponse,
    ModelCardOut,
    ModelsResponse,
    WindowRequest,
)
from mixhic.serve.viewer import MAX_LOOP_WINDOWS, RegionError

__all__ = ["Backend", "RequestError", "build_api", "BodySizeLimit", "window_arrays",
           "check_range", "check_output", "read_numpy_body", "request_examples",
           "BINARY_TYPES", "MAX_ABS_INPUT"]

BINARY_TYPES = ("application/x-npy", "application/x-npz", "application/octet-stream")
_NPZ_FIELDS = ("epi", "hic", "offset")
#: Largest |value| accepted in ``epi``/``hic`` (serve config ``max_abs_input``). Model
#: inputs are transformed as in training (log2(1 + x) tracks ~0-40, Hi-C in [0, 1] or on
#: a log scale); the float32 forward overflows to inf/NaN past ~1e19-1e25 (squares in
#: the normalisation layers), so 1e6 rejects what cannot be a transformed signal, long
#: before the model's numeric range ends, and before the forward runs.
MAX_ABS_INPUT = 1e6

log = logging.getLogger(__name__)


class RequestError(Exception):
    """A client error: HTTP ``status`` and a message naming ``field`` (of the request
    part ``where``: ``body`` or ``query``)."""

    def __init__(self, field: str, msg: str, status: int = 422, where: str = "body") -> None:
        super().__init__(f"{field}: {msg}")
        self.field, self.msg, self.status, self.where = field, msg, status, where

    def response(self) -> JSONResponse:
        loc = [self.where, *self.field.split(".")] if self.field else [self.where]
        return JSONResponse(
            status_code=self.status,
            content={"detail": [{"loc": loc, "msg": f"{self.field}: {self.msg}",
                                 "type": "value_error"}]},
        )


class Backend(Protocol):
    """What the API needs from whoever holds the models and the genome files."""

    async def cards(self) -> dict[str, ModelCard]:
        """``{task: ModelCard}`` of the served models."""

    async def predict(self, task: str, epi: np.ndarray, hic: np.ndarray | None,
                      offset: float = 0.0) -> np.ndarray:
        """One checked window, ``offset`` bins from its x- to its y-anchor -> the task's
        output (hic (W, W) | loops () | cage (W,))."""

    async def region(self, card: ModelCard, chrom: str, start: int, start2: int | None):
        """``(epi (C, 2L), hic (W, W) | None, WindowEcho)`` read from the genome files;
        raises :class:`RequestError` for an unknown chromosome or a region off its end."""

    @property
    def region_requests(self) -> bool:
        """True when genome files are configured."""

    async def view(self, region: str, loop_windows: int) -> str:
        """The viewer page (HTML) of ``region`` (``chrom:start-end``), scoring at most
        ``loop_windows`` loop candidates; raises
        :class:`~mixhic.serve.viewer.RegionError` for a region it cannot show. Optional:
        a backend without it has no ``/view``."""


class BodySizeLimit:
    """ASGI middleware: 413 for bodies over ``max_bytes`` (Content-Length or streamed)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, int(max_bytes)

    async def _reject(self, scope, send, size: str) -> None:
        mb = self.max_bytes / 2**20
        err = RequestError("body", f"request body of {size} exceeds the {mb:g} MiB limit "
                                   f"(serve config max_body_mb)", status=413)
        await err.response()(scope, None, send)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                if length > self.max_bytes:
                    return await self._reject(scope, send, f"{length} bytes")
                break
        # Chunked (or lying) bodies: buffer up to the limit, then replay.
        messages, total = [], 0
        while True:
            msg = await receive()
            messages.append(msg)
            if msg["type"] != "http.request":
                break
            total += len(msg.get("body", b""))
            if total > self.max_bytes:
                return await self._reject(scope, send, f"more than {total} bytes")
            if not msg.get("more_body", False):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def _array(values, field: str, shape: tuple[int, ...],
           max_abs: float = MAX_ABS_INPUT) -> np.ndarray:
    """A float32 array of exactly ``shape`` with finite values within +-``max_abs``,
    else RequestError(field). Checked before the cast, so 1e39 is "too large", not inf."""
    if isinstance(values, np.ndarray):
        if values.dtype.kind not in "fiu":
            raise RequestError(field, f"must hold numbers, got dtype {values.dtype}")
        arr = values
    else:
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            raise RequestError(field, f"must be a rectangular array of numbers of shape "
                                      f"{list(shape)} (rows of unequal length?)") from None
    if arr.shape != shape:
        raise RequestError(field, f"expected shape {list(shape)}, got {list(arr.shape)}")
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise RequestError(field, f"{bad} values are not finite (NaN or infinite)")
    check_range(arr, field, max_abs)
    return arr.astype(np.float32, copy=False)


def check_range(arr: np.ndarray, field: str, max_abs: float = MAX_ABS_INPUT) -> None:
    """RequestError (422) if any |value| of ``arr`` exceeds ``max_abs``: such inputs
    overflow the model's float32 forward (NaN/inf outputs) or are not transformed data."""
    if arr.size == 0:
        return
    big = int(np.count_nonzero(np.abs(arr, dtype=np.float64) > max_abs))
    if big:
        raise RequestError(
            field, f"{big} values exceed {max_abs:g} in absolute value (largest "
                   f"{float(np.max(np.abs(arr, dtype=np.float64))):.3g}): outside the model's "
                   f"numeric range; send inputs transformed as in training (mixhic prepare: "
                   f"log2(1 + x) tracks, scaled Hi-C)")


def check_output(task: str, out: np.ndarray) -> np.ndarray:
    """The model output, or RequestError (422) if any value is NaN or infinite (JSON
    would carry it as ``null`` in a 200; the input drove the model out of range)."""
    out = np.asarray(out)
    bad = int(out.size - np.count_nonzero(np.isfinite(out)))
    if bad:
        log.warning("%s model returned %d non-finite values for a request", task, bad)
        raise RequestError("epi", f"the {task} model's output has {bad} non-finite values "
                                  f"(NaN or infinite) for this input: the input is outside "
                                  f"the range the model was trained on")
    return out


def window_arrays(req: WindowRequest, card: ModelCard,
                  max_abs: float = MAX_ABS_INPUT) -> tuple[np.ndarray, np.ndarray | None]:
    """The checked ``epi`` (C, 2L) and ``hic`` (W, W) (or None) of an array request."""
    epi = _array(req.epi, "epi", card.epi_shape, max_abs)
    hic = None
    if card.needs_hic:
        if req.hic is None:
            raise RequestError("hic", f"required: the {card.task} model is {card.mode} "
                                      f"(needs the Hi-C window, or give a region)")
        hic = _array(req.hic, "hic", card.hic_shape, max_abs)
    return epi, hic


def request_offset(req: WindowRequest) -> float:
    """The ``offset`` of an array request in bins (0: a diagonal window); a finite,
    non-negative whole number, else a 422 naming the field."""
    value = getattr(req, "offset", None)
    if value is None:
        return 0.0
    try:
        v = float(np.asarray(value, dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise RequestError("offset", "must be one number (bins from the x-anchor to the "
                                     "y-anchor)") from None
    if not np.isfinite(v) or v < 0 or v != round(v):
        raise RequestError("offset", f"must be a whole number of bins >= 0, got {v:g}")
    return v


def read_numpy_body(body: bytes, max_bytes: int) -> dict[str, np.ndarray]:
    """``{"epi": (C, 2L)[, "hic": (W, W)]}`` of a ``.npy`` (epi) or ``.npz`` body.

    Nothing is unpickled; an ``.npz`` may hold only ``epi`` and ``hic``, and its members
    may not inflate past ``max_bytes`` in all (compressed archives included)."""
    import io
    import zipfile

    def load(data: bytes, field: str) -> np.ndarray:
        f = io.BytesIO(data)
        try:  # the header first: a claimed shape larger than the data is refused unread
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}[version]
            shape, _, dtype = read_header(f)
            if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > len(data):
                raise ValueError(f"header claims shape {list(shape)}, more than was sent")
            f.seek(0)
            return np.load(f, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - any unreadable array is the client's
            raise RequestError(field, f"not a readable .npy array ({exc})") from None

    if body.startswith(b"\x93NUMPY"):
        return {"epi": load(body, "epi")}
    if not body.startswith(b"PK"):
        raise RequestError("body", "a binary body must be a .npy (epi) or an .npz "
                                   "(epi[, hic]) written by numpy")
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
        members = archive.infolist()
    except Exception as exc:  # noqa: BLE001 - BadZipFile, ValueError, struct.error, ...
        raise RequestError("body", f"not a readable .npz archive ({exc})") from None
    names = [m.filename.removesuffix(".npy") for m in members]
    unknown = sorted(set(names) - set(_NPZ_FIELDS))
    if unknown:
        raise RequestError(unknown[0], f"unknown array in the .npz (known: "
                                       f"{', '.join(_NPZ_FIELDS)})")
    if "epi" not in names:
        raise RequestError("epi", "required: the .npz holds no 'epi' array")
    if sum(m.file_size for m in members) > max_bytes:
        raise RequestError("body", f"the .npz inflates past the {max_bytes / 2**20:g} MiB "
                                   f"limit (serve config max_body_mb)", status=413)
    with archive:
        out = {}
        for name, member in zip(names, members):
            try:  # reading inflates and checks the CRC: a corrupt member fails here
                with archive.open(member) as f:
                    data = f.read(max_bytes + 1)
            except Exception as exc:  # noqa: BLE001 - BadZipFile (CRC), zlib.error, EOF,
                # NotImplementedError (compression), RuntimeError (encrypted): the client's
                raise RequestError(name, f"unreadable member {member.filename!r} of the "
                                         f".npz ({type(exc).__name__}: {exc})") from None
            out[name] = load(data, name)
        return out


async def parse_window(request: Request, max_bytes: int = 8 * 2**20) -> WindowRequest:
    """The body as a :class:`WindowRequest`: JSON parsed by pydantic's own parser (10x
    faster than ``json.loads`` + validation on a 2 x 5000 ``epi``), or a binary NumPy
    body (:func:`read_numpy_body`; the request then holds ndarrays). Errors -> 422
    naming the field, without echoing the input back."""
    body = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in BINARY_TYPES:
        return WindowRequest.model_construct(**read_numpy_body(body, max_bytes))
    try:
        return WindowRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in errors]
        ) from None


def _json(model: BaseModel) -> Response:
    """Render a response model with pydantic-core (no ``json.dumps`` of long float lists)."""
    return Response(model.model_dump_json(), media_type="application/json")


_BINARY_BODY = {
    "schema": {"type": "string", "format": "binary",
               "description": "a .npy holding epi (C, 2L), or an .npz (np.savez) holding "
                              "epi and, for models that need it, hic (W, W)"},
}
_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/WindowRequest"}},
            **{ctype: _BINARY_BODY for ctype in BINARY_TYPES},
        },
    }
}


def request_examples(card: ModelCard, region: dict[str, Any] | None = None
                     ) -> dict[str, dict[str, Any]]:
    """OpenAPI ``examples`` of a task's JSON body that the served ``card`` accepts:
    zero arrays of the model's shapes, and ``region`` (a window inside the server's
    genome files) when given."""
    arrays: dict[str, Any] = {"epi": np.zeros(card.epi_shape, np.float32).tolist()}
    if card.needs_hic:
        arrays["hic"] = np.zeros(card.hic_shape, np.float32).tolist()
    shape = f"epi {list(card.epi_shape)}" + (f", hic {list(card.hic_shape)}"
                                             if card.needs_hic else "")
    out = {"arrays": {"summary": f"arrays ({shape}, zeros)", "value": arrays}}
    if region:
        out["region"] = {"summary": "a region of the server's genome files", "value": region}
    return out


def build_api(backend: Backend, max_body_bytes: int = 8 * 2**20,
              max_abs_input: float = MAX_ABS_INPUT,
              cards: Mapping[str, ModelCard] | None = None) -> FastAPI:
    """The FastAPI app of the mixhic HTTP API over ``backend``.

    ``max_abs_input``: largest |value| of an input array (:func:`check_range`);
    ``cards``: the served models, to put request examples that they accept into
    ``/openapi.json`` (a backend with a ``region_example(task)`` method adds a region)."""
    api = FastAPI(
        title="mixhic",
        version="1",
        description="MIX-HIC inference: Hi-C maps, loop probabilities and CAGE from "
                    "epigenomic tracks (+ Hi-C). Send arrays, or a region read from the "
                    "server's genome files.",
    )
    api.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)

    @api.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError):
        return exc.response()

    errors = {
        400: {"model": ErrorResponse}, 404: {"model": ErrorResponse},
        413: {"model": ErrorResponse}, 422: {"model": ErrorResponse},
    }

    async def card_for(task: str) -> ModelCard:
        cards = await backend.cards()
        if task not in cards:
            raise RequestError("task", f"no {task} model is served here (served: "
                                       f"{', '.join(sorted(cards)) or 'none'})", status=404)
        return cards[task]

    async def run(task: str, req: WindowRequest):
        card = await card_for(task)
        echo = None
        if req.is_region:
            if not backend.region_requests:
                raise RequestError("chrom", "region requests need genome files in the serve "
                                            "config (genome.mcool, genome.tracks); send "
                                            "epi/hic arrays instead", status=400)
            epi, hic, echo = await backend.region(card, req.chrom, req.start, req.start2)
            check_range(epi, "epi", max_abs_input)  # read from the server's files
            if hic is not None:
                check_range(hic, "hic", max_abs_input)
            offset = (echo.y_start - echo.x_start) / echo.resolution
        else:
            epi, hic = window_arrays(req, card, max_abs_input)
            offset = request_offset(req)
        out = check_output(task, await backend.predict(task, epi, hic, offset))
        return card, out, echo

    @api.get("/healthz", response_model=Health, tags=["meta"])
    async def healthz() -> Health:
        return Health()

    @api.get("/v1/model", response_model=ModelsResponse, tags=["meta"])
    async def model_info() -> ModelsResponse:
        cards = await backend.cards()
        return ModelsResponse(
            models=[ModelCardOut(**c.to_json()) for c in cards.values()],
            tasks=sorted(cards),
            region_requests=backend.region_requests,
        )

    post = {"responses": errors, "tags": ["predict"], "openapi_extra": _REQUEST_BODY}

    @api.post("/v1/hic", response_model=HicResponse, **post)
    async def predict_hic(request: Request):
        """Predicted Hi-C window (W, W), in the training scale of the model's data.

        Body: :class:`WindowRequest` (``epi`` arrays, or a region ``chrom``/``start``)."""
        card, out, echo = await run("hic", await parse_window(request, max_body_bytes))
        return _json(HicResponse(model=card.name, window=echo, hic=out.tolist()))

    @api.post("/v1/loops", response_model=LoopResponse, **post)
    async def predict_loops(request: Request):
        """Loop probability of the anchor pair at the centre of the window.

        Body: :class:`WindowRequest` (``epi`` + ``hic`` arrays, or a region with ``start2``)."""
        card, out, echo = await run("loops", await parse_window(request, max_body_bytes))
        return _json(LoopResponse(model=card.name, window=echo, probability=float(out)))

    @api.post("/v1/cage", response_model=CageResponse, **post)
    async def predict_cage(request: Request):
        """Predicted log2(1 + CAGE) per Hi-C bin of the x-anchor (W,).

        Body: :class:`WindowRequest` (``epi`` [+ ``hic``] arrays, or a region)."""
        card, out, echo = await run("cage", await parse_window(request, max_body_bytes))
        return _json(CageResponse(model=card.name, window=echo, cage=out.tolist()))

    @api.get("/view", response_class=HTMLResponse, tags=["viewer"],
             responses={k: v for k, v in errors.items() if k != 413})
    async def view(region: str = Query(..., max_length=200,
                                       description="chrom:start-end (bp), e.g. "
                                                   "chr1:0-2000000, or a chromosome",
                                       examples=["chr1:0-2000000"]),
                   loop_windows: int = Query(MAX_LOOP_WINDOWS, ge=0, le=4096,
                                             description="most loop candidates scored "
                                                         "(0: no loop scan)")) -> HTMLResponse:
        """Region viewer: observed (upper triangle) vs predicted (lower) contact map,
        predicted and known loops, the input tracks below, the models and files
        (:mod:`mixhic.serve.viewer`). One self-contained HTML page, rendered here."""
        page = getattr(backend, "view", None)
        if page is None:
            raise RequestError("region", "this server has no region viewer", 404, "query")
        if not backend.region_requests:
            raise RequestError("region", "the viewer reads the server's genome files: set "
                                         "genome.mcool and genome.tracks in the serve config",
                               400, "query")
        try:
            return HTMLResponse(await page(region, loop_windows))
        except RegionError as exc:
            raise RequestError("region", str(exc).removeprefix("region "), 422,
                               "query") from None

    _document_request_schema(api, backend, cards)
    return api


def _document_request_schema(api: FastAPI, backend: Backend,
                             cards: Mapping[str, ModelCard] | None) -> None:
    """Add :class:`WindowRequest` to the OpenAPI components (bodies are parsed by hand),
    and per-route examples the served models accept."""
    from fastapi.openapi.utils import get_openapi

    def openapi():
        if api.openapi_schema is None:
            schema = get_openapi(title=api.title, version=api.version,
                                 description=api.description, routes=api.routes)
            comps = schema.setdefault("components", {}).setdefault("schemas", {})
            comps["WindowRequest"] = WindowRequest.model_json_schema(
                ref_template="#/components/schemas/{model}")
            region_example = getattr(backend, "region_example", None)
            for task, card in (cards or {}).items():
                op = schema.get("paths", {}).get(f"/v1/{task}", {}).get("post")
                if op is None:
                    continue
                region = None
                if region_example is not None:
                    try:
                        region = region_example(task)
                    except Exception as exc:  # noqa: BLE001 - examples are documentation
                        log.warning("no region example for %s: %s", task, exc)
                op["requestBody"] = copy.deepcopy(op["requestBody"])  # not the shared dict
                content = op["requestBody"]["content"]["application/json"]
                content["examples"] = request_examples(card, region)
            api.openapi_schema = schema
        return api.openapi_schema

    api.openapi = openapi

