"""The performance figures of an equity curve, from what the database reduced it to.

The database reads every snapshot once (:meth:`tradestore.dialects.Backend.equity_summary`)
and hands back at most one row per calendar day plus the largest drawdown; this module turns
that into the figures of :class:`tradestore.domain.PerformanceReport`. Its work grows with the
number of days, never with the number of snapshots. No database code lives here.

Arithmetic runs in a 150-digit decimal context (square roots and powers correctly rounded
there): every figure up to :data:`LARGEST` keeps its 8th decimal place exact after rounding
half-up, as an exact computation would give it. ``max_drawdown`` is given to 50 significant
digits (exact whenever its decimal expansion ends within them).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Context, Decimal, DecimalException

from tradestore.dialects import EquitySummary
from tradestore.values import EXACT

#: Working precision: 100 digits before the point for the largest figure, and 50 more.
CONTEXT = Context(prec=150, rounding=ROUND_HALF_EVEN)
#: ``max_drawdown`` is a fraction of at most 1: 50 significant digits.
DRAWDOWN = Context(prec=50, rounding=ROUND_HALF_EVEN)
PLACES = Decimal("0.00000001")
#: Figures larger than this (a CAGR annualising a few minutes' gain) are reported as ``None``.
LARGEST = Decimal("1e100")
_ZERO, _ONE = Decimal(0), Decimal(1)
_DAYS_PER_YEAR = Decimal("365.25")
_SECONDS_PER_DAY = Decimal(86_400)


def rounded(value: Decimal | None) -> Decimal | None:
    """``value`` rounded half-up to 8 places; ``None`` stays ``None`` and so does a value beyond :data:`LARGEST`."""
    if value is None or not value.is_finite() or abs(value) > LARGEST:
        return None
    return value.quantize(PLACES, rounding=ROUND_HALF_UP, context=EXACT)


@dataclass(frozen=True)
class Figures:
    """The curve's figures before rounding (``None`` where undefined)."""

    periods: int
    total_return: Decimal | None
    cagr: Decimal | None
    max_drawdown: Decimal
    volatility: Decimal | None
    sharpe: Decimal | None
    sortino: Decimal | None
    calmar: Decimal | None


def _days_between(start: datetime, end: datetime) -> Decimal:
    elapsed = end - start
    seconds = Decimal(elapsed.days * 86_400 + elapsed.seconds) + Decimal(elapsed.microseconds).scaleb(-6)
    return CONTEXT.divide(seconds, _SECONDS_PER_DAY)


def _cagr(starting: Decimal, ending: Decimal, start: datetime, end: datetime) -> Decimal | None:
    days = _days_between(start, end)
    if days <= 0 or starting <= 0:
        return None
    if ending == 0:
        return -_ONE
    try:
        growth = CONTEXT.power(CONTEXT.divide(ending, starting), CONTEXT.divide(_DAYS_PER_YEAR, days))
    except DecimalException:  # beyond Decimal's range: not a figure anyone can use
        return None
    return CONTEXT.subtract(growth, _ONE)


def daily_returns(closes: list[tuple[datetime, Decimal]]) -> tuple[list[Decimal], int] | None:
    """The non-zero-day returns and the number of days ``n`` they span.

    A day without a snapshot carries the previous equity: its return is 0, so it only counts
    in ``n``. ``None`` when a return is undefined (a previous close of 0).
    """
    returns: list[Decimal] = []
    for (_, previous), (_, close) in itertools.pairwise(closes):
        if previous == 0:
            return None
        returns.append(CONTEXT.subtract(CONTEXT.divide(close, previous), _ONE))
    days = (closes[-1][0].date() - closes[0][0].date()).days
    return returns, days


def figures(
    summary: EquitySummary, ending: Decimal, end: datetime, *, periods_per_year: Decimal, risk_free_rate: Decimal
) -> Figures:
    """Every figure of the curve ``summary`` describes (see the README's definitions)."""
    start, starting = summary.first
    total_return = None if starting == 0 else CONTEXT.subtract(CONTEXT.divide(ending, starting), _ONE)
    cagr = _cagr(starting, ending, start, end)
    max_drawdown, calmar = _ZERO, None
    if summary.peak is not None and summary.trough is not None:
        peak = summary.peak[1]
        drop = EXACT.subtract(peak, summary.trough[1])
        max_drawdown = DRAWDOWN.divide(drop, peak)
        # cagr / (drop / peak), from the exact fraction rather than the 50-digit drawdown
        calmar = None if cagr is None else CONTEXT.divide(CONTEXT.multiply(cagr, peak), drop)
    volatility = sharpe = sortino = None
    found = daily_returns(summary.closes)
    periods = (summary.closes[-1][0].date() - summary.closes[0][0].date()).days
    if found is not None and periods >= 2:
        returns, n = found
        mean = CONTEXT.divide(_sum(returns), n)
        squares = _sum([CONTEXT.multiply(d, d) for d in (CONTEXT.subtract(r, mean) for r in returns)])
        # the days without a snapshot: a return of 0, so (0 - mean)² each
        squares = CONTEXT.add(squares, CONTEXT.multiply(n - len(returns), CONTEXT.multiply(mean, mean)))
        stdev = CONTEXT.sqrt(CONTEXT.divide(squares, n - 1))
        root = CONTEXT.sqrt(periods_per_year)
        volatility = CONTEXT.multiply(stdev, root)
        excess = CONTEXT.subtract(mean, CONTEXT.divide(risk_free_rate, periods_per_year))
        if stdev != 0:
            sharpe = CONTEXT.multiply(CONTEXT.divide(excess, stdev), root)
        downside = CONTEXT.sqrt(CONTEXT.divide(_sum([CONTEXT.multiply(r, r) for r in returns if r < 0]), n))
        if downside != 0:
            sortino = CONTEXT.multiply(CONTEXT.divide(excess, downside), root)
    return Figures(periods, total_return, cagr, max_drawdown, volatility, sharpe, sortino, calmar)


def _sum(values: list[Decimal]) -> Decimal:
    total = _ZERO
    for value in values:
        total = CONTEXT.add(total, value)
    return total
