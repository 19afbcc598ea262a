"""``load()``: a config file with its ``extends:`` chain, ``--set`` overrides and ``${VAR}``s.

Order matters and is part of the contract:

1. the file and, recursively, the files it ``extends:`` are read (base first);
2. each extending file is deep-merged over its base (see :mod:`.merge`);
3. ``--set`` overrides are applied;
4. ``${VAR}`` references are substituted from the environment.

The result is plain data plus a source map, so that later errors point at the right line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .envsubst import substitute
from .errors import SET_FILE, ConfigError, Pos
from .merge import deep_merge
from .overrides import apply_overrides
from .positions import KeyPath, SourceMap
from .yamlfile import read_yaml

EXTENDS = "extends"


@dataclass(frozen=True)
class RawConfig:
    """A loaded, merged, interpolated config: not yet checked against any model."""

    path: Path  # the file the user named
    data: dict[str, Any]  # plain dicts, lists and scalars
    sources: SourceMap = field(repr=False)
    files: tuple[Path, ...] = ()  # the file first, then the files it extends, in chain order

    def where(self, keypath: KeyPath) -> Pos:
        """``(file, line, col)`` where the value at ``keypath`` (or its closest parent) was written."""
        return self.sources.where(tuple(keypath)) or Pos(str(self.path), 1, 1)

    def where_value(self, keypath: KeyPath) -> Pos:
        return self.sources.where_value(tuple(keypath)) or Pos(str(self.path), 1, 1)

    def file_rank(self, file: str) -> int:
        """Order of files for "report the first error": the named file, its bases, then --set."""
        if file == SET_FILE:
            return len(self.files) + 1
        try:
            return self.files.index(Path(file))
        except ValueError:
            return len(self.files)


def load(
    path: str | Path,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] = os.environ,
    patch: Callable[[dict[str, Any]], None] | None = None,
) -> RawConfig:
    """``patch(data)`` may edit the merged data before ``--set`` and ``${VAR}`` substitution:
    a section it replaces needs none of the replaced section's variables, and ``--set`` then
    reaches what the command runs (``bothost backtest --set broker.partial_fill_shares=5``
    sets the simulated venue that replaced the config's broker)."""
    path = Path(path)
    files: list[Path] = []
    data, smap = _load_chain(path, str(path), (), files)
    if patch is not None:
        patch(data)
    apply_overrides(data, smap, overrides)
    data = substitute(data, smap, environ)
    return RawConfig(path=path, data=data, sources=smap, files=tuple(files))


def _load_chain(
    path: Path, display: str, chain: tuple[tuple[Path, str], ...], files: list[Path]
) -> tuple[dict[str, Any], SourceMap]:
    data, smap = read_yaml(path, display)
    files.append(Path(display))
    if EXTENDS not in data:
        return data, smap

    name = data.pop(EXTENDS)
    at = smap.where_value((EXTENDS,))
    smap.drop((EXTENDS,))
    if not isinstance(name, str) or not name.strip() or "\0" in name:
        raise ConfigError.at(at, "extends: must name one YAML file", hint="write e.g. `extends: live.yaml` (relative to this file)")
    base_path = path.parent / Path(name).expanduser()
    base_display = os.path.normpath(os.path.join(os.path.dirname(display), os.path.expanduser(name)))

    here = (_identity(path), display)
    seen = chain + (here,)
    base_id = _identity(base_path)
    if any(ident == base_id for ident, _ in seen):
        start = next(i for i, (ident, _) in enumerate(seen) if ident == base_id)
        loop = " -> ".join([shown for _, shown in seen[start:]] + [base_display])
        raise ConfigError.at(at, f"extends cycle: {loop}", hint="remove the extends: line that closes the loop")
    try:
        what = None if base_path.is_file() else "is a directory" if base_path.is_dir() else "does not exist"
    except (OSError, ValueError) as exc:  # a name too long for the file system, say
        raise ConfigError.at(at, f"extends: the base file name cannot be used ({getattr(exc, 'strerror', None) or exc})",
                             hint="write the name of a YAML file, relative to the file that says extends:") from None
    if what is not None:
        hint = "the path is relative to the file that says extends:"
        if "${" in name:
            hint = "extends: is read before ${VAR} substitution; write the file name literally"
        raise ConfigError.at(at, f"extends: the base file {base_display} {what}", hint=hint)

    base, base_map = _load_chain(base_path, base_display, seen, files)
    return deep_merge(base, base_map, data, smap)


def _identity(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:  # e.g. a symlink loop: fall back to the absolute path
        return path.absolute()
