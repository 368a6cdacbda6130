"""Parameter counts per top-level module."""

from __future__ import annotations

from torch import nn

__all__ = ["parameter_counts", "format_parameter_counts"]


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Parameters per top-level child (and direct parameters), plus ``total``.

    E.g. {"hic_encoder": ..., "epi_encoder": ..., "interaction": ..., "total": ...}.
    """
    counts: dict[str, int] = {}
    for name, child in model.named_children():
        counts[name] = sum(p.numel() for p in child.parameters())
    for name, p in model.named_parameters(recurse=False):
        counts[name] = p.numel()
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts


def format_parameter_counts(counts: dict[str, int], title: str = "") -> str:
    """A small aligned table, millions with two decimals."""
    width = max(len(k) for k in counts)
    lines = [title] if title else []
    for k, v in counts.items():
        lines.append(f"  {k:<{width}}  {v / 1e6:8.2f} M  ({v:,})")
    return "\n".join(lines)
