"""The demo's usage report: one self-contained HTML page of charts drawn from the usage ledger's summary.

Everything is inline: the CSS, the SVG charts (built here, in Python) and no script at all; the page loads
nothing from the network and uses the reader's own system fonts. Figures that are not final yet (`is_final`
false in the ledger) are drawn hatched and lighter, and the legend says so.

The page knows no vendor: it draws whatever vendors the summary holds, in the order the summary gives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from html import escape
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

# Okabe and Ito's palette: told apart by readers with any of the common colour vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#8C6D1F", "#444444")
WIDTH = 960
BINARY_PREFIXES = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
LABEL_CHARACTERS = 50  # of a subject's label, in 12 px monospace: what fits left of the ranking's bars (tooltips show it whole)


# ----- what the report shows (built by source_usage.demo from the ledger) -----------------------------------


@dataclass(frozen=True)
class Split:
    """A quantity (or cost) as its final part and its provisional part (`is_final` false)."""

    final: Decimal = Decimal(0)
    provisional: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        return self.final + self.provisional


@dataclass(frozen=True)
class MetricTotal:
    """One vendor's total of one headline metric at one granularity, and how much of it is provisional."""

    vendor: str
    metric: str
    unit: str
    granularity: str
    periods: int
    amount: Split

    @property
    def provisional_share(self) -> Optional[Decimal]:
        return None if not self.amount.total else self.amount.provisional / self.amount.total


@dataclass(frozen=True)
class MonthlyCost:
    month: str  # YYYY-MM of the period start
    vendor: str
    currency: str
    cost: Split


@dataclass(frozen=True)
class Subject:
    vendor: str
    subject_type: str
    subject_id: str
    subject_name: Optional[str]
    amount: Split
    currency: Optional[str] = None  # for a ranking by cost

    @property
    def label(self) -> str:
        name = self.subject_name if self.subject_name and self.subject_name != self.subject_id else None
        return f"{self.vendor} · {self.subject_type} {self.subject_id}" + (f" ({name})" if name else "")


@dataclass
class Summary:
    """The usage ledger, summarised (see `source_usage.demo.ledger_summary`)."""

    source: str
    ledger_rows: int
    vendors: List[str]
    daily_bytes: Dict[Tuple[str, date], Split] = field(default_factory=dict)
    totals: List[MetricTotal] = field(default_factory=list)
    monthly_cost: List[MonthlyCost] = field(default_factory=list)
    top_by_bytes: List[Subject] = field(default_factory=list)
    top_by_cost: List[Subject] = field(default_factory=list)
    generated_at: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))

    def days(self) -> List[date]:
        """Every calendar day from the first to the last with daily usage (gaps included)."""
        if not self.daily_bytes:
            return []
        first, last = min(day for _, day in self.daily_bytes), max(day for _, day in self.daily_bytes)
        return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]

    def currencies(self, items: Iterable) -> List[str]:
        return sorted({item.currency for item in items if item.currency})


# ----- numbers ------------------------------------------------------------------------------------------------


def byte_scale(largest: float) -> Tuple[float, str]:
    """The binary prefix that shows `largest` bytes with at most four digits before the point."""
    power = 0
    while power < len(BINARY_PREFIXES) - 1 and largest >= 1024 ** (power + 1):
        power += 1
    return float(1024**power), BINARY_PREFIXES[power]


def nice_ticks(largest: float, count: int = 4) -> List[float]:
    """0 and round steps up to at least `largest` (1, 2, 2.5 or 5 times a power of ten)."""
    if largest <= 0:
        return [0.0, 1.0]
    rough = largest / count
    magnitude = 10 ** math.floor(math.log10(rough))
    step = next(factor * magnitude for factor in (1, 2, 2.5, 5, 10) if factor * magnitude >= rough)
    return [step * index for index in range(int(math.ceil(largest / step - 1e-9)) + 1)]


def number(value: float, decimals: int = 1) -> str:
    text = f"{value:,.{decimals}f}"
    return text[:-2] if decimals == 1 and text.endswith(".0") else text


def amount_in(value: float, unit: str) -> str:
    """`value` (bytes, a cost or a count) the way a label shows it."""
    if unit == "bytes":
        scale, prefix = byte_scale(abs(value))
        return f"{number(value / scale)} {prefix}"
    return number(value, 2 if unit not in ("messages", "units") else 0) + ("" if unit in ("messages", "units") else f" {unit}")


def share(value: Optional[Decimal]) -> str:
    return "–" if value is None else f"{value:.1%}"


# ----- SVG pieces ---------------------------------------------------------------------------------------------


