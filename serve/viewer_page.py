"""The region viewer's page: :class:`~mixhic.serve.viewer.RegionView` -> figures, SVG and a
self-contained HTML page, written to a file or logged to MLflow.

Rendering is server-side and self-contained (matplotlib -> inline SVG, no script, no
external URL), so the page works on an offline machine and as a saved file. DOM hooks:
``#contact-map`` (figure; ``data-chrom/start/end/resolution/bins``), SVG groups
``.loop-mark`` (``data-kind`` predicted|known, ``data-start1``, ``data-start2``,
``data-probability``), ``#tracks`` (figure; one ``#track-<name>`` SVG group per track),
``#loops`` (table, one ``tr.loop-row`` per loop), ``#identity`` (models and files).

Library: :func:`render_region_html` (pure), :func:`region_figure` (one matplotlib figure,
for PNG), :func:`write_region_report`, :func:`log_region_report` (MLflow artifact when a
run is active, else a file).
"""

from __future__ import annotations

import html
import io
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from mixhic.core.errors import MixHicError
from mixhic.serve.viewer import RegionView

__all__ = ["render_region_html", "region_figure", "write_region_report", "log_region_report"]

log = logging.getLogger(__name__)


_FIG_W = 7.0  # inches, both figures (same width and margins: the x axes line up)
_LEFT, _MAP_W, _CBAR_GAP, _CBAR_W = 0.8, 5.4, 0.15, 0.14  # inches
_TRACK_H, _TRACK_GAP = 0.62, 0.12
_COLORS = {"predicted": "#1565c0", "known": "#00897b"}
_TRACK_COLORS = ["#5e35b1", "#ef6c00", "#2e7d32", "#6d4c41", "#c2185b", "#00838f"]


def _cmap():
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(
        "mixhic-fall", ["#ffffff", "#fff5c2", "#fec44f", "#f07c2c", "#c0262d", "#5a0c18"]
    ).with_extremes(bad="#d9d9d9")


def _map_image(view: RegionView) -> tuple[np.ndarray, float]:
    """(n, n) picture: observed above the diagonal, predicted below; and the colour max."""
    n = view.region.n_bins
    obs = view.observed if view.observed is not None else np.full((n, n), np.nan)
    pred = view.predicted if view.predicted is not None else np.full((n, n), np.nan)
    upper = np.triu(np.ones((n, n), bool))
    img = np.where(upper, obs, pred)
    ref = obs[upper & np.isfinite(obs)] if np.isfinite(obs).any() else pred[np.isfinite(pred)]
    vmax = float(np.percentile(ref, 99.5)) if ref.size else 1.0
    return img, vmax if vmax > 0 else 1.0


def _mb(x: float, _pos=None) -> str:
    return f"{x / 1e6:.2f}"


