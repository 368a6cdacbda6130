"""Chromosome name matching between files that spell chromosomes differently.

Hi-C files, bigWigs, bedpe and BED files disagree on spelling: ``chr1`` vs ``1``,
``chrM`` vs ``MT`` vs ``chrMito``, ``chrx`` vs ``X``. The Hi-C file's spelling is the
canonical one (it names the rows of every dataset); every other file is matched to it.

Rules, in order:
1. a configured alias (``{"chr1": "NC_000001.11"}``: Hi-C name -> name in the other file);
2. the exact same name;
3. the same *key*: the name without a leading ``chr``/``Chr``/``CHR``, upper-cased, with
   the mitochondrion spelled ``M`` (``chrM``, ``MT``, ``chrMT``, ``Mito``, ``chrMito``).

A key shared by two names of the same file is ambiguous and never matched silently.

    >>> match_names(["chr1", "chrM"], ["1", "MT", "10"])
    {'chr1': '1', 'chrM': 'MT'}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mixhic.core.errors import MixHicError

__all__ = ["ChromosomeNameError", "name_key", "match_names", "resolve_name"]

_MITO = {"M", "MT", "MITO", "CHRM", "CHRMT"}


class ChromosomeNameError(MixHicError):
    """A chromosome cannot be found (or is ambiguous) in a file; names the file and chromosome."""


def name_key(name: str) -> str:
    """The spelling-independent key of a chromosome name (``chr1`` and ``1`` -> ``1``)."""
    key = name.strip()
    if key[:3].lower() == "chr":
        key = key[3:]
    key = key.upper()
    if key in _MITO:
        return "M"
    return key


def _key_index(names: Iterable[str]) -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for n in names:
        index.setdefault(name_key(n), []).append(n)
    return index


def match_names(
    canonical: Iterable[str],
    other: Iterable[str],
    aliases: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Map each canonical name to its spelling in ``other``; unmatched names are left out.

    Args:
        canonical: names of the reference file (the Hi-C file).
        other: names of the file to match (a bigWig, a bedpe...).
        aliases: explicit canonical -> other spellings, checked first.
    """
    other = list(other)
    other_set = set(other)
    index = _key_index(other)
    aliases = dict(aliases or {})
    out: dict[str, str] = {}
    for name in canonical:
        alias = aliases.get(name)
        if alias is not None and alias in other_set:
            out[name] = alias
        elif name in other_set:
            out[name] = name
        else:
            hits = index.get(name_key(name), [])
            if len(hits) == 1:
                out[name] = hits[0]
    return out


def resolve_name(
    name: str,
    available: Iterable[str],
    where: str,
    aliases: Mapping[str, str] | None = None,
) -> str:
    """The spelling of ``name`` in ``available`` or a :class:`ChromosomeNameError` naming ``where``."""
    available = list(available)
    aliases = dict(aliases or {})
    if aliases.get(name) in available:
        return aliases[name]
    if name in available:
        return name
    hits = _key_index(available).get(name_key(name), [])
    if len(hits) == 1:
        return hits[0]
    shown = ", ".join(available[:8]) + (", ..." if len(available) > 8 else "")
    if len(hits) > 1:
        raise ChromosomeNameError(
            f"{where}: chromosome {name!r} is ambiguous ({', '.join(hits)}); "
            f"set an alias in `aliases`"
        )
    raise ChromosomeNameError(
        f"{where}: no chromosome matching {name!r} (file has: {shown}); "
        f"check the names or set an alias in `aliases`"
    )
