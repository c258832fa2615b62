"""A plain-Python reference for ``EquityRepository.performance``: the README's definitions, written out.

Exact fractions for every rational step, 60-digit decimals for square roots and powers, one
day at a time for the returns (no database, no shortcut): what a careful person computes by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal
from fractions import Fraction

CONTEXT = Context(prec=160)
PLACES = Decimal("0.00000001")


def decimal(value: Fraction) -> Decimal:
    return CONTEXT.divide(Decimal(value.numerator), Decimal(value.denominator))


def round8(value: Fraction | Decimal | None) -> Decimal | None:
    if value is None:
        return None
    number = decimal(value) if isinstance(value, Fraction) else value
    if abs(number) > Decimal("1e100"):
        return None
    return number.quantize(PLACES, rounding=ROUND_HALF_UP, context=Context(prec=200))


def sqrt(value: Fraction) -> Decimal:
    return CONTEXT.sqrt(decimal(value))


@dataclass
class Expected:
    total_return: Decimal | None
    cagr: Decimal | None
    max_drawdown: Decimal
    peak: datetime | None
    trough: datetime | None
    recovered: datetime | None
    volatility: Decimal | None
    sharpe: Decimal | None
    sortino: Decimal | None
    calmar: Decimal | None
    periods: int


def expected(
    curve: list[tuple[datetime, Decimal]],
    periods_per_year: Decimal = Decimal(365),
    risk_free_rate: Decimal = Decimal(0),
) -> Expected:
    points = sorted(curve)
    (start, first), (end, last) = points[0], points[-1]
    # --- drawdown over every snapshot
    peak: Decimal | None = None
    peak_at: datetime | None = None
    best = Fraction(0)
    best_points: tuple[datetime, datetime, Decimal] | None = None
    recovered: datetime | None = None
    for moment, equity in points:
        if peak is None or equity >= peak:
            if best_points is not None and recovered is None and equity >= best_points[2]:
                recovered = moment
            peak, peak_at = equity, moment
            continue
        if peak > 0:
            fall = (Fraction(peak) - Fraction(equity)) / Fraction(peak)  # exact, whatever the digits
            if fall > best:
                assert peak_at is not None
                best, best_points, recovered = fall, (peak_at, moment, peak), None
    # --- daily returns, one calendar day at a time
    closes: dict[object, Decimal] = {}
    for moment, equity in points:
        closes[moment.date()] = equity
    day, last_day = start.date(), end.date()
    carried = closes[day]
    returns: list[Fraction] | None = []
    while day < last_day:
        day += timedelta(days=1)
        today = closes.get(day, carried)
        if carried == 0:
            returns = None
            break
        assert returns is not None
        returns.append(Fraction(today) / Fraction(carried) - 1)
        carried = today
    periods = (last_day - start.date()).days
    volatility = sharpe = sortino = None
    if returns is not None and len(returns) >= 2:
        n = len(returns)
        mean = sum(returns, Fraction(0)) / n
        variance = sum(((r - mean) ** 2 for r in returns), Fraction(0)) / (n - 1)
        stdev = sqrt(variance)
        root = CONTEXT.sqrt(periods_per_year)
        volatility = CONTEXT.multiply(stdev, root)
        excess = decimal(mean - Fraction(risk_free_rate) / Fraction(periods_per_year))
        if stdev:
            sharpe = CONTEXT.multiply(CONTEXT.divide(excess, stdev), root)
        downside = sqrt(sum((min(r, Fraction(0)) ** 2 for r in returns), Fraction(0)) / n)
        if downside:
            sortino = CONTEXT.multiply(CONTEXT.divide(excess, downside), root)
    # --- total return and CAGR over the calendar time from the first to the last snapshot
    total = None if first == 0 else Fraction(last) / Fraction(first) - 1
    days = Fraction(int((end - start) / timedelta(microseconds=1)), 86_400_000_000)
    cagr: Decimal | None = None
    if days > 0 and first > 0:
        if last == 0:
            cagr = Decimal(-1)
        else:
            try:
                growth = CONTEXT.power(decimal(Fraction(last) / Fraction(first)), decimal(Fraction("365.25") / days))
                cagr = CONTEXT.subtract(growth, 1)
            except ArithmeticError:
                cagr = None
    calmar = None if cagr is None or best == 0 else CONTEXT.divide(cagr, decimal(best))
    drawdown = Context(prec=50).divide(Decimal(best.numerator), Decimal(best.denominator))
    return Expected(
        total_return=round8(total),
        cagr=round8(cagr),
        max_drawdown=drawdown,
        peak=None if best_points is None else best_points[0],
        trough=None if best_points is None else best_points[1],
        recovered=recovered,
        volatility=round8(volatility),
        sharpe=round8(sharpe),
        sortino=round8(sortino),
        calmar=round8(calmar),
        periods=periods,
    )