class Colours:
    def __init__(self, vendors: Sequence[str]) -> None:
        self.index = {vendor: position for position, vendor in enumerate(vendors)}

    def of(self, vendor: str) -> str:
        return PALETTE[self.index.get(vendor, len(self.index)) % len(PALETTE)]

    def hatch(self, vendor: str) -> str:
        return f"url(#hatch-{self.index.get(vendor, len(self.index)) % len(PALETTE)})"

    def patterns(self) -> str:
        """One hatch per colour: what the provisional part of a bar is filled with."""
        return "<defs>" + "".join(
            f'<pattern id="hatch-{position}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
            f'<rect width="6" height="6" fill="{colour}" fill-opacity="0.18"/>'
            f'<line x1="0" y1="0" x2="0" y2="6" stroke="{colour}" stroke-width="3"/></pattern>'
            for position, colour in enumerate(PALETTE)
        ) + "</defs>"


def text(x: float, y: float, content: str, css: str = "", anchor: str = "start", extra: str = "") -> str:
    classes = f' class="{css}"' if css else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{classes}{extra}>{escape(content)}</text>'


def bar(x: float, y: float, width: float, height: float, fill: str, stroke: str, *, vendor: str, period: str, final: bool, value: Decimal, tooltip: str) -> str:
    return (
        f'<rect class="bar {"final" if final else "provisional"}" x="{x:.2f}" y="{y:.2f}" width="{max(width, 0):.2f}" '
        f'height="{max(height, 0):.2f}" fill="{fill}" stroke="{stroke}" stroke-width="{0 if final else 1}" '
        f'data-vendor="{escape(vendor)}" data-period="{escape(period)}" data-final="{"true" if final else "false"}" '
        f'data-value="{value}"><title>{escape(tooltip)}</title></rect>'
    )


def legend(colours: Colours, vendors: Sequence[str], y: float) -> Tuple[str, float]:
    """Vendor swatches, then what solid and hatched bars mean; returns the SVG and the height it takes."""
    items = [(vendor, colours.of(vendor), vendor, "vendor") for vendor in vendors]
    items += [("final", "#777777", "final (is_final true)", "final"), ("provisional", "url(#hatch-7)", "provisional (is_final false, may still change)", "provisional")]
    parts, x, row = [], 0.0, 0
    for key, fill, label, kind in items:
        width = 26 + 7.2 * len(label)
        if x + width > WIDTH - 20 and x > 0:
            x, row = 0.0, row + 1
        stroke = ' stroke="#444444"' if kind == "provisional" else ""
        parts.append(
            f'<g class="legend-item" data-legend="{escape(kind)}" data-vendor="{escape(key) if kind == "vendor" else ""}" transform="translate({20 + x:.1f},{y + row * 22:.1f})">'
            f'<rect width="14" height="14" fill="{fill}"{stroke}/>' + text(20, 11.5, label, "legend") + "</g>"
        )
        x += width + 16
    return "".join(parts), (row + 1) * 22


def svg(chart_id: str, title: str, height: float, body: str, colours: Colours) -> str:
    return (
        f'<svg id="{chart_id}" class="chart" role="img" aria-labelledby="{chart_id}-title" xmlns="http://www.w3.org/2000/svg" '
        f'width="{WIDTH}" height="{height:.0f}" viewBox="0 0 {WIDTH} {height:.0f}">'
        f'<title id="{chart_id}-title">{escape(title)}</title>{colours.patterns()}{body}</svg>'
    )


def empty(chart_id: str, title: str, colours: Colours, why: str) -> str:
    return svg(chart_id, title, 60, text(20, 36, why, "empty"), colours)


