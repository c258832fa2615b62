"""A picture of one candle series: candles over volume, the gaps shaded (the ``tradestore[plot]`` extra).

Drawn with matplotlib's object API (no global ``pyplot`` state, no display needed): green
candles close at or above their open, red ones below; each gap is a shaded band over both
panels, from the first missing bar's start to the end of the last missing bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tradestore import timeframes
from tradestore.domain import OHLCVBar
from tradestore.errors import ConfigurationError

UP, DOWN, GAP = "#26a69a", "#ef5350", "#ffb300"


def _matplotlib() -> Any:
    try:
        import matplotlib.dates
        import matplotlib.figure
        import matplotlib.patches
    except ImportError:
        raise ConfigurationError("plotting needs matplotlib: pip install 'tradestore[plot]'") from None
    return matplotlib


def plot_available() -> bool:
    """Whether matplotlib is installed."""
    try:
        _matplotlib()
    except ConfigurationError:
        return False
    return True


def draw(bars: Sequence[OHLCVBar], gaps: Sequence[tuple[datetime, datetime]], *, title: str) -> Any:
    """A ``matplotlib.figure.Figure``: candles above, volume below, gaps shaded on both (patches with gid ``gap``)."""
    mpl = _matplotlib()
    figure = mpl.figure.Figure(figsize=(12, 6.5), layout="constrained")
    price, volume = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    timeframe = bars[0].timeframe if bars else "1m"
    length = timeframes.shift(timeframe, bars[0].timestamp, 1) - bars[0].timestamp if bars else timedelta(minutes=1)
    width = length / timedelta(days=1) * 0.7  # matplotlib's date unit is a day
    # Candles are centred on the middle of their period, so a gap's band meets its neighbours' edges.
    x = mpl.dates.date2num([b.timestamp + length / 2 for b in bars])
    colors = [UP if b.close >= b.open else DOWN for b in bars]
    price.vlines(x, [float(b.low) for b in bars], [float(b.high) for b in bars], colors=colors, linewidth=0.8)
    bottoms = [float(min(b.open, b.close)) for b in bars]
    heights = [float(abs(b.close - b.open)) or float(b.high - b.low) / 200 or 1e-12 for b in bars]
    price.bar(x, heights, width, bottoms, color=colors)
    volume.bar(x, [float(b.volume) for b in bars], width, color=colors)
    for first, last in gaps:
        end = timeframes.shift(timeframe, last, 1)
        for axes in (price, volume):
            band = axes.axvspan(mpl.dates.date2num(first), mpl.dates.date2num(end), color=GAP, alpha=0.25, lw=0)
            band.set_gid("gap")
    missing = sum(timeframes.count_between(timeframe, a, b) for a, b in gaps)
    price.set_title(title)
    price.set_ylabel("price")
    volume.set_ylabel("volume")
    volume.xaxis.set_major_formatter(mpl.dates.ConciseDateFormatter(volume.xaxis.get_major_locator()))
    if gaps:
        label = f"{len(gaps):,} gap{'s' if len(gaps) != 1 else ''}, {missing:,} missing bars"
        price.legend(handles=[mpl.patches.Patch(color=GAP, alpha=0.25, label=label)], loc="upper left")
    price.grid(alpha=0.2)
    volume.grid(alpha=0.2)
    return figure


def save_png(figure: Any, path: Path) -> None:
    """Write ``figure`` as a PNG file."""
    figure.savefig(path, format="png", dpi=100)
