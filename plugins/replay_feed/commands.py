"""``bothost data synth``: the replay feed's synthetic generator, as a command.

Published in the ``bothost.commands`` entry-point group (``data.synth``), the way any plugin
adds a command: the host's CLI lists the name from the package metadata and imports this module
only when the command runs, so the host imports nothing of this plugin.
"""

from __future__ import annotations

from pathlib import Path

import click

from bothost.cli import guarded  # the host's exit statuses: bad input 2, never a traceback


@click.command("synth")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="CSV file to write")
@click.option("--bars", default=100_000, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", default=42, show_default=True)
@click.option("--volatility", default=0.6, show_default=True, help="annualised")
@click.option("--start-price", default=50.0, show_default=True)
@click.option("--interval", default=60, show_default=True, help="bar size in seconds")
@click.option("--band", metavar="LOW,HIGH", help="reflect the price between two walls (a range-bound market)")
@guarded
def synth_command(out: Path, bars: int, seed: int, volatility: float, start_price: float, interval: int,
                  band: str | None) -> None:
    """Write seeded synthetic one-minute bars (geometric Brownian motion) to a CSV file."""
    from .synthetic import write_csv  # the embedded default's generator

    walls = None
    if band:
        try:
            low, high = (float(x) for x in band.split(","))
        except ValueError:
            raise click.BadParameter("write it as LOW,HIGH, for example 30,70", param_hint="--band") from None
        if not 0 < low < start_price < high:
            raise click.BadParameter(f"need 0 < LOW < start price ({start_price}) < HIGH", param_hint="--band")
        walls = (low, high)
    from .plugin import MAX_SPAN_S  # the same limit a config's synthetic: section has

    if interval < 1:
        raise click.BadParameter("a bar is at least 1 second", param_hint="--interval")
    if bars * interval > MAX_SPAN_S:
        raise click.BadParameter(f"{bars:,} bars of {interval:,} s reach past the year 2262 (the last time a "
                                 "nanosecond clock holds): fewer --bars or a shorter --interval", param_hint="--bars")
    write_csv(out, bars=bars, seed=seed, volatility=volatility, start_price=start_price, interval=interval,
              band=walls)
    click.echo(f"wrote {bars:,} bars to {out}")
