"""The mirror list page of a redirect service, pure: HTML or JSON from the mirrors
and the visitor.

Rules:

1. JSON when the visitor's Accept ranks ``application/json`` above ``text/html``
   (q-values count; ``*/*`` and a missing Accept give HTML), else HTML.
2. Every mirror is listed in configured order with name, city, country, hostname
   and, for a located visitor, its distance; the one a redirect would choose is
   marked ``nearest``.
3. The visitor's guessed region (city and country from the geo database) and
   position are shown, so a visitor sent to a far mirror can see why. Every value
   is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import orjson

from owncdn.core.routing.redirect import Mirror, Visitor
from owncdn.core.routing.sites import distance_km


def prefers_json(accept: str | None) -> bool:
    """Rule 1."""
    if not accept:
        return False
    weights = {"application/json": -1.0, "text/html": -1.0}
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        media = media.lower()
        if media not in weights:
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[media] = max(weights[media], q)
    return weights["application/json"] > 0 and weights["application/json"] > weights["text/html"]


def mirror_entries(mirrors: Sequence[Mirror], visitor: Visitor, nearest: Mirror) -> list[dict]:
    """One dict per mirror (Rule 2)."""
    entries = []
    for m in mirrors:
        km = None
        if visitor.position is not None and m.placed:
            km = round(distance_km(visitor.position[0], visitor.position[1], m.lat, m.lon))
        entries.append({"name": m.name, "city": m.city, "country": m.country, "hostname": m.hostname,
                        "distance_km": km, "nearest": m is nearest})
    return entries


def mirror_list_json(service: str, mirrors: Sequence[Mirror], visitor: Visitor, nearest: Mirror,
                     region: str | None) -> bytes:
    position = visitor.position
    return orjson.dumps({
        "service": service,
        "visitor": {"address": visitor.address, "region": region,
                    "position": None if position is None else {"lat": position[0], "lon": position[1]}},
        "nearest": nearest.name,
        "mirrors": mirror_entries(mirrors, visitor, nearest),
    }, option=orjson.OPT_INDENT_2) + b"\n"


def mirror_list_html(service: str, mirrors: Sequence[Mirror], visitor: Visitor, nearest: Mirror,
                     region: str | None, scheme: str = "https") -> bytes:
    e = html.escape
    where = region or "an unknown place"
    if visitor.position is not None:
        where += " (%.2f, %.2f)" % visitor.position
    rows = []
    for entry in mirror_entries(mirrors, visitor, nearest):
        mark = " <strong>(nearest to you)</strong>" if entry["nearest"] else ""
        km = "" if entry["distance_km"] is None else f"{entry['distance_km']:,} km"
        host = e(entry["hostname"])
        css = ' class="nearest"' if entry["nearest"] else ""
        rows.append(
            f'<tr{css}><td>{e(entry["name"])}{mark}</td>'
            f'<td>{e(entry["city"] or "")}</td><td>{e(entry["country"] or "")}</td>'
            f'<td><a href="{e(scheme)}://{host}/">{host}</a></td><td>{km}</td></tr>')
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Mirrors of {e(service)}</title>
<style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.3em 1em;text-align:left}}.nearest{{background:#e8f4e8}}</style>
</head><body>
<h1>Mirrors of {e(service)}</h1>
<p>Your address {e(visitor.address)} looks like {e(where)}; downloads go to <strong>{e(nearest.name)}</strong>
({e(nearest.hostname)}).</p>
<table><tr><th>mirror</th><th>city</th><th>country</th><th>hostname</th><th>distance</th></tr>
{chr(10).join(rows)}
</table>
</body></html>
"""
    return page.encode()
