"""Certificate selection by server name (core/tls/sni.py), as rows of
(installed certificates, default, server name -> certificate)."""

import pytest

from owncdn.core.tls.sni import CertNames, covers

INSTALLED = [
    ("apex", ["example.com", "www.example.com"]),
    ("wild", ["*.example.com"]),
    ("deep", ["*.img.example.com"]),
    ("other", ["other.test"]),
]

# RFC 6125 §6.4.3 and the order exact -> wildcard -> default.
SELECTION = [
    ("example.com", "apex"),                 # exact
    ("www.example.com", "apex"),             # exact beats the wildcard
    ("api.example.com", "wild"),             # one label under *.example.com
    ("API.Example.COM", "wild"),             # case-insensitive
    ("api.example.com.", "wild"),            # trailing dot
    ("a.b.example.com", None),               # a wildcard covers one label only
    ("x.img.example.com", "deep"),           # the wildcard one label up, not further
    ("img.example.com", "wild"),
    ("other.test", "other"),
    ("unknown.test", None),                  # no match, no default
    ("com", None),
    (None, None),                            # no SNI, no default
]


@pytest.mark.parametrize(("name", "expected"), SELECTION)
def test_selection_without_default(name, expected):
    index = CertNames()
    for cert_id, names in INSTALLED:
        index.add(cert_id, names)
    assert index.lookup(name) == expected


@pytest.mark.parametrize(("name", "expected"), SELECTION)
def test_the_default_answers_what_nothing_else_does(name, expected):
    index = CertNames()
    for cert_id, names in INSTALLED:
        index.add(cert_id, names)
    index.default = "other"
    assert index.lookup(name) == (expected or "other")


def test_last_installed_holder_wins_and_removal_hands_the_name_back():
    index = CertNames()
    index.add("old", ["example.com", "*.example.com"])
    index.add("new", ["example.com"])
    assert index.lookup("example.com") == "new"
    assert index.lookup("a.example.com") == "old"
    index.remove("new")
    assert index.lookup("example.com") == "old"
    index.remove("old")
    assert index.lookup("example.com") is None
    assert len(index) == 0


def test_replacing_a_certificate_drops_names_it_no_longer_has():
    index = CertNames()
    index.add("c", ["a.test", "b.test"])
    index.default = "c"
    index.add("c", ["a.test"])
    assert index.lookup("b.test") == "c"  # only through the default, which stays
    index.default = None
    assert index.lookup("b.test") is None
    assert index.lookup("a.test") == "c"


def test_thousands_of_names_are_dict_lookups():
    index = CertNames()
    for i in range(5000):
        index.add(f"c{i}", [f"site{i}.example.net", f"*.site{i}.example.net"])
    assert index.lookup("site4321.example.net") == "c4321"
    assert index.lookup("cdn.site17.example.net") == "c17"
    assert index.lookup("a.cdn.site17.example.net") is None


@pytest.mark.parametrize(("sans", "name", "ok"), [
    (["example.com"], "example.com", True),
    (["*.example.com"], "www.example.com", True),
    (["*.example.com"], "example.com", False),
    (["*.example.com"], "a.b.example.com", False),
    (["*.example.com"], "*.example.com", True),
    (["www.example.com"], "*.example.com", False),   # a wildcard name needs a wildcard certificate
    (["EXAMPLE.com."], "example.COM", True),
])
def test_covers(sans, name, ok):
    assert covers(sans, name) is ok
