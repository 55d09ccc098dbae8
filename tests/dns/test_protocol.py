"""DNS protocol behaviour, as rows: direct calls of the wire function, then
raw packets over real loopback UDP and TCP sockets."""

import asyncio
import socket
import struct
import threading

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import uvloop

from owncdn.dns import wire
from owncdn.dns.server import DnsServer
from owncdn.dns.wire import Answerer, answer
from owncdn.dns.zone import Record, Soa, Zone

BIG = [Record("big.cdn.test.", "TXT", 300, f'"{i:03d}{"x" * 96}"') for i in range(30)]


def route(name, family, client, ecs):
    """Fake routing: clients in 198.51.100.0/24 go to edge 20, the rest to edge 10."""
    near = ecs is not None and ecs.address.startswith("198.51.100.")
    if family == 6:
        return ["2001:db8::20" if near else "2001:db8::10"], 20, 24 if ecs else None
    return ["192.0.2.20" if near else "192.0.2.10"], 20, 24 if ecs else None


ZONE = Zone(
    "cdn.test.",
    Soa("ns1.cdn.test.", "hostmaster.cdn.test.", 7, minimum=30),
    ["ns1.cdn.test.", "ns2.cdn.test."],
    records=[
        Record("ns1.cdn.test.", "A", 3600, "192.0.2.53"),
        Record("v6.cdn.test.", "AAAA", 300, "2001:db8::53"),
        Record("txt.cdn.test.", "TXT", 300, '"hello"'),
        Record("cdn.test.", "CAA", 300, '0 issue "letsencrypt.org"'),
        Record("www.cdn.test.", "CNAME", 300, "blog.cdn.test."),
        Record("alias.cdn.test.", "CNAME", 300, "www.cdn.test."),
        Record("dangling.cdn.test.", "CNAME", 300, "missing.cdn.test."),
        Record("out.cdn.test.", "CNAME", 300, "example.com."),
        *BIG,  # 30 records, about 3 KB
    ],
    routed=["blog.cdn.test."],
    route=route,
)


