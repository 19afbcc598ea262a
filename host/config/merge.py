"""Deep merge of an extending file over its base, carrying positions along.

Mappings merge key by key, recursively; anything else (lists, scalars, a mapping meeting a
non-mapping, a plugin section whose ``use:`` changes) is replaced whole. Replacing a list whole is deliberate: merging lists item by
item would make `strategies:` in a paper config silently inherit the live config's extra items.
"""

from __future__ import annotations

from typing import Any

from .positions import KeyPath, SourceMap


def deep_merge(base: Any, base_map: SourceMap, over: Any, over_map: SourceMap) -> tuple[Any, SourceMap]:
    """Return ``over`` merged onto ``base`` and the source map of the result.

    Neither input is modified. A value's position is that of the file it came from.
    """
    out_map = base_map.copy()
    merged = _merge(base, over, (), out_map, over_map)
    return merged, out_map


def _swaps_plugin(base: Any, over: Any) -> bool:
    """A section whose ``use:`` names another plugin replaces the base's section whole: the
    new plugin's keys have nothing to do with the old one's (a paper config swapping the live
    broker for the simulated one must not inherit the live broker's host and port)."""
    return "use" in over and "use" in base and over["use"] != base["use"]


def _merge(base: Any, over: Any, path: KeyPath, out_map: SourceMap, over_map: SourceMap) -> Any:
    if isinstance(base, dict) and isinstance(over, dict) and not _swaps_plugin(base, over):
        out = dict(base)
        for key, value in over.items():
            sub = path + (key,)
            if key in base:
                out[key] = _merge(base[key], value, sub, out_map, over_map)
            else:
                out[key] = value
                out_map.drop(sub)
                out_map.graft(over_map, sub)
        if path in over_map:  # a mapping written in both files: its key points at the newer one
            out_map.set(path, over_map.get(path))
        return out
    out_map.drop(path)
    out_map.graft(over_map, path)
    return over
