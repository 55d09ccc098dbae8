"""UDP in batches (dns/udpbatch.py): one read of many datagrams from several
clients, each answered to its own address with its own id, drops in between."""

import socket

import dns.message
import pytest

from owncdn.dns import udpbatch
from owncdn.dns.wire import Answerer
from tests.dns.test_protocol import ZONE, ecs_option, query



class _Loop:
    """Readiness is driven by hand so that every datagram lands in one batch."""

    def add_reader(self, fd, callback):
        self.callback = callback

    def remove_reader(self, fd):
        pass


@pytest.fixture
def batch():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    answerer = Answerer(lambda: ZONE)
    server = udpbatch.BatchUdp(sock, answerer, _Loop())
    yield server, sock.getsockname()
    server.close()


def _clients(n):
    out = []
    for _ in range(n):
        c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        c.bind(("127.0.0.1", 0))
        c.settimeout(2)
        out.append(c)
    return out


def _query(name, qid, rdtype="A", **kw):
    message = dns.message.make_query(name, rdtype, **kw)
    message.id = qid
    return message.to_wire()


# rows: what each client sends; None means a datagram that gets no answer (QR set)
ROUNDS = [
    ["blog.cdn.test.", "blog.cdn.test.", "blog.cdn.test."],
    ["blog.cdn.test.", None, "www.cdn.test.", None, "nope.cdn.test."],
    [None, "blog.cdn.test.", "ecs", "blog.cdn.test."],
]


@pytest.mark.parametrize("names", ROUNDS)
def test_batch_answers_each_client_with_its_id(batch, names):
    server, address = batch
    clients = _clients(len(names))
    for _ in range(3):  # the second and third rounds are answered from remembered answers
        sent = {}
        for n, (client, name) in enumerate(zip(clients, names)):
            qid = 1000 + n * 7 + _
            if name is None:
                data = bytearray(_query("blog.cdn.test.", qid))
                data[2] |= 0x80  # a response: dropped
                client.sendto(bytes(data), address)
            elif name == "ecs":
                client.sendto(_query("blog.cdn.test.", qid, use_edns=0,
                                     options=[ecs_option("198.51.100.0", 24)]), address)
                sent[n] = (qid, "192.0.2.20")
            else:
                client.sendto(_query(name, qid), address)
                sent[n] = (qid, name)
        server.loop.callback()
        for n, client in enumerate(clients):
            if n not in sent:
                client.settimeout(0.05)
                with pytest.raises(socket.timeout):
                    client.recv(65535)
                continue
            reply = dns.message.from_wire(client.recv(65535))
            qid, expected = sent[n]
            assert reply.id == qid
            text = " ".join(r.to_text() for rrset in reply.answer for r in rrset)
            if expected == "192.0.2.20":
                assert text == "192.0.2.20"
            elif expected == "nope.cdn.test.":
                assert reply.rcode() == 3
            else:
                assert reply.question[0].name.to_text() == expected
                assert "192.0.2.10" in text
    for c in clients:
        c.close()


def test_new_zone_forgets_remembered_answers(batch):
    server, address = batch
    [client] = _clients(1)
    client.sendto(query("blog.cdn.test."), address)
    server.loop.callback()
    client.recv(65535)
    assert server.known
    client.sendto(_query("txt.cdn.test.", 5, "TXT"), address)
    server.loop.callback()
    assert [r.to_text() for rrset in dns.message.from_wire(client.recv(65535)).answer
            for r in rrset] == ['"hello"']
    server.answerer._zone_provider = lambda: ZONE.set_txt("txt.cdn.test.", ["changed"])
    client.sendto(_query("txt.cdn.test.", 6, "TXT"), address)
    server.loop.callback()
    reply = dns.message.from_wire(client.recv(65535))
    assert [r.to_text() for rrset in reply.answer for r in rrset] == ['"changed"']
    client.close()


def test_wrapped_answer_sees_every_query(batch):
    """Rule 5: with answer() wrapped (metrics), nothing is answered past it."""
    server, address = batch
    seen = []
    inner = server.answerer.answer

    def counting(data, client, udp=True):
        seen.append(data[:2])
        return inner(data, client, udp)

    server.answerer.answer = counting
    [client] = _clients(1)
    for qid in (1, 2, 3):
        client.sendto(_query("blog.cdn.test.", qid), address)
        server.loop.callback()
        assert dns.message.from_wire(client.recv(65535)).id == qid
    assert len(seen) == 3
    client.close()


def test_ipv6_clients_get_their_answers():
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.bind(("::1", 0))
    server = udpbatch.BatchUdp(sock, Answerer(lambda: ZONE), _Loop())
    clients = []
    for qid in (7, 8):
        c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        c.settimeout(2)
        c.sendto(_query("blog.cdn.test.", qid, "AAAA"), sock.getsockname()[:2])
        clients.append((qid, c))
    server.loop.callback()
    for qid, c in clients:
        reply = dns.message.from_wire(c.recv(65535))
        assert reply.id == qid
        assert [r.to_text() for rrset in reply.answer for r in rrset] == ["2001:db8::10"]
        c.close()
    assert server.clients and all(text == "::1" for text in server.clients.values())
    server.close()


def test_a_resolver_changing_its_source_port_still_gets_remembered_answers(batch):
    """Rule 4: resolvers use a random source port per query; the IP is the client."""
    server, address = batch
    clients = _clients(4)  # four ports of 127.0.0.1
    for round_ in range(2):
        for n, c in enumerate(clients):
            c.sendto(_query("blog.cdn.test.", 100 * round_ + n), address)
            server.loop.callback()
            assert dns.message.from_wire(c.recv(65535)).id == 100 * round_ + n
    assert len(server.known) == 1 and list(server.clients.values()) == ["127.0.0.1"]
    for c in clients:
        c.close()