def ecs_option(address, srclen, family=1, scope=0):
    """A raw ECS option (so impossible ones can be built too)."""
    raw = socket.inet_pton(socket.AF_INET if family == 1 else socket.AF_INET6, address)
    data = struct.pack("!HBB", family, srclen, scope) + raw[: (srclen + 7) // 8]
    return dns.edns.GenericOption(dns.edns.ECS, data)


def query(name, rdtype="A", **kw):
    return dns.message.make_query(name, rdtype, **kw).to_wire()


def ask(data, udp=True, client="127.0.0.1"):
    out = answer(ZONE, data, client, udp)
    return None if out is None else dns.message.from_wire(out)


def texts(section):
    return sorted(r.to_text() for rrset in section for r in rrset)


# -- answers, as rows: (qname, qtype, rcode, AA, answer rdata, authority types)
ANSWERS = [
    ("blog.cdn.test.", "A", "NOERROR", True, ["192.0.2.10"], []),
    ("blog.cdn.test.", "AAAA", "NOERROR", True, ["2001:db8::10"], []),
    ("v6.cdn.test.", "AAAA", "NOERROR", True, ["2001:db8::53"], []),
    ("cdn.test.", "SOA", "NOERROR", True,
     ["ns1.cdn.test. hostmaster.cdn.test. 7 3600 600 1209600 30"], []),
    ("cdn.test.", "NS", "NOERROR", True, ["ns1.cdn.test.", "ns2.cdn.test."], []),
    ("txt.cdn.test.", "TXT", "NOERROR", True, ['"hello"'], []),
    ("cdn.test.", "CAA", "NOERROR", True, ['0 issue "letsencrypt.org"'], []),
    ("www.cdn.test.", "CNAME", "NOERROR", True, ["blog.cdn.test."], []),
    ("www.cdn.test.", "A", "NOERROR", True, ["192.0.2.10", "blog.cdn.test."], []),
    ("alias.cdn.test.", "A", "NOERROR", True,
     ["192.0.2.10", "blog.cdn.test.", "www.cdn.test."], []),
    ("out.cdn.test.", "A", "NOERROR", True, ["example.com."], []),
    ("dangling.cdn.test.", "A", "NXDOMAIN", True, ["missing.cdn.test."], ["SOA"]),
    ("nope.cdn.test.", "A", "NXDOMAIN", True, [], ["SOA"]),
    ("NOPE.cdn.TEST.", "TXT", "NXDOMAIN", True, [], ["SOA"]),
    ("txt.cdn.test.", "A", "NOERROR", True, [], ["SOA"]),           # NODATA
    ("blog.cdn.test.", "TXT", "NOERROR", True, [], ["SOA"]),        # NODATA, routed
    ("example.com.", "A", "REFUSED", False, [], []),
    ("blog.cdn.test.", "ANY", "NOERROR", True, ["192.0.2.10"], []),  # RFC 8482
    ("txt.cdn.test.", "ANY", "NOERROR", True, ['"hello"'], []),
]


@pytest.mark.parametrize("qname,qtype,rcode,aa,answers,authority", ANSWERS)
def test_answers(qname, qtype, rcode, aa, answers, authority):
    response = ask(query(qname, qtype))
    assert dns.rcode.to_text(response.rcode()) == rcode
    assert bool(response.flags & dns.flags.AA) is aa
    assert texts(response.answer) == sorted(answers)
    assert [dns.rdatatype.to_text(r.rdtype) for r in response.authority] == authority
    if authority:
        assert response.authority[0].ttl == 30  # SOA TTL capped by MINIMUM


# -- EDNS and ECS: (query builder, rcode, expected payload, expected ECS text)
def two_opts():
    data = bytearray(query("blog.cdn.test.", use_edns=0))
    data[10:12] = b"\x00\x02"
    return bytes(data) + data[-11:]


EDNS = [
    ("edns payload echo", lambda: query("blog.cdn.test.", use_edns=0, payload=4096),
     "NOERROR", 1232, None),
    ("no edns, no opt", lambda: query("blog.cdn.test."), "NOERROR", None, None),
    ("badvers", lambda: query("blog.cdn.test.", use_edns=1), "BADVERS", 1232, None),
    ("two opt", two_opts, "FORMERR", None, None),
    ("ecs echo with scope",
     lambda: query("blog.cdn.test.", use_edns=0, options=[ecs_option("198.51.100.0", 24)]),
     "NOERROR", 1232, "ECS 198.51.100.0/24 scope/24"),
    ("ecs on a static name: scope 0",
     lambda: query("txt.cdn.test.", "TXT", use_edns=0, options=[ecs_option("198.51.100.0", 24)]),
     "NOERROR", 1232, "ECS 198.51.100.0/24 scope/0"),
    ("ecs v6 echo",
     lambda: query("blog.cdn.test.", "AAAA", use_edns=0,
                   options=[ecs_option("2001:db8:1::", 48, family=2)]),
     "NOERROR", 1232, "ECS 2001:db8:1::/48 scope/24"),
    ("ecs prefix > 32", lambda: query("blog.cdn.test.", use_edns=0, options=[
        dns.edns.GenericOption(dns.edns.ECS, b"\x00\x01\x21\x00" + bytes(5))]),
     "FORMERR", None, None),
    ("ecs v6 prefix > 128", lambda: query("blog.cdn.test.", use_edns=0, options=[
        dns.edns.GenericOption(dns.edns.ECS, b"\x00\x02\x81\x00" + bytes(17))]),
     "FORMERR", None, None),
    ("ecs bits beyond prefix", lambda: query("blog.cdn.test.", use_edns=0, options=[
        dns.edns.GenericOption(dns.edns.ECS, b"\x00\x01\x09\x00\x01\xc0")]),
     "FORMERR", None, None),
]


@pytest.mark.parametrize("label,build,rcode,payload,ecs", EDNS, ids=[r[0] for r in EDNS])
def test_edns(label, build, rcode, payload, ecs):
    response = ask(build())
    assert dns.rcode.to_text(response.rcode()) == rcode
    if payload is None:
        assert response.edns == -1
    else:
        assert response.edns == 0 and response.payload == payload
    echoed = [o.to_text() for o in response.options]
    assert echoed == ([ecs] if ecs else [])


def test_ecs_subnet_reaches_route_callback():
    near = ask(query("blog.cdn.test.", use_edns=0, options=[ecs_option("198.51.100.0", 24)]))
    assert texts(near.answer) == ["192.0.2.20"]


@pytest.mark.parametrize("label,data,udp,tc,answers", [
    ("udp without edns: 512", query("big.cdn.test.", "TXT"), True, True, 0),
    ("udp with edns 4096: capped at 1232", query("big.cdn.test.", "TXT", use_edns=0,
                                                  payload=4096), True, True, 0),
    ("tcp: the whole set", query("big.cdn.test.", "TXT"), False, False, 30),
    ("small answer over udp", query("txt.cdn.test.", "TXT"), True, False, 1),
], ids=lambda v: v if isinstance(v, str) else None)
def test_truncation(label, data, udp, tc, answers):
    raw = answer(ZONE, data, "127.0.0.1", udp)
    assert len(raw) <= (512 if "without" in label else 1232) or not udp
    response = dns.message.from_wire(raw)
    assert bool(response.flags & dns.flags.TC) is tc
    assert len(texts(response.answer)) == answers


# -- malformed and unusual packets: (label, bytes, expected rcode or None for dropped)
GOOD = query("blog.cdn.test.")
HEADER = GOOD[:2] + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
MALFORMED = [
    ("empty", b"", None),
    ("truncated header", GOOD[:7], None),
    ("qr set", GOOD[:2] + bytes([GOOD[2] | 0x80]) + GOOD[3:], None),
    ("notify opcode", GOOD[:2] + bytes([(GOOD[2] & 0x87) | (4 << 3)]) + GOOD[3:], "NOTIMP"),
    ("status opcode", GOOD[:2] + bytes([(GOOD[2] & 0x87) | (2 << 3)]) + GOOD[3:], "NOTIMP"),
    ("header only, qdcount 1", HEADER, "FORMERR"),
    ("bad label length", HEADER + b"\x3fblog\x00\x00\x01\x00\x01", "FORMERR"),
    ("label length 64+ (reserved bits)", HEADER + b"\x45blog\x00\x00\x01\x00\x01", "FORMERR"),
    ("compression loop", HEADER + b"\xc0\x0c\x00\x01\x00\x01", "FORMERR"),
    ("trailing garbage", GOOD + b"\xde\xad", "FORMERR"),
    ("two questions", GOOD[:4] + b"\x00\x02" + GOOD[6:] + GOOD[12:], "FORMERR"),
    ("no question", GOOD[:4] + b"\x00\x00" + GOOD[6:12], "FORMERR"),
]


@pytest.mark.parametrize("label,data,rcode", MALFORMED, ids=[r[0] for r in MALFORMED])
def test_malformed(label, data, rcode):
    fast = Answerer(lambda: ZONE)
    for raw in (answer(ZONE, data, "127.0.0.1"), fast.answer(data, "127.0.0.1")):
        if rcode is None:
            assert raw is None
            continue
        assert raw[:2] == data[:2] and raw[2] & 0x80
        assert dns.rcode.to_text(raw[3] & 0x0F) == rcode


# -- fast path ------------------------------------------------------------------
FAST = [
    query("blog.cdn.test."),
    query("BLOG.cdn.Test."),
    query("blog.cdn.test.", "AAAA", use_edns=0),
    query("www.cdn.test.", use_edns=0, payload=4096),
    query("nope.cdn.test.", "TXT"),
    query("txt.cdn.test.", "A"),
    query("example.com."),
    query("big.cdn.test.", "TXT"),
    query("blog.cdn.test.", "ANY"),
]


@pytest.mark.parametrize("data", FAST, ids=range(len(FAST)))
@pytest.mark.parametrize("udp", [True, False])
def test_fast_path_is_byte_identical_to_slow_path(data, udp):
    answerer = Answerer(lambda: ZONE)
    first = answerer.answer(data, "127.0.0.1", udp)
    for query_id in (1, 0xBEEF):
        again = struct.pack("!H", query_id) + data[2:]
        fast = answerer.answer(again, "127.0.0.1", udp)
        assert fast == answer(ZONE, again, "127.0.0.1", udp)
        assert fast[:2] == again[:2] and fast[2:] == first[2:]
    assert answerer.hits == 2 and answerer.misses == 1


def test_fast_path_keeps_the_question_case_of_each_query():
    answerer = Answerer(lambda: ZONE)
    answerer.answer(query("blog.cdn.test."), "127.0.0.1")
    mixed = query("bLoG.CDN.test.")
    assert answerer.answer(mixed, "127.0.0.1") == answer(ZONE, mixed, "127.0.0.1")
    assert answerer.hits == 1


def test_fast_path_cache_follows_route_key_and_zone_changes():
    calls = []

    def counting(name, family, client, ecs):
        calls.append(client)
        return ["192.0.2.%d" % len(calls)], 20, None

    zone = Zone("cdn.test.", ZONE.soa, ZONE.ns, routed=["blog.cdn.test."], route=counting,
                route_key=lambda client, ecs: client.rsplit(".", 1)[0])
    current = [zone]
    answerer = Answerer(lambda: current[0])
    ips = [texts(ask_with(answerer, c).answer) for c in ("10.0.0.1", "10.0.0.2", "10.0.1.1")]
    assert ips == [["192.0.2.1"], ["192.0.2.1"], ["192.0.2.2"]]
    current[0] = zone.set_txt("_acme-challenge.cdn.test.", ["t"])
    assert texts(ask_with(answerer, "10.0.0.1").answer) == ["192.0.2.3"]


def ask_with(answerer, client):
    return dns.message.from_wire(answerer.answer(query("blog.cdn.test."), client))


@pytest.mark.parametrize("option, plain", [
    (ecs_option("198.51.100.0", 24), True),
    (ecs_option("2001:db8::", 48, family=2), True),
    (ecs_option("0.0.0.0", 0), True),
    (ecs_option("198.51.101.0", 23), False),           # RFC 7871 §6: bits beyond the prefix
    (ecs_option("198.51.100.0", 24, scope=8), False),  # a query's scope must be 0
    (ecs_option("198.51.100.0", 33), False),           # impossible prefix
])
def test_which_ecs_queries_the_fast_path_takes(option, plain):
    # The fast path takes well-formed single ECS options; anything else goes to the full
    # path, which answers FORMERR where RFC 7871 says so.
    data = query("blog.cdn.test.", use_edns=0, options=[option])
    assert (wire.plain_query_key(data, True) is not None) is plain


def test_ecs_fast_path_is_byte_identical_to_slow_path_and_keyed_by_subnet():
    answerer = Answerer(lambda: ZONE)
    for subnet in ("198.51.100.0", "203.0.113.0"):
        data = query("blog.cdn.test.", use_edns=0, options=[ecs_option(subnet, 24)])
        answerer.answer(data, "127.0.0.1")
        again = struct.pack("!H", 0x1234) + data[2:]
        fast = answerer.answer(again, "127.0.0.1")
        assert fast == answer(ZONE, again, "127.0.0.1")
        echoed = [o for o in dns.message.from_wire(fast).options if isinstance(o, dns.edns.ECSOption)]
        assert echoed[0].address == subnet
    assert (answerer.hits, answerer.misses) == (2, 2)


# -- over real sockets ---------------------------------------------------------
@pytest.fixture(scope="module")
def server():
    """A DnsServer on its own uvloop thread; tests talk to it with blocking sockets."""
    loop = uvloop.new_event_loop()
    started = threading.Event()
    box = {}

    def run():
        asyncio.set_event_loop(loop)
        box["server"] = loop.run_until_complete(
            DnsServer.start(ZONE, "127.0.0.1", 0, idle_timeout=0.5))
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(5)
    yield box["server"]
    asyncio.run_coroutine_threadsafe(box["server"].close(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def udp(server, data, timeout=1.0):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(data, ("127.0.0.1", server.port))
        try:
            return sock.recv(65535)
        except socket.timeout:
            return None


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def tcp(server, *messages):
    """Send every message pipelined on one connection; read one answer per message."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        sock.sendall(b"".join(struct.pack("!H", len(m)) + m for m in messages))
        out = []
        for _ in messages:
            size = struct.unpack("!H", recv_exact(sock, 2))[0]
            out.append(recv_exact(sock, size))
        return out


@pytest.mark.parametrize("qname,qtype,rcode,aa,answers,authority", ANSWERS)
def test_answers_over_udp(server, qname, qtype, rcode, aa, answers, authority):
    response = dns.message.from_wire(udp(server, query(qname, qtype)))
    assert dns.rcode.to_text(response.rcode()) == rcode
    assert texts(response.answer) == sorted(answers)


def test_truncated_over_udp_and_whole_over_tcp(server):
    data = query("big.cdn.test.", "TXT", use_edns=0)
    over_udp = dns.message.from_wire(udp(server, data))
    assert over_udp.flags & dns.flags.TC and not over_udp.answer
    [over_tcp] = tcp(server, data)
    response = dns.message.from_wire(over_tcp)
    assert not response.flags & dns.flags.TC and len(texts(response.answer)) == 30


def test_tcp_pipelines_several_queries_in_order(server):
    names = ["blog.cdn.test.", "txt.cdn.test.", "nope.cdn.test.", "cdn.test."]
    messages = [query(n, "A") for n in names]
    responses = [dns.message.from_wire(r) for r in tcp(server, *messages)]
    assert [r.question[0].name.to_text() for r in responses] == names
    assert [r.id for r in responses] == [dns.message.from_wire(m).id for m in messages]


def test_tcp_idle_connection_is_closed(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=3) as sock:
        assert sock.recv(1) == b""  # closed by the server after idle_timeout (0.5 s)


@pytest.mark.parametrize("label,data,rcode", MALFORMED, ids=[r[0] for r in MALFORMED])
def test_malformed_over_udp_then_server_still_answers(server, label, data, rcode):
    raw = udp(server, data, timeout=0.2 if rcode is None else 1.0)
    if rcode is None:
        assert raw is None
    else:
        assert dns.rcode.to_text(raw[3] & 0x0F) == rcode
    good = dns.message.from_wire(udp(server, GOOD))
    assert texts(good.answer) == ["192.0.2.10"]


def test_malformed_over_tcp_then_same_connection_answers(server):
    bad = [d for _, d, rcode in MALFORMED if rcode is not None]
    responses = tcp(server, *bad, GOOD)
    assert [r[3] & 0x0F for r in responses[:-1]] == [
        dns.rcode.from_text(rcode) for _, _, rcode in MALFORMED if rcode is not None]
    assert texts(dns.message.from_wire(responses[-1]).answer) == ["192.0.2.10"]


def test_set_txt_is_visible_immediately(server):
    name = "_acme-challenge.blog.cdn.test."
    before = dns.message.from_wire(udp(server, query(name, "TXT")))
    assert before.rcode() == dns.rcode.NXDOMAIN
    server.set_txt(name, ["challenge-token"])
    try:
        after = dns.message.from_wire(udp(server, query(name, "TXT")))
        assert texts(after.answer) == ['"challenge-token"']
        [over_tcp] = tcp(server, query(name, "TXT"))
        assert texts(dns.message.from_wire(over_tcp).answer) == ['"challenge-token"']
    finally:
        server.remove_txt(name)
    gone = dns.message.from_wire(udp(server, query(name, "TXT")))
    assert gone.rcode() == dns.rcode.NXDOMAIN


def test_repr_shows_state(server):
    assert f"127.0.0.1:{server.port}" in repr(server)


def test_repeated_identical_queries_are_answered_from_their_own_bytes():
    # The same query bytes from the same client: the stored answer with the id patched.
    # Another client (or another zone) never gets it.
    routes = []

    def by_client(name, family, client, ecs):
        routes.append(client)
        return ["192.0.2.%d" % (len(routes))], 20, None

    zone = Zone("cdn.test.", ZONE.soa, ZONE.ns, routed=["blog.cdn.test."], route=by_client)
    current = [zone]
    answerer = Answerer(lambda: current[0])
    data = query("blog.cdn.test.")
    first = answerer.answer(data, "10.0.0.1")
    again = answerer.answer(struct.pack("!H", 77) + data[2:], "10.0.0.1")
    other = answerer.answer(data, "10.0.0.2")
    current[0] = Zone("cdn.test.", ZONE.soa, ZONE.ns, routed=["blog.cdn.test."], route=by_client)
    after_change = answerer.answer(data, "10.0.0.1")
    assert again[:2] == struct.pack("!H", 77) and again[2:] == first[2:]
    assert texts(dns.message.from_wire(other).answer) == ["192.0.2.2"]
    assert texts(dns.message.from_wire(after_change).answer) == ["192.0.2.3"]
    assert routes == ["10.0.0.1", "10.0.0.2", "10.0.0.1"]
