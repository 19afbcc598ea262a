"""What a state folder's run was made with, so that a resume cannot silently ignore the config.

A resumed run continues the one its state folder holds. If the config now says something else
that changes the result (a grid parameter, another venue setting), resuming
would splice two different runs into one set of outputs. The run records the parts of its
config that decide the result in the state, and a later run whose config differs refuses with
exit 2, naming each difference and the ways out (``--fresh``, or another ``--state``).

Live, only the strategies' settings count: a broker's address or the feed may change between
restarts (the broker's own orders are the truth, and reconstruct reads them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import InputError

SECTION = "__config__"  # the host's section in bot_state.json


def result_config(run, replay: bool) -> dict[str, Any]:
    """The parts of a validated config that decide what the run does, as plain JSON values."""
    out: dict[str, Any] = {"strategies": [_section(s) for s in run.strategies]}
    if replay:
        # The simulated venue's own settings (commission, partial fills...) decide fills too.
        # The feed does not count: a paper account may go on with the next day's data (the
        # venue's clock skips what it has already seen).
        out["broker"] = _section(run.broker)
    instruments = getattr(run, "instruments", None)
    if instruments:
        # Prices are saved as units of the increment (the venue, the strategies' state): a
        # state folder means nothing under another one. Absent when none is declared, so a
        # state folder made before ``instruments:`` existed resumes as it did.
        out["instruments"] = {symbol: str(i.increment) for symbol, i in sorted(instruments.items())}
    return out


def _section(section) -> dict[str, Any]:
    return {"use": section.use, **section.settings.model_dump(mode="json")}


def differences(saved: Any, current: Any, path: str = "") -> list[str]:
    """``key.path: saved -> current`` for every leaf that differs."""
    if isinstance(saved, dict) and isinstance(current, dict):
        out = []
        for key in list(dict.fromkeys([*saved, *current])):
            out += differences(saved.get(key, "(not set)"), current.get(key, "(not set)"),
                               f"{path}.{key}" if path else str(key))
        return out
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        out = []
        for i, (a, b) in enumerate(zip(saved, current)):
            out += differences(a, b, f"{path}.{i}")
        return out
    return [] if saved == current else [f"{path}: {_show(saved)} in the state, {_show(current)} now"]


def _show(value: Any) -> str:
    if isinstance(value, list):
        return f"{len(value)} entries"
    return repr(value) if isinstance(value, str) else str(value)


def check_resume(saved: Any, current: dict[str, Any], state_file: Path, live: bool) -> None:
    """Raise InputError (exit 2) when a state made with another config would be resumed."""
    if saved is None or saved == current:
        return
    found = differences(saved, current) or ["the recorded config cannot be read"]
    shown = "\n    ".join(found[:12]) + (f"\n    ... and {len(found) - 12} more" if len(found) > 12 else "")
    if live:
        hint = ("put the setting back, or start the state over with --fresh (the old state is moved aside, "
                "nothing is deleted; reconstruct then rebuilds the lots from the broker's orders, and still "
                "refuses a profit_target that the resting SELLs were not placed with)")
    else:
        hint = ("put the setting back to resume this run, run it in another folder with --state DIR, or start "
                "this folder over with --fresh (the old state is moved aside, nothing is deleted)")
    raise InputError(f"this state folder holds a run made with another config; resuming it would mix two "
                     f"runs:\n    {shown}", state_file, hint=hint)
