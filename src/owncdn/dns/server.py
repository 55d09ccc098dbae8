"""The DNS listener: UDP and TCP (RFC 7766) on one host:port, around an ``Answerer``.

All protocol decisions live in ``wire``; this module only moves bytes.  One
datagram is one query (read and answered in batches by ``udpbatch`` on Linux); a TCP connection carries 2-byte length-prefixed
queries, answered in order as they arrive (pipelining), and is closed after
``idle_timeout`` seconds without a complete query.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Callable, Iterable

from owncdn.dns import udpbatch
from owncdn.dns.challenges import ChallengeRecords
from owncdn.dns.wire import Answerer
from owncdn.dns.zone import Zone

log = logging.getLogger(__name__)

MAX_TCP_BUFFER = 65535 + 2


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, answerer: Answerer) -> None:
        self.answerer = answerer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        response = self.answerer.answer(data, addr[0], udp=True)
        if response is not None:
            self.transport.sendto(response, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("dns udp: %s", exc)


class _Tcp(asyncio.Protocol):
    def __init__(self, answerer: Answerer, idle_timeout: float, conns: set) -> None:
        self.answerer = answerer
        self.idle_timeout = idle_timeout
        self.conns = conns
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.client = ""
        self.idle: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<dns tcp {self.client} buffered={len(self.buffer)}>"

    def connection_made(self, transport) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = peer[0] if peer else ""
        self.conns.add(self)
        self._arm()

    def connection_lost(self, exc) -> None:
        self.conns.discard(self)
        if self.idle is not None:
            self.idle.cancel()

    def _arm(self) -> None:
        if self.idle is not None:
            self.idle.cancel()
        loop = asyncio.get_running_loop()
        self.idle = loop.call_later(self.idle_timeout, self.transport.close)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > MAX_TCP_BUFFER * 4:
            self.transport.close()
            return
        responses = []
        while len(self.buffer) >= 2:
            size = int.from_bytes(self.buffer[:2], "big")
            if len(self.buffer) < 2 + size:
                break
            query = bytes(self.buffer[2:2 + size])
            del self.buffer[:2 + size]
            response = self.answerer.answer(query, self.client, udp=False)
            if response is not None:
                responses.append(len(response).to_bytes(2, "big") + response)
        if responses:
            self.transport.writelines(responses)
            self._arm()


class DnsServer:
    """``server = await DnsServer.start(zone, "127.0.0.1", 0)``; ``server.port``."""

    def __init__(self, zone_provider: Zone | Callable[[], Zone], idle_timeout: float) -> None:
        self._provider = _as_provider(zone_provider)
        # ACME DNS-01 records served over whatever zone is set (dns/challenges.py Rule 3)
        self.challenges = ChallengeRecords()
        self.answerer = Answerer(lambda: self.challenges.over(self._provider()))
        self.idle_timeout = idle_timeout
        self.host = ""
        self.port = 0
        self._udp: asyncio.DatagramTransport | udpbatch.BatchUdp | None = None
        self._tcp: asyncio.AbstractServer | None = None
        self._conns: set[_Tcp] = set()

    def __repr__(self) -> str:
        return f"<DnsServer {self.host}:{self.port} tcp_conns={len(self._conns)} {self.answerer!r}>"

    @classmethod
    async def start(
        cls,
        zone_provider: Zone | Callable[[], Zone],
        host: str = "127.0.0.1",
        port: int = 53,
        idle_timeout: float = 10.0,
    ) -> DnsServer:
        server = cls(zone_provider, idle_timeout)
        await server._listen(host, port)
        return server

    async def _listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        for attempt in range(20):  # port 0: the free TCP port may be taken for UDP
            self._tcp = await loop.create_server(
                lambda: _Tcp(self.answerer, self.idle_timeout, self._conns), host, port
            )
            bound = self._tcp.sockets[0].getsockname()[1]
            try:
                self._udp = await self._listen_udp(loop, host, bound)
            except OSError:
                self._tcp.close()
                await self._tcp.wait_closed()
                if port != 0 or attempt == 19:
                    raise
                continue
            self.host, self.port = host, bound
            return

    async def _listen_udp(self, loop, host: str, port: int):
        if not udpbatch.available():
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self.answerer), local_addr=(host, port)
            )
            return transport
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, _, _, _, address = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind(address)
        except OSError:
            sock.close()
            raise
        return udpbatch.BatchUdp(sock, self.answerer, loop)

    @property
    def zone(self) -> Zone:
        return self._provider()

    def set_zone(self, zone: Zone) -> None:
        """Serve ``zone`` from the next query on (one reference swap)."""
        self._provider = _as_provider(zone)

    def set_txt(self, name: str, values: Iterable[str]) -> None:
        self.set_zone(self.zone.set_txt(name, values))

    def remove_txt(self, name: str) -> None:
        self.set_zone(self.zone.remove_txt(name))

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for conn in list(self._conns):
                conn.transport.close()
            await self._tcp.wait_closed()


def _as_provider(zone: Zone | Callable[[], Zone]) -> Callable[[], Zone]:
    if isinstance(zone, Zone):
        return lambda: zone
    return zone
