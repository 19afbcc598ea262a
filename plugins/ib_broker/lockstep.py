"""The rehearsal extension: how the broker plugin paces ``bothost sim-tws --pace lockstep``.

Real TWS never speaks it; the plugin speaks it only to a server that advertises it, with the
account value ``BothostPace`` (``lockstep``, ``realtime``, ``x10``...). Two client messages:

* ``BOTHOST_HELLO`` (9000): this client paces the replay (sent after every connect);
* ``BOTHOST_ACK`` (9001) ``kind key``: the engine has handled this event and everything it
  caused (every order it placed or cancelled was sent before the ack): ``exec`` with the
  execution id, or ``tick`` with the tick's data time in ns.

The simulator sends the next execution or tick only once the last one is acknowledged, so a
rehearsal makes exactly the decisions a backtest of the same data makes (docs/sim-tws.md).
"""

from __future__ import annotations

HELLO = 9000
ACK = 9001
VERSION = 1
PACE_TAG = "BothostPace"


def advertised_pace(account_values) -> str:
    """The pace the server advertises ('' for real TWS)."""
    for value in account_values:
        if value.tag == PACE_TAG:
            return value.value
    return ""


def tick_time_ns(seconds: int, special_conditions: str) -> int:
    """A tick-by-tick trade's data time. TWS sends whole seconds; the simulator adds the exact
    time as ``ns=<nanoseconds>`` in the special conditions."""
    for part in (special_conditions or "").split():
        if part.startswith("ns=") and part[3:].isdigit():
            return int(part[3:])
    return int(seconds) * 1_000_000_000