def _draw_map(fig, rect: tuple[float, float, float, float],
              cbar_rect: tuple[float, float, float, float], view: RegionView):
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    reg = view.region
    ax = fig.add_axes(rect, gid="map-axes")
    img, vmax = _map_image(view)
    extent = (reg.start, reg.end, reg.end, reg.start)
    im = ax.imshow(img, cmap=_cmap(), vmin=0.0, vmax=vmax, extent=extent,
                   interpolation="nearest", aspect="equal")
    ax.plot([reg.start, reg.end], [reg.start, reg.end], color="#555555", lw=0.6, alpha=0.6)
    ax.set_xlim(reg.start, reg.end)
    ax.set_ylim(reg.end, reg.start)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(FuncFormatter(_mb))
        axis.set_major_locator(MaxNLocator(6))
    ax.xaxis.tick_top()
    ax.tick_params(labelsize=8, length=3)
    ax.set_ylabel(f"{reg.chrom} (Mb)", fontsize=9)
    box = {"boxstyle": "round,pad=0.25", "fc": "white", "ec": "none", "alpha": 0.85}
    ax.text(0.98, 0.03, "predicted", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=9, color="#333333", bbox=box)
    ax.text(0.98, 0.97, "observed", transform=ax.transAxes, ha="right", va="top", fontsize=9,
            color="#333333", bbox=box)
    # known loops on the observed triangle (row = anchor 1, col = anchor 2), predicted on
    # the predicted triangle (mirrored); one SVG group per mark (ids made into classes)
    for k, lp in enumerate(view.known_loops):
        ax.scatter([lp.mid2], [lp.mid1], s=70, marker="s", facecolors="none",
                   edgecolors=_COLORS["known"], linewidths=1.4, gid=f"loop-known-{k}", zorder=3)
    if view.known_loops and view.predicted_loops:  # known loops faintly on the predicted side
        ax.scatter([lp.mid1 for lp in view.known_loops], [lp.mid2 for lp in view.known_loops],
                   s=45, marker="s", facecolors="none", edgecolors=_COLORS["known"],
                   linewidths=0.9, alpha=0.55, zorder=2)
    for k, lp in enumerate(view.predicted_loops):
        ax.scatter([lp.mid1], [lp.mid2], s=40 + 80 * (lp.probability or 0), marker="o",
                   facecolors="none", edgecolors=_COLORS["predicted"], linewidths=1.4,
                   gid=f"loop-predicted-{k}", zorder=3)
    cax = fig.add_axes(cbar_rect, gid="colorbar")
    cb = fig.colorbar(im, cax=cax)
    cb.ax.tick_params(labelsize=7, length=2)
    cb.set_label(f"contacts ({view.hic_scale or 'model scale'})", fontsize=8)
    return ax


def _track_rows(view: RegionView) -> list[tuple[str, str, np.ndarray, int, str]]:
    """(id, label, values, bp per value, colour) of each drawn track."""
    rows = [(f"track-{_slug(name)}", f"{name}", vals, view.track_bin,
             _TRACK_COLORS[k % len(_TRACK_COLORS)]) for k, (name, vals) in
            enumerate(view.tracks.items())]
    if view.cage is not None:
        rows.append(("track-predicted-cage", "CAGE (pred.)", view.cage, view.region.resolution,
                     "#ad1457"))
    return rows


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", str(name))


