"""UDP in batches: ``recvmmsg(2)`` and ``sendmmsg(2)`` on Linux, through ctypes.

A busy authoritative server spends more time in system calls than in answering
(a query takes one ``recvfrom`` and one ``sendto`` through asyncio).  Here one
wake-up of the event loop reads up to ``BATCH`` datagrams with one call, answers
them all, and sends every answer with one more call.

Rule 1: the socket is non-blocking and watched with ``loop.add_reader``; a
wake-up reads batches until the socket is empty (``EAGAIN``) or ``MAX_BATCHES``
were read, so a quiet server costs nothing, a busy one reads full batches, and a
flood still leaves the event loop to its other work (TCP, the control plane's
stream) between rounds.

Rule 2: the message headers, I/O vectors, address slots and buffers are
allocated once (``_Ring``).  A slot holds the largest datagram, so nothing is
truncated.  An answer goes out as two pieces: the query's own id, in place in the
receive slot, and the rest of the answer; it goes to the very address the query
came from (the send header points at the receive header's address slot).

Rule 3: a datagram whose answer is None (``Answerer`` Rule 1) gets nothing, and
the later answers of the batch move up a send slot.  If ``sendmmsg`` fails on a
message (an address the kernel refuses), that message is skipped and the rest
are sent; ``EAGAIN`` (a full send buffer) drops the rest of the batch, as a
router would: the client asks again.

Rule 4: client addresses are given to the answerer as text (as asyncio does);
the text of each raw address is remembered in a bounded map, because resolvers
keep asking from the same few addresses.  The port is not part of it: resolvers
pick a random source port for every query.

Rule 5: an answer the answerer says may be given again (``last_cacheable``) is
remembered under (query bytes after the id, raw client IP address), so a repeated
question costs a dictionary look-up and two integers written.  The memory is
emptied when the answerer's generation changes (new zone, edge health) and only
between batches, while no remembered answer is waiting to be sent.  With the
Prometheus counters on (``dns/metrics.py`` sets ``counts``), each remembered
answer carries its counter key and a replay adds one to it; anything else that
wraps ``answer()`` sees every datagram, as nothing is remembered then.

``available()`` is False where ``recvmmsg`` is missing; ``DnsServer`` then uses
an asyncio datagram endpoint.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import socket
import sys

from owncdn.dns.metrics import count_key

log = logging.getLogger(__name__)

BATCH = 64
MAX_BATCHES = 16  # per wake-up (Rule 1)
SLOT = 65536  # the largest datagram
NAME = 128  # sizeof(struct sockaddr_storage)
MSG_DONTWAIT = 0x40
MAX_NAMES = 65536

# struct mmsghdr on 64-bit Linux: struct msghdr (56 bytes) + unsigned msg_len, padded to 64
_MMSG = 64
_NAME_PTR, _NAMELEN, _IOV_PTR, _IOVLEN, _FLAGS, _MSG_LEN = 0, 8, 16, 24, 48, 56
_IOVEC = 16  # struct iovec: void *base, size_t len


def _libc():
    if not sys.platform.startswith("linux") or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        recv, send = libc.recvmmsg, libc.sendmmsg
    except (OSError, AttributeError):
        return None
    recv.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_void_p]
    send.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
    recv.restype = send.restype = ctypes.c_int
    return recv, send


_CALLS = _libc()


def available() -> bool:
    return _CALLS is not None


class _Ring:
    """Rule 2's memory: BATCH receive and send slots with their headers."""

    def __init__(self, namelen: int) -> None:
        self.rbuf = ctypes.create_string_buffer(BATCH * SLOT)
        self.sbuf = ctypes.create_string_buffer(BATCH * SLOT)
        self.names = ctypes.create_string_buffer(BATCH * NAME)
        self.rhdr = ctypes.create_string_buffer(BATCH * _MMSG)
        self.shdr = ctypes.create_string_buffer(BATCH * _MMSG)
        self.riov = ctypes.create_string_buffer(BATCH * _IOVEC)
        self.siov = ctypes.create_string_buffer(BATCH * 2 * _IOVEC)
        self.shdr_addr = ctypes.addressof(self.shdr)
        self.rdata = memoryview(self.rbuf).cast("B")
        self.sdata = memoryview(self.sbuf).cast("B")
        self.name_bytes = memoryview(self.names).cast("B")
        self.rhalf = memoryview(self.rhdr).cast("B").cast("I")  # 4-byte words of the headers
        self.swords = memoryview(self.shdr).cast("B").cast("Q")  # 8-byte words
        self.siov_words = memoryview(self.siov).cast("B").cast("Q")
        rwords = memoryview(self.rhdr).cast("B").cast("Q")
        riov_words = memoryview(self.riov).cast("B").cast("Q")
        shalf = memoryview(self.shdr).cast("B").cast("I")
        rbase, sbase = ctypes.addressof(self.rbuf), ctypes.addressof(self.sbuf)
        nbase = ctypes.addressof(self.names)
        riov_base, siov_base = ctypes.addressof(self.riov), ctypes.addressof(self.siov)
        self.name_addr = [nbase + i * NAME for i in range(BATCH)]
        for i in range(BATCH):
            riov_words[i * 2] = rbase + i * SLOT
            riov_words[i * 2 + 1] = SLOT
            h = i * _MMSG // 8
            # The address length is the socket family's, so the kernel writes back
            # what was there and nothing needs resetting between calls.
            rwords[h + _NAME_PTR // 8] = self.name_addr[i]
            self.rhalf[i * _MMSG // 4 + _NAMELEN // 4] = namelen
            rwords[h + _IOV_PTR // 8] = riov_base + i * _IOVEC
            rwords[h + _IOVLEN // 8] = 1
            self.swords[h + _NAME_PTR // 8] = self.name_addr[i]
            shalf[i * _MMSG // 4 + _NAMELEN // 4] = namelen
            self.swords[h + _IOV_PTR // 8] = siov_base + i * 2 * _IOVEC
            self.swords[h + _IOVLEN // 8] = 2
            self.siov_words[i * 4] = rbase + i * SLOT  # the query's id (Rule 2)
            self.siov_words[i * 4 + 1] = 2
        self.rbase, self.sbase = rbase, sbase
        # per slot: (index, where its length is in rhalf, its data, its address's bytes,
        # where its second iovec's base is in siov_words)
        self.slots = [(i, i * _MMSG // 4 + _MSG_LEN // 4, i * SLOT, i * NAME, i * 4 + 2)
                      for i in range(BATCH)]


class BatchUdp:
    """Serve ``answerer`` (a ``wire.Answerer``) on the bound UDP socket ``sock`` (Rules 1-5)."""

    def __init__(self, sock: socket.socket, answerer, loop) -> None:
        self.sock = sock
        self.answerer = answerer
        self.loop = loop
        self.fd = sock.fileno()
        self.namelen = 16 if sock.family == socket.AF_INET else 28  # sockaddr_in / sockaddr_in6
        self.family = sock.family
        self.ip_at = (4, 8) if sock.family == socket.AF_INET else (8, 24)  # the IP inside the sockaddr
        self.ring = _Ring(self.namelen)
        self.clients: dict[bytes, str] = {}
        self.known: dict[tuple[bytes, bytes], tuple] = {}  # Rule 5
        self.counts = None  # Rule 5: the metrics' counters, when they are on
        self.generation = -1
        self.moved: list[int] = []  # send slots pointed at another slot's address
        self.closed = False
        sock.setblocking(False)
        loop.add_reader(self.fd, self._readable)

    def __repr__(self) -> str:
        return f"<BatchUdp fd={self.fd} clients={len(self.clients)} known={len(self.known)}>"

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.fd)
            self.sock.close()

    def _readable(self) -> None:
        recvmmsg = _CALLS[0]
        rhdr = self.ring.rhdr
        for _ in range(MAX_BATCHES):  # Rule 1: then the loop's other work gets its turn
            if self.closed:
                return
            n = recvmmsg(self.fd, rhdr, BATCH, MSG_DONTWAIT, None)
            if n <= 0:
                if n < 0 and ctypes.get_errno() not in (errno.EAGAIN, errno.EINTR):
                    log.debug("dns udp: recvmmsg: %s", errno.errorcode.get(ctypes.get_errno()))
                return
            try:
                count = self._answer(n)
            except Exception:
                log.exception("dns udp: answering a batch")
                count = 0
            if count:
                self._send(count)
            if self.moved:  # every send slot points at its own address and id again
                for j in self.moved:
                    self.ring.swords[j * (_MMSG // 8) + _NAME_PTR // 8] = self.ring.name_addr[j]
                    self.ring.siov_words[j * 4] = self.ring.rbase + j * SLOT
                self.moved.clear()
            if n < BATCH:
                return

    def _answer(self, n: int) -> int:
        """Answer the ``n`` received datagrams into send slots; the number of answers."""
        ring = self.ring
        rdata, names, rhalf, siov = ring.rdata, ring.name_bytes, ring.rhalf, ring.siov_words
        answerer = self.answerer
        known = self.known
        if answerer.refresh() != self.generation or len(known) >= MAX_NAMES:
            self.generation = answerer.generation
            known.clear()  # between batches: no answer of the last one is still to be sent
        counts = self.counts
        if counts is None and getattr(answerer.answer, "__func__", None) is not type(answerer).answer:
            known.clear()  # Rule 5: something wraps answer() and must see every query
            remember = False
        else:
            remember = True
        ip_from, ip_to = self.ip_at
        count = 0
        for i, length_at, start, name_at, iov_at in ring.slots[:n]:
            end = start + rhalf[length_at]
            raw = bytes(names[name_at + ip_from:name_at + ip_to])
            key = (bytes(rdata[start + 2:end]), raw)
            entry = known.get(key)
            if entry is None:
                entry = self._slow(bytes(rdata[start:end]), raw, key, remember, count)
                if entry is None:
                    continue
            elif counts is not None:
                counts[entry[3]] += 1
            if count != i:  # an earlier datagram got no answer: slot ``count`` sends i's
                self._point(count, i)
                iov_at = count * 4 + 2
            siov[iov_at] = entry[1]
            siov[iov_at + 1] = entry[2]
            count += 1
        return count

    def _slow(self, data: bytes, raw: bytes, key, remember: bool, out: int):
        """(answer after the id, its address, its length) from the answerer, or None."""
        client = self.clients.get(raw)
        if client is None:
            client = socket.inet_ntop(self.family, raw)
            if len(self.clients) >= MAX_NAMES:
                self.clients.clear()
            self.clients[raw] = client
        response = self.answerer.answer(data, client, True)
        if response is None or len(response) > SLOT:
            return None
        if remember and self.answerer.last_cacheable and len(self.known) < MAX_NAMES:
            tail = response[2:]
            counted = count_key(data, response, True) if self.counts is not None else None
            entry = self.known[key] = (tail, ctypes.cast(ctypes.c_char_p(tail), ctypes.c_void_p).value, len(tail),
                                       counted)
            return entry
        self.ring.sdata[out * SLOT:out * SLOT + len(response)] = response
        return (None, self.ring.sbase + out * SLOT + 2, len(response) - 2, None)

    def _point(self, j: int, i: int) -> None:
        """Send slot ``j`` answers receive slot ``i`` (its address and id)."""
        ring = self.ring
        ring.swords[j * (_MMSG // 8) + _NAME_PTR // 8] = ring.name_addr[i]
        ring.siov_words[j * 4] = ring.rbase + i * SLOT
        self.moved.append(j)

    def _send(self, count: int) -> None:
        sendmmsg = _CALLS[1]
        first = 0
        while first < count:
            sent = sendmmsg(self.fd, self.ring.shdr_addr + first * _MMSG, count - first, 0)
            if sent > 0:
                first += sent
                continue
            err = ctypes.get_errno()
            if err == errno.EINTR:
                continue
            if err in (errno.EAGAIN, errno.EWOULDBLOCK):
                return  # Rule 3: the send buffer is full; drop the rest
            log.debug("dns udp: sendmmsg: %s", errno.errorcode.get(err, err))
            first += 1  # Rule 3: skip the message the kernel refused
