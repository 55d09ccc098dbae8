"""A hand-written SVG bar chart of scenario results, pure (returns the SVG text).

Rules:

1. One group of bars per city, one bar per scenario in the order given, height
   proportional to the value in milliseconds; a missing value draws no bar.
2. An optional floor per city (the physical floor of the request) is drawn as a
   dashed line across the city's group.
3. Every text is XML-escaped; the chart needs no fonts or scripts beyond SVG 1.1.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

COLOURS = ("#c0392b", "#e67e22", "#27ae60", "#2980b9", "#8e44ad")


def bar_chart(title: str, cities: list[str], series: dict[str, list[float | None]],
              floors: list[float | None] | None = None, unit: str = "ms") -> str:
    """An SVG chart: ``series`` maps a scenario name to one value per city (rules 1-3)."""
    legend = list(series) + (["floor (nearest edge)"] if floors else [])
    width, height, left, bottom, top = max(130 * len(legend) + 80, 90 * len(cities) + 120), 360, 60, 60, 50
    plot_h = height - bottom - top
    values = [v for vs in series.values() for v in vs if v is not None] + [f for f in floors or [] if f]
    peak = max(values, default=1.0) or 1.0
    group = (width - left - 20) / max(1, len(cities))
    bar = group * 0.8 / max(1, len(series))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2:.0f}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>']
    for i in range(5):
        y = top + plot_h - plot_h * i / 4
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - 20}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{peak * i / 4:.0f} {unit}</text>')
    for c, city in enumerate(cities):
        x0 = left + c * group + group * 0.1
        for s, (name, vals) in enumerate(series.items()):
            v = vals[c]
            if v is None:
                continue
            h = plot_h * v / peak
            out.append(f'<rect x="{x0 + s * bar:.1f}" y="{top + plot_h - h:.1f}" width="{bar * 0.9:.1f}" '
                       f'height="{h:.1f}" fill="{COLOURS[s % len(COLOURS)]}"><title>{escape(name)} '
                       f'{escape(city)}: {v:.0f} {unit}</title></rect>')
        if floors and floors[c]:
            y = top + plot_h - plot_h * floors[c] / peak
            out.append(f'<line x1="{x0:.1f}" y1="{y:.1f}" x2="{x0 + group * 0.8:.1f}" y2="{y:.1f}" '
                       f'stroke="black" stroke-dasharray="4 2"/>')
        out.append(f'<text x="{x0 + group * 0.4:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                   f'{escape(city)}</text>')
    for s, name in enumerate(legend):
        x = left + s * 130
        y = height - 18
        if floors and s == len(legend) - 1:
            out.append(f'<line x1="{x}" y1="{y - 4}" x2="{x + 12}" y2="{y - 4}" stroke="black" '
                       f'stroke-dasharray="4 2"/>')
        else:
            out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{COLOURS[s % len(COLOURS)]}"/>')
        out.append(f'<text x="{x + 16}" y="{y}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