def _pool(values: np.ndarray, step: int, max_points: int = 1500) -> tuple[np.ndarray, int]:
    """Mean-pool a track to at most ``max_points`` values (the figure has ~1,000 px)."""
    values = np.asarray(values, dtype=np.float64)
    k = max(1, -(-len(values) // max_points))
    n = len(values) // k * k
    if k > 1:
        values = values[:n].reshape(-1, k).mean(axis=1)
    return values, step * k


def _draw_tracks(fig, top: float, view: RegionView) -> list:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    reg = view.region
    fh = fig.get_figheight()
    axes = []
    rows = _track_rows(view)
    for k, (gid, label, vals, step, color) in enumerate(rows):
        y = top - (k + 1) * _TRACK_H - k * _TRACK_GAP
        ax = fig.add_axes((_LEFT / _FIG_W, y / fh, _MAP_W / _FIG_W, _TRACK_H / fh), gid=gid)
        v, s = _pool(vals, step)
        x = reg.start + np.arange(len(v) + 1) * s
        ax.stairs(v, x, fill=True, color=color, alpha=0.85, lw=0)
        ax.set_xlim(reg.start, reg.end)
        top_v = float(np.nanmax(v)) if v.size and np.isfinite(v).any() else 0.0
        ax.set_ylim(0, top_v * 1.05 if top_v > 0 else 1.0)
        ax.set_yticks([0, top_v] if top_v > 0 else [0])
        ax.yaxis.set_major_formatter(FuncFormatter(lambda t, _p: f"{t:.2g}"))
        ax.tick_params(labelsize=7, length=2)
        ax.text(0.005, 0.97, label, transform=ax.transAxes, ha="left", va="top", fontsize=8,
                color=color, fontweight="bold",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if k < len(rows) - 1:
            ax.set_xticklabels([])
        else:
            ax.xaxis.set_major_formatter(FuncFormatter(_mb))
            ax.xaxis.set_major_locator(MaxNLocator(6))
            ax.set_xlabel(f"{reg.chrom} (Mb) · tracks: log2(1 + signal), as fed to the model",
                          fontsize=8)
        axes.append(ax)
    return axes


def _tracks_height(view: RegionView) -> float:
    n = len(_track_rows(view))
    return n * _TRACK_H + max(0, n - 1) * _TRACK_GAP


def _map_figure(view: RegionView):
    from matplotlib.figure import Figure

    top, bottom = 0.45, 0.1
    h = top + _MAP_W + bottom
    fig = Figure(figsize=(_FIG_W, h))
    _draw_map(fig, (_LEFT / _FIG_W, bottom / h, _MAP_W / _FIG_W, _MAP_W / h),
              ((_LEFT + _MAP_W + _CBAR_GAP) / _FIG_W, (bottom + _MAP_W * 0.25) / h,
               _CBAR_W / _FIG_W, _MAP_W * 0.5 / h), view)
    return fig


def _tracks_figure(view: RegionView):
    from matplotlib.figure import Figure

    top, bottom = 0.08, 0.45
    h = top + _tracks_height(view) + bottom
    fig = Figure(figsize=(_FIG_W, h))
    _draw_tracks(fig, h - top, view)
    return fig


def region_figure(view: RegionView):
    """Map over tracks in one matplotlib ``Figure`` (for a PNG / ``mlflow.log_figure``)."""
    from matplotlib.figure import Figure

    top, gap, bottom = 0.65, 0.2, 0.45
    th = _tracks_height(view)
    h = top + _MAP_W + gap + th + bottom
    fig = Figure(figsize=(_FIG_W, h))
    map_bottom = h - top - _MAP_W
    _draw_map(fig, (_LEFT / _FIG_W, map_bottom / h, _MAP_W / _FIG_W, _MAP_W / h),
              ((_LEFT + _MAP_W + _CBAR_GAP) / _FIG_W, (map_bottom + _MAP_W * 0.25) / h,
               _CBAR_W / _FIG_W, _MAP_W * 0.5 / h), view)
    _draw_tracks(fig, map_bottom - gap, view)
    fig.suptitle(f"{view.region.label} · {view.region.resolution:,} bp bins", fontsize=10,
                 y=1 - 0.12 / h, va="top")
    return fig


_OWN_ID = re.compile(r"^(map-axes|colorbar|track-.*|loop-(known|predicted)-\d+)$")


def _svg(fig, prefix: str, marks: Mapping[str, tuple[str, str]] | None = None) -> str:
    """The figure as an inline ``<svg>`` (text kept as text); ``marks`` maps an SVG group
    id to extra attributes added to it (class, data-*) and a tooltip (its ``<title>``).
    Matplotlib's own ids (figure_1,
    clip paths, ...) get ``prefix``, so that two figures on one page share none."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "mixhic",
                                "svg.image_inline": True}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "mixhic"})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    ids = {m for m in re.findall(r'\bid="([^"]+)"', text) if not _OWN_ID.match(m)}
    text = re.sub(r'\bid="([^"]+)"',
                  lambda m: f'id="{prefix}{m[1]}"' if m[1] in ids else m[0], text)
    text = re.sub(r'(url\(#|href="#)([^)"]+)',
                  lambda m: f"{m[1]}{prefix}{m[2]}" if m[2] in ids else m[0], text)
    for gid, (attrs, title) in (marks or {}).items():
        text = text.replace(f'<g id="{gid}">',
                            f'<g id="{gid}" {attrs}><title>{_e(title)}</title>', 1)
    return text


# --------------------------------------------------------------------------- the page

_CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f5f7fa; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",
       sans-serif; color:var(--ink); background:var(--bg); }
header { padding:14px 24px 10px; background:#fff; border-bottom:1px solid var(--line); }
header h1 { margin:0; font-size:20px; font-weight:600; }
header .sub { margin:2px 0 0; color:var(--muted); font-size:13px; }
.legend { display:inline-flex; gap:14px; margin-left:8px; }
.sw { display:inline-block; width:11px; height:11px; border:2px solid; vertical-align:-1px;
      margin-right:4px; }
.sw.pred { border-color:#1565c0; border-radius:50%; }
.sw.known { border-color:#00897b; }
main { display:grid; grid-template-columns: minmax(520px, 760px) minmax(300px, 1fr);
       gap:18px; padding:16px 24px 24px; align-items:start; }
.panel { background:#fff; border:1px solid var(--line); border-radius:8px; padding:10px; }
figure { margin:0; }
figure svg { display:block; width:100%; height:auto; }
h2 { font-size:14px; margin:0 0 8px; text-transform:uppercase; letter-spacing:.04em;
     color:var(--muted); }
aside .panel + .panel { margin-top:14px; }
table { border-collapse:collapse; width:100%; font-size:12.5px; }
th, td { text-align:left; padding:3px 8px 3px 0; border-bottom:1px solid var(--line);
         vertical-align:top; }
th { color:var(--muted); font-weight:500; white-space:nowrap; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
code { font:12px ui-monospace,SFMono-Regular,Menlo,monospace; word-break:break-all; }
.model { margin-bottom:10px; }
.model h3 { margin:6px 0 4px; font-size:13px; }
.tag { display:inline-block; padding:0 6px; border-radius:9px; background:#e3f2fd;
       color:#0d47a1; font-size:11.5px; margin-left:4px; }
ul.notes { margin:0; padding-left:18px; color:var(--muted); font-size:12.5px; }
.scroll { max-height:280px; overflow:auto; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _mark_attrs(view: RegionView) -> dict[str, tuple[str, str]]:
    marks = {}
    for kind, loops in (("known", view.known_loops), ("predicted", view.predicted_loops)):
        for k, lp in enumerate(loops):
            prob = "" if lp.probability is None else f' data-probability="{lp.probability:.4f}"'
            title = (f"{kind} loop {lp.chrom}:{lp.start1:,}-{lp.end1:,} x "
                     f"{lp.start2:,}-{lp.end2:,}"
                     + ("" if lp.probability is None else f" p={lp.probability:.3f}"))
            marks[f"loop-{kind}-{k}"] = (
                f'class="loop-mark {kind}" data-kind="{kind}" data-chrom="{_e(lp.chrom)}" '
                f'data-start1="{lp.start1}" data-start2="{lp.start2}"{prob}', title)
    return marks


def _identity_html(view: RegionView) -> str:
    parts = []
    for m in view.models:
        version = f" v{_e(m.get('version'))}" if m.get("version") else ""
        rows = [("source", f"<code>{_e(m.get('source'))}</code>"),
                ("mode", _e(m.get("mode"))),
                ("preset", _e(m.get("preset"))),
                ("MLflow run", f"<code>{_e(m.get('run_id'))}</code>" if m.get("run_id") else "—"),
                ("resolution", f"{int(m.get('resolution', 0)):,} bp"),
                ("window", f"{m.get('window_bins')} bins · {m.get('epi_bins')} × "
                           f"{int(m.get('epi_bin', 0)):,} bp track bins per anchor"),
                ("tracks", _e(", ".join(m.get("tracks") or [])) or "—")]
        body = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
        parts.append(f'<div class="model" data-task="{_e(m.get("task"))}" '
                     f'data-name="{_e(m.get("name"))}"><h3>{_e(m.get("name"))}{version}'
                     f'<span class="tag">{_e(m.get("task"))}</span></h3>'
                     f"<table>{body}</table></div>")
    files = "".join(f"<tr><th>{_e(k)}</th><td><code>{_e(v)}</code></td></tr>"
                    for k, v in view.data_files.items() if v)
    return (f'<section class="panel" id="identity"><h2>Model and data</h2>{"".join(parts)}'
            f'<table class="files">{files}</table></section>')


def _loops_html(view: RegionView) -> str:
    rows = []
    for lp in view.known_loops + view.predicted_loops:
        prob = "—" if lp.probability is None else f"{lp.probability:.3f}"
        pattr = "" if lp.probability is None else f' data-probability="{lp.probability:.4f}"'
        rows.append(
            f'<tr class="loop-row {lp.kind}" data-kind="{lp.kind}" data-chrom="{_e(lp.chrom)}" '
            f'data-start1="{lp.start1}" data-end1="{lp.end1}" data-start2="{lp.start2}" '
            f'data-end2="{lp.end2}"{pattr}><td>{lp.kind}</td><td class="num">{lp.start1:,}</td>'
            f'<td class="num">{lp.start2:,}</td><td class="num">'
            f'{(lp.start2 - lp.start1) / 1e3:,.0f} kb</td><td class="num">{prob}</td></tr>')
    body = "".join(rows) or '<tr><td colspan="5">no loops in this region</td></tr>'
    return (f'<section class="panel" id="loops-panel"><h2>Loops ({len(view.known_loops)} known, '
            f'{len(view.predicted_loops)} predicted)</h2><div class="scroll"><table id="loops">'
            f"<thead><tr><th>kind</th><th>anchor 1</th><th>anchor 2</th><th>distance</th>"
            f"<th>p</th></tr></thead><tbody>{body}</tbody></table></div></section>")


def render_region_html(view: RegionView, title: str | None = None) -> str:
    """The self-contained page of ``view`` (inline SVG and CSS; no script, no URL)."""
    reg = view.region
    map_svg = _svg(_map_figure(view), "m-", _mark_attrs(view))
    tracks_svg = _svg(_tracks_figure(view), "t-") if _track_rows(view) else ""
    track_names = ",".join(_e(n) for n in view.tracks)
    title = title or f"mixhic · {reg.label}"
    tasks = ", ".join(_e(m.get("task")) for m in view.models)
    notes = "".join(f"<li>{_e(n)}</li>" for n in view.notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<header><h1 id="region">{_e(reg.label)}</h1>
<p class="sub">{reg.n_bins} bins of {reg.resolution:,} bp · models: {tasks} ·
upper triangle observed, lower triangle predicted
<span class="legend"><span><span class="sw known"></span>known loop</span>
<span><span class="sw pred"></span>predicted loop</span></span></p></header>
<main>
<section class="panel" id="viewer">
<figure id="contact-map" data-chrom="{_e(reg.chrom)}" data-start="{reg.start}"
 data-end="{reg.end}" data-resolution="{reg.resolution}" data-bins="{reg.n_bins}"
 data-observed="{int(view.observed is not None)}"
 data-predicted="{int(view.predicted is not None)}">{map_svg}</figure>
<figure id="tracks" data-tracks="{track_names}">{tracks_svg}</figure>
</section>
<aside>
{_identity_html(view)}
{_loops_html(view)}
<section class="panel" id="notes"><h2>Notes</h2><ul class="notes">{notes}</ul></section>
</aside>
</main>
</body></html>
"""


# --------------------------------------------------------------------------- outputs


def write_region_report(path: str | Path, view: RegionView) -> Path:
    """Write the page of ``view`` as a static HTML file (atomically); return its path."""
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_region_html(view), encoding="utf-8")
    os.replace(tmp, path)
    return path


def log_region_report(view: RegionView, out_dir: str | Path | None = None,
                      artifact_dir: str = "viewer") -> dict[str, str]:
    """Log the region's page (HTML) and plot (PNG) to the active MLflow run, if any; write
    them under ``out_dir`` when no run is active (and also when ``out_dir`` is given).
    Returns ``{"html": ..., "png": ...}``: file paths, or artifact paths of the run."""
    name = view.region.slug
    out: dict[str, str] = {}
    run = None
    try:
        import mlflow

        run = mlflow.active_run()
    except ImportError:  # pragma: no cover - mlflow is a dependency
        mlflow = None
    if run is not None:
        page = render_region_html(view)
        mlflow.log_text(page, f"{artifact_dir}/{name}.html")
        mlflow.log_figure(region_figure(view), f"{artifact_dir}/{name}.png")
        out = {"html": f"{artifact_dir}/{name}.html", "png": f"{artifact_dir}/{name}.png"}
        log.info("logged the %s viewer to MLflow run %s", view.region, run.info.run_id)
    if out_dir is not None:
        html_path = write_region_report(Path(out_dir) / f"{name}.html", view)
        png_path = Path(out_dir) / f"{name}.png"
        region_figure(view).savefig(png_path, dpi=110)
        out = {"html": str(html_path), "png": str(png_path)}
        log.info("wrote %s", html_path)
    elif run is None:
        raise MixHicError("out_dir: required when no MLflow run is active")
    return out
