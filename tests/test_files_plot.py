"""``tradestore plot ohlcv``: candles over volume as a PNG, the gaps shaded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli_runner import fails, ok, seed
from factories import bars

pytest.importorskip("matplotlib")
from tradestore.files.plot import draw


def test_plot_draws_a_png_with_the_gaps_marked(fresh_url: str, tmp_path: Path) -> None:
    seed(fresh_url, tmp_path, [m for m in range(60) if m not in (10, 11, 12, 40)])
    out = tmp_path / "btc.png"
    result = ok("plot", "ohlcv", "binance", "BTCUSDT", "1m", "-o", out, "--url", fresh_url, "--json").json
    assert (result["bars"], result["gaps"], result["missing"]) == (56, 2, 4)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    window = ("--start", "2024-01-01T00:30", "--end", "2024-01-01T01:10")
    text = ok("plot", "ohlcv", "binance", "BTCUSDT", "1m", *window, "-o", out, "--force", "--url", fresh_url).out
    assert "plotted 29 bars of binance BTCUSDT 1m with 2 gaps (12 missing bars)" in text  # 00:40, 01:00-01:10
    assert "already exists" in fails("plot", "ohlcv", "binance", "BTCUSDT", "1m", "-o", out, "--url", fresh_url)
    assert "PNG" in fails("plot", "ohlcv", "binance", "BTCUSDT", "1m", "-o", tmp_path / "x.jpg", "--url", fresh_url)
    assert "nothing drawn" in fails(
        "plot", "ohlcv", "binance", "NOPE", "1m", "-o", tmp_path / "n.png", "--url", fresh_url
    )


def test_each_gap_is_a_band_over_price_and_volume() -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    gaps = [
        (t0 + timedelta(minutes=3), t0 + timedelta(minutes=4)),
        (t0 + timedelta(minutes=8), t0 + timedelta(minutes=8)),
    ]
    figure = draw(bars(10, skip=range(3, 5)), gaps, title="t")
    price, volume = figure.axes
    assert [len([p for p in axes.patches if p.get_gid() == "gap"]) for axes in (price, volume)] == [2, 2]
    assert "2 gaps, 3 missing bars" in price.get_legend().get_texts()[0].get_text()
