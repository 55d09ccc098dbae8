"""The zone as a value: what exists, routed names, copy-on-write TXT updates."""

import dns.name
import dns.rdatatype
import pytest

from owncdn.dns.zone import ClientSubnet, Record, Soa, Zone, ZoneError

SOA = Soa("ns1.cdn.test.", "hostmaster.cdn.test.", 2024010101, minimum=30)


def make_zone(**kw):
    calls = kw.pop("calls", [])

    def route(name, family, client, ecs):
        calls.append((name, family, client, ecs))
        return (["192.0.2.10"] if family == 4 else ["2001:db8::10"]), 20, 24

    return Zone(
        "cdn.test.", SOA, ["ns1.cdn.test."],
        records=[
            Record("ns1.cdn.test.", "A", 3600, "192.0.2.53"),
            Record("www.cdn.test.", "CNAME", 300, "blog.cdn.test."),
            Record("deep.sub.cdn.test.", "TXT", 300, '"x"'),
        ],
        routed=["blog.cdn.test."], route=route, **kw,
    )


N = dns.name.from_text


@pytest.mark.parametrize("name,exists", [
    ("cdn.test.", True),
    ("ns1.cdn.test.", True),
    ("blog.cdn.test.", True),          # routed only
    ("sub.cdn.test.", True),           # empty non-terminal
    ("NS1.CDN.test.", True),           # case-insensitive
    ("nope.cdn.test.", False),
])
def test_exists(name, exists):
    assert make_zone().exists(N(name)) is exists


def test_contains_only_names_under_origin():
    zone = make_zone()
    assert zone.contains(N("a.b.cdn.test."))
    assert not zone.contains(N("example.com."))


def test_routed_answer_comes_from_callback_with_client_and_ecs():
    calls = []
    zone = make_zone(calls=calls)
    ecs = ClientSubnet("198.51.100.0", 24)
    routed = zone.resolve_routed(N("blog.cdn.test."), dns.rdatatype.A, "127.0.0.1", ecs)
    assert [r.to_text() for r in routed.rrset] == ["192.0.2.10"]
    assert routed.rrset.ttl == 20 and routed.scope_prefix == 24
    assert calls == [("blog.cdn.test.", 4, "127.0.0.1", ecs)]


def test_set_txt_returns_new_zone_and_leaves_old_one():
    zone = make_zone()
    name = "_acme-challenge.blog.cdn.test."
    new = zone.set_txt(name, ["token-1", "token-2"])
    assert zone.get(N(name), dns.rdatatype.TXT) is None
    texts = sorted(r.to_text() for r in new.get(N(name), dns.rdatatype.TXT))
    assert texts == ['"token-1"', '"token-2"']
    replaced = new.set_txt(name, ["token-3"])
    assert [r.to_text() for r in replaced.get(N(name), dns.rdatatype.TXT)] == ['"token-3"']
    assert not replaced.remove_txt(name).exists(N(name))


def test_negative_soa_ttl_is_capped_by_minimum():
    assert make_zone().negative_soa().ttl == 30


@pytest.mark.parametrize("records,routed,message", [
    ([Record("x.example.com.", "A", 60, "192.0.2.1")], [], "outside the zone"),
    ([Record("x.cdn.test.", "MX", 60, "10 mail.cdn.test.")], [], "not supported"),
    ([Record("x.cdn.test.", "A", 60, "not-an-ip")], [], "not-an-ip"),
    ([Record("x.cdn.test.", "CNAME", 60, "y.cdn.test."),
      Record("x.cdn.test.", "TXT", 60, '"t"')], [], "CNAME cannot coexist"),
    ([Record("x.cdn.test.", "CNAME", 60, "y.cdn.test.")], ["x.cdn.test."], "CNAME cannot coexist"),
])
def test_bad_zone_data_fails_at_build_time(records, routed, message):
    with pytest.raises(ZoneError, match=message):
        Zone("cdn.test.", SOA, ["ns1.cdn.test."], records=records, routed=routed)


def test_cache_key_uses_route_key_only_when_names_are_routed():
    static = Zone("cdn.test.", SOA, ["ns1.cdn.test."])
    assert static.cache_key("192.0.2.1", None) is None
    keyed = make_zone(route_key=lambda client, ecs: client.rsplit(".", 1)[0])
    assert keyed.cache_key("192.0.2.1", None) == keyed.cache_key("192.0.2.7", None)
