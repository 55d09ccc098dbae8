"""The mirror list page: content negotiation (RFC 9110 §12.5.1) and what the page shows."""

import orjson
import pytest

from owncdn.core.routing.mirrorlist import mirror_list_html, mirror_list_json, prefers_json
from owncdn.core.routing.redirect import Mirror, Visitor

FRA = Mirror("fra", "fra.mirror.test", 50.11, 8.68, "Frankfurt", "DE")
IAD = Mirror("iad", "iad.mirror.test", 38.95, -77.45, "Ashburn", "US")
ODD = Mirror("odd", "odd.mirror.test", None, None, "<script>", None)


@pytest.mark.parametrize("accept, json", [
    (None, False),
    ("", False),
    ("*/*", False),
    ("application/json", True),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),  # a browser
    ("application/json, text/html;q=0.5", True),
    ("text/html, application/json;q=0.9", False),
    ("application/json;q=0", False),
    ("Application/JSON", True),
    ("application/json;q=oops", False),
])
def test_prefers_json(accept, json):
    assert prefers_json(accept) is json


def test_json_lists_every_mirror_and_marks_the_nearest():
    visitor = Visitor("198.51.100.7", (48.86, 2.35))
    doc = orjson.loads(mirror_list_json("downloads", [FRA, IAD, ODD], visitor, FRA, "Paris, FR"))
    assert doc["nearest"] == "fra" and doc["visitor"]["region"] == "Paris, FR"
    assert [(m["name"], m["hostname"], m["nearest"]) for m in doc["mirrors"]] == [
        ("fra", "fra.mirror.test", True), ("iad", "iad.mirror.test", False), ("odd", "odd.mirror.test", False)]
    assert 400 < doc["mirrors"][0]["distance_km"] < 500
    assert doc["mirrors"][2]["distance_km"] is None


def test_html_escapes_and_marks_the_nearest():
    page = mirror_list_html("downloads", [FRA, IAD, ODD], Visitor("192.0.2.1", None), IAD, None).decode()
    assert "&lt;script&gt;" in page and "<script>" not in page
    assert 'class="nearest"><td>iad <strong>(nearest to you)</strong>' in page
    assert "an unknown place" in page and "https://fra.mirror.test/" in page
