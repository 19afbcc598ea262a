"""The lot map: how many shares each grid level buys (spec tqqq-grid.md, Parameters ``lots``).

The file has one ``level,shares`` row per level, levels 0..N-1 in order; the original bot's file
has no header, a ``level,shares`` header row is accepted too. Blank lines are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bothost.errors import InputError


class LotMapError(InputError):
    """A lot map that cannot be used. ``str()`` is ``FILE:LINE: message`` plus a hint line; an
    :class:`~bothost.errors.InputError`, so the CLI prints it without a traceback and exits 2."""

    def __init__(self, message: str, path: str | Path, line: int | None = None, hint: str = ""):
        super().__init__(message, str(path), line, hint or None)
        self.path = str(path)
        self.hint = hint

    def render(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        text = f"{where}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def __str__(self) -> str:
        return self.render()


@dataclass(frozen=True)
class LotMap:
    """Shares by level, ``shares[level]`` for levels 0..N-1."""

    shares: tuple[int, ...]
    path: str = ""
    _by_quantity: dict[int, tuple[int, ...]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.shares:
            raise ValueError("a lot map needs at least one level")
        if any((not isinstance(q, int)) or q <= 0 for q in self.shares):
            raise ValueError("shares must be positive integers")
        groups: dict[int, list[int]] = {}
        for level, q in enumerate(self.shares):
            groups.setdefault(q, []).append(level)
        self._by_quantity.update({q: tuple(levels) for q, levels in groups.items()})

    def __len__(self) -> int:
        return len(self.shares)

    def __getitem__(self, level: int) -> int:
        return self.shares[level]

    def __iter__(self):
        return iter(self.shares)

    @property
    def n_levels(self) -> int:
        return len(self.shares)

    @property
    def total_shares(self) -> int:
        return sum(self.shares)

    def levels_with_quantity(self, quantity: int) -> tuple[int, ...]:
        """The levels whose lot is ``quantity`` shares, ascending (empty when none)."""
        return self._by_quantity.get(quantity, ())


_HINT_FORMAT = "each line is 'level,shares' with whole numbers, e.g. '0,94'; levels run 0, 1, 2, ... in order"


def _int(text: str) -> int | None:
    text = text.strip()
    if not text or not (text.isdigit() or (text[0] in "+-" and text[1:].isdigit())):
        return None
    return int(text)


def parse_lot_map(text: str, path: str | Path = "<lots>") -> LotMap:
    """Parse the text of a lot map; raises :class:`LotMapError` naming the line."""
    shares: list[int] = []
    seen_data = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        cells = [c.strip() for c in line.split(",")]
        if not seen_data and [c.lower() for c in cells] == ["level", "shares"]:
            seen_data = True  # the optional header, only as the first row
            continue
        seen_data = True
        if len(cells) != 2:
            raise LotMapError(f"expected 2 columns (level,shares), found {len(cells)}: {line!r}", path, lineno, _HINT_FORMAT)
        level, qty = _int(cells[0]), _int(cells[1])
        if level is None:
            raise LotMapError(f"level {cells[0]!r} is not a whole number", path, lineno, _HINT_FORMAT)
        if qty is None:
            raise LotMapError(f"shares {cells[1]!r} is not a whole number", path, lineno, _HINT_FORMAT)
        expected = len(shares)
        if level != expected:
            if level < expected:
                msg = f"level {level} appears again (or out of order); expected level {expected}"
            else:
                msg = f"level {expected} is missing: found level {level}"
            raise LotMapError(msg, path, lineno, "levels must be 0..N-1, each once, in order")
        if qty <= 0:
            raise LotMapError(f"level {level} has {qty} shares; shares must be positive", path, lineno,
                              "every level buys at least 1 share; remove the levels you do not want")
        shares.append(qty)
    if not shares:
        raise LotMapError("the lot map has no levels", path, 1, _HINT_FORMAT)
    return LotMap(tuple(shares), str(path))


def load_lot_map(path: str | Path) -> LotMap:
    """Read and check a lot map file. Raises :class:`LotMapError` (the CLI exits 2 on it)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LotMapError("lot map file not found", path, None,
                          "'lots:' in the strategy config is relative to the config file") from None
    except UnicodeDecodeError as exc:
        raw = path.read_bytes()
        line = raw.count(b"\n", 0, exc.start) + 1
        raise LotMapError(f"not a text file ({exc.reason}: byte 0x{raw[exc.start]:02x})", path, line,
                          "save it as UTF-8 text; " + _HINT_FORMAT) from None
    except IsADirectoryError:
        raise LotMapError("is a folder, not a lot map file", path, 1, "name the lot map file (level,shares)") from None
    except OSError as exc:
        raise LotMapError(f"cannot read the lot map: {exc.strerror or exc}", path, 1,
                          "check the path and its permissions") from None
    return parse_lot_map(text, path)