def value_axis(left: float, top: float, height: float, ticks: List[float], scale: float, plot_width: float, label: str) -> str:
    """Horizontal grid lines with their values on the left, and the axis title turned upright."""
    parts = []
    for tick in ticks:
        y = top + height - height * tick / ticks[-1]
        parts.append(f'<line class="grid" x1="{left:.1f}" x2="{left + plot_width:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(text(left - 6, y + 4, number(tick / scale if scale != 1 else tick, 1 if scale != 1 else 2 if ticks[-1] < 10 else 0), "tick", "end"))
    middle = top + height / 2
    parts.append(f'<text class="axis-title" text-anchor="middle" transform="translate({left - 58:.1f},{middle:.1f}) rotate(-90)">{escape(label)}</text>')
    parts.append(f'<line class="axis" x1="{left:.1f}" x2="{left + plot_width:.1f}" y1="{top + height:.1f}" y2="{top + height:.1f}"/>')
    return "".join(parts)


# ----- the charts ---------------------------------------------------------------------------------------------


def daily_chart(summary: Summary, colours: Colours) -> str:
    """Data used per day: one panel per vendor (each with its own scale: vendors differ by orders of
    magnitude), the days shared; the provisional part of a day hatched on top of its final part."""
    chart_id, title = "daily-usage", "Data used per vendor and day (data_total_bytes)"
    days = summary.days()
    vendors = [vendor for vendor in summary.vendors if any(key[0] == vendor for key in summary.daily_bytes)]
    if not days:
        return empty(chart_id, title, colours, "No daily data usage in the ledger.")
    left, right, panel, gap = 90.0, 20.0, 110.0, 46.0
    plot_width = WIDTH - left - right
    band = plot_width / len(days)
    keys, legend_height = legend(colours, vendors, 10)
    top = 10 + legend_height + 16
    parts = [keys]
    for vendor in vendors:
        figures = {day: split for (owner, day), split in summary.daily_bytes.items() if owner == vendor}
        largest = float(max(split.total for split in figures.values()))
        scale, prefix = byte_scale(largest)
        ticks = nice_ticks(largest / scale)
        ticks = [tick * scale for tick in ticks]
        total = sum((split.total for split in figures.values()), Decimal(0))
        provisional = sum((split.provisional for split in figures.values()), Decimal(0))
        heading = f"{vendor}: {amount_in(float(total), 'bytes')} over {len(figures)} days"
        if provisional:
            heading += f", {amount_in(float(provisional), 'bytes')} of it provisional"
        parts.append(f'<g class="panel" data-vendor="{escape(vendor)}">')
        parts.append(text(left, top + 14, heading, "panel-title"))
        plot_top = top + 24
        parts.append(value_axis(left, plot_top, panel, ticks, scale, plot_width, prefix + " per day"))
        for position, day in enumerate(days):
            split = figures.get(day)
            if split is None:
                continue
            x = left + position * band + band * 0.15
            base = plot_top + panel
            final_height = panel * float(split.final) / ticks[-1]
            provisional_height = panel * float(split.provisional) / ticks[-1]
            stamp = day.isoformat()
            if split.final:
                parts.append(bar(x, base - final_height, band * 0.7, final_height, colours.of(vendor), "none", vendor=vendor, period=stamp, final=True, value=split.final,
                                 tooltip=f"{vendor} {stamp}: {amount_in(float(split.final), 'bytes')} final"))
            if split.provisional:
                parts.append(bar(x, base - final_height - provisional_height, band * 0.7, provisional_height, colours.hatch(vendor), colours.of(vendor), vendor=vendor, period=stamp, final=False,
                                 value=split.provisional, tooltip=f"{vendor} {stamp}: {amount_in(float(split.provisional), 'bytes')} provisional"))
        parts.append("</g>")
        top = plot_top + panel + gap - 24
    # the day axis, once, under the last panel
    base = top + 24 - gap + 4
    every = max(1, math.ceil(len(days) / 16))
    for position, day in enumerate(days):
        if position % every == 0:
            parts.append(text(left + (position + 0.5) * band, base + 14, day.strftime("%m-%d"), "tick", "middle"))
    parts.append(text(left + plot_width / 2, base + 36, f"day (UTC), {days[0].isoformat()} to {days[-1].isoformat()}", "axis-title", "middle"))
    return svg(chart_id, title, base + 48, "".join(parts), colours)


def cost_chart(summary: Summary, colours: Colours) -> str:
    """Cost per month: one panel per currency, a bar per vendor in each month, the provisional part hatched."""
    chart_id, title = "monthly-cost", "Cost per month, per currency (as the vendors state it)"
    if not summary.monthly_cost:
        return empty(chart_id, title, colours, "No vendor in the ledger states a cost.")
    months = sorted({item.month for item in summary.monthly_cost})
    vendors = [vendor for vendor in summary.vendors if any(item.vendor == vendor for item in summary.monthly_cost)]
    left, right, panel = 90.0, 20.0, 130.0
    plot_width = WIDTH - left - right
    keys, legend_height = legend(colours, vendors, 10)
    parts, top = [keys], 10 + legend_height + 16
    group = plot_width / len(months)
    for currency in summary.currencies(summary.monthly_cost):
        items = [item for item in summary.monthly_cost if item.currency == currency]
        present = [vendor for vendor in vendors if any(item.vendor == vendor for item in items)]
        largest = float(max(item.cost.total for item in items))
        ticks = nice_ticks(largest * 1.25)  # room for the value labels
        parts.append(f'<g class="panel" data-currency="{escape(currency)}">')
        total = sum((item.cost.total for item in items), Decimal(0))
        parts.append(text(left, top + 14, f"{currency}: {number(float(total), 2)} in total", "panel-title"))
        plot_top = top + 24
        parts.append(value_axis(left, plot_top, panel, ticks, 1, plot_width, f"cost ({currency})"))
        width = min(60.0, group * 0.8 / max(1, len(present)))
        for month_index, month in enumerate(months):
            start = left + month_index * group + (group - width * len(present)) / 2
            for vendor_index, vendor in enumerate(present):
                item = next((entry for entry in items if entry.month == month and entry.vendor == vendor), None)
                if item is None:
                    continue
                x, base = start + vendor_index * width, plot_top + panel
                final_height = panel * float(item.cost.final) / ticks[-1]
                provisional_height = panel * float(item.cost.provisional) / ticks[-1]
                if item.cost.final:
                    parts.append(bar(x + 2, base - final_height, width - 4, final_height, colours.of(vendor), "none", vendor=vendor, period=month, final=True,
                                     value=item.cost.final, tooltip=f"{vendor} {month}: {number(float(item.cost.final), 2)} {currency} final"))
                if item.cost.provisional:
                    parts.append(bar(x + 2, base - final_height - provisional_height, width - 4, provisional_height, colours.hatch(vendor), colours.of(vendor), vendor=vendor,
                                     period=month, final=False, value=item.cost.provisional,
                                     tooltip=f"{vendor} {month}: {number(float(item.cost.provisional), 2)} {currency} provisional"))
                top_of_bar = base - final_height - provisional_height
                if item.cost.provisional:
                    parts.append(text(x + width / 2, top_of_bar - 4, f"incl. {number(float(item.cost.provisional), 2)} provisional", "value", "middle"))
                    top_of_bar -= 13
                parts.append(text(x + width / 2, top_of_bar - 4, number(float(item.cost.total), 2), "value", "middle"))
        for month_index, month in enumerate(months):
            parts.append(text(left + (month_index + 0.5) * group, plot_top + panel + 16, month, "tick", "middle"))
        parts.append("</g>")
        top = plot_top + panel + 30
    parts.append(text(left + plot_width / 2, top + 8, "month of the period's start (UTC)", "axis-title", "middle"))
    return svg(chart_id, title, top + 20, "".join(parts), colours)


def ranking_chart(chart_id: str, title: str, groups: List[Tuple[str, str, List[Subject]]], colours: Colours, vendors: Sequence[str], why_empty: str) -> str:
    """Horizontal bars, one per subject, largest first; `groups` are (heading, unit, subjects) panels."""
    if not any(subjects for _, _, subjects in groups):
        return empty(chart_id, title, colours, why_empty)
    shown = [vendor for vendor in vendors if any(subject.vendor == vendor for _, _, subjects in groups for subject in subjects)]
    keys, legend_height = legend(colours, shown, 10)
    parts, top = [keys], 10 + legend_height + 12
    label_width, right, row = 400.0, 120.0, 22.0
    plot_width = WIDTH - label_width - right
    for heading, unit, subjects in groups:
        if not subjects:
            continue
        largest = float(max(subject.amount.total for subject in subjects)) or 1.0
        parts.append(f'<g class="panel" data-unit="{escape(unit)}">')
        parts.append(text(20, top + 14, heading, "panel-title"))
        top += 24
        for rank, subject in enumerate(subjects, start=1):
            y = top + (rank - 1) * row
            label = f"{rank}. {subject.label}"
            label = label if len(label) <= LABEL_CHARACTERS else label[: LABEL_CHARACTERS - 1] + "…"
            parts.append(f'<g class="subject" data-rank="{rank}" data-vendor="{escape(subject.vendor)}">')
            parts.append(text(label_width - 8, y + 15, label, "label", "end"))
            final_width = plot_width * float(subject.amount.final) / largest
            provisional_width = plot_width * float(subject.amount.provisional) / largest
            tooltip = f"{subject.label}: {amount_in(float(subject.amount.total), unit)}"
            if subject.amount.final:
                parts.append(bar(label_width, y + 3, final_width, row - 6, colours.of(subject.vendor), "none", vendor=subject.vendor, period="all", final=True,
                                 value=subject.amount.final, tooltip=tooltip))
            if subject.amount.provisional:
                parts.append(bar(label_width + final_width, y + 3, provisional_width, row - 6, colours.hatch(subject.vendor), colours.of(subject.vendor),
                                 vendor=subject.vendor, period="all", final=False, value=subject.amount.provisional, tooltip=tooltip + " (partly provisional)"))
            parts.append(text(label_width + final_width + provisional_width + 6, y + 15, amount_in(float(subject.amount.total), unit), "value"))
            parts.append("</g>")
        parts.append("</g>")
        top += len(subjects) * row + 14
    return svg(chart_id, title, top + 6, "".join(parts), colours)


def totals_table(summary: Summary) -> str:
    rows = []
    for item in summary.totals:
        unit = item.unit
        rows.append(
            f'<tr data-vendor="{escape(item.vendor)}" data-metric="{escape(item.metric)}"><td>{escape(item.vendor)}</td><td><code>{escape(item.metric)}</code></td>'
            f"<td>{escape(item.granularity)}</td><td class=num>{item.periods}</td>"
            f"<td class=num>{escape(amount_in(float(item.amount.total), unit))} {'' if unit == 'bytes' else escape(unit)}</td>"
            f"<td class=num>{escape(amount_in(float(item.amount.provisional), unit))} {'' if unit == 'bytes' else escape(unit)}</td>"
            f'<td class=num>{escape(share(item.provisional_share))}</td></tr>'
        )
    if not rows:
        return "<p>The ledger is empty.</p>"
    return (
        '<table id="provisional"><thead><tr><th>vendor</th><th>metric</th><th>granularity</th><th>periods</th>'
        "<th>quantity</th><th>of which provisional</th><th>provisional share</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


STYLE = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", "Liberation Sans", sans-serif; margin: 24px auto;
       max-width: 1000px; padding: 0 16px; color: #1d1d1d; background: #ffffff; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin: 1.6em 0 0.4em; border-bottom: 1px solid #dddddd; padding-bottom: 0.2em; }
p.meta, p.note { color: #555555; font-size: 0.9em; margin: 0.3em 0; }
svg.chart { display: block; max-width: 100%; height: auto; }
svg text { font-family: inherit; font-size: 12px; fill: #333333; }
svg text.panel-title { font-size: 13px; font-weight: 600; fill: #1d1d1d; }
svg text.axis-title { font-size: 12px; fill: #555555; }
svg text.tick, svg text.value { font-size: 11px; fill: #555555; }
svg text.label { font-size: 12px; font-family: ui-monospace, "DejaVu Sans Mono", "Liberation Mono", monospace; }
svg text.empty { font-size: 14px; fill: #777777; }
svg line.grid { stroke: #e6e6e6; stroke-width: 1; }
svg line.axis { stroke: #888888; stroke-width: 1; }
table { border-collapse: collapse; font-size: 0.9em; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eeeeee; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
"""


def render_html(summary: Summary) -> str:
    """The whole page (UTF-8 text), self-contained."""
    colours = Colours(summary.vendors)
    bytes_groups = [("Top subjects by data used (data_total_bytes, every period in the ledger)", "bytes", summary.top_by_bytes)]
    cost_groups = [
        (f"Top subjects by cost in {currency}", currency, [subject for subject in summary.top_by_cost if subject.currency == currency])
        for currency in summary.currencies(summary.top_by_cost)
    ]
    provisional = [item for item in summary.totals if item.amount.provisional]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Usage report: {escape(", ".join(summary.vendors)) or "no vendor"}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>Usage report</h1>
<p class="meta">From the <code>usage_ledger</code> table in <code>{escape(summary.source)}</code>: {summary.ledger_rows:,} rows of
{len(summary.vendors)} vendor(s) ({escape(", ".join(summary.vendors)) or "none"}); made {escape(summary.generated_at)}.</p>
<p class="note">Solid bars are final figures; <strong>hatched, lighter bars are provisional</strong> (<code>is_final</code> false):
the vendor may still change them, and the next sync replaces them. Bytes are binary multiples (1 MiB = 1,048,576 bytes).</p>
<h2>Data used per day</h2>
{daily_chart(summary, colours)}
<h2>Cost per month</h2>
{cost_chart(summary, colours)}
<h2>Top subjects</h2>
{ranking_chart("top-bytes", "Top subjects by data used", bytes_groups, colours, summary.vendors, "No subject in the ledger used data.")}
{ranking_chart("top-cost", "Top subjects by cost", cost_groups, colours, summary.vendors, "No vendor in the ledger states a cost per subject.")}
<h2>Totals, and how much is still provisional</h2>
<p class="note">{len(provisional)} of {len(summary.totals)} vendor totals include provisional figures. Organization totals
(<code>*_total</code> metrics of an organization) are listed beside the per-subject metrics, not added to them.</p>
{totals_table(summary)}
</body>
</html>
"""
