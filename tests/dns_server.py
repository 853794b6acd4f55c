"""A small authoritative DNS server for tests, built on dnspython, on UDP and TCP on loopback.

It answers TXT questions from `records` (name → values), NXDOMAIN for names it does not know and an
empty NOERROR answer for known names asked for another type. A value longer than 255 bytes goes out as
several character-strings, as a real zone would publish it. UDP answers larger than the client's
payload size (512 bytes without EDNS) are truncated with TC set, so the client retries over TCP.
It runs in its own threads, so anything can query it: the app under test, the CLI, a subprocess.
"""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections.abc import Iterable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.rrset

TXT_STRING_MAX = 255


def _name(text: str) -> dns.name.Name:
    return dns.name.from_text(text.rstrip(".") + ".")


class AuthoritativeDnsServer:
    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.port = 0
        self._records: dict[dns.name.Name, list[str]] = {}
        self._failing: set[dns.name.Name] = set()  # answered with SERVFAIL
        self._silent: set[dns.name.Name] = set()  # never answered (a timeout)
        self.udp_payload_limit: int | None = None  # lower than the client's to force TCP fallback
        self.queries: list[tuple[str, str, str]] = []  # (transport, name, type), for assertions
        self._lock = threading.Lock()
        self._servers: list[socketserver.BaseServer] = []

    # --- what the tests publish ---------------------------------------------------------------
    def publish(self, name: str, *values: str) -> None:
        with self._lock:
            self._records.setdefault(_name(name), []).extend(values)

    def replace(self, name: str, *values: str) -> None:
        with self._lock:
            self._records[_name(name)] = list(values)

    def publish_all(self, records: Iterable[dict]) -> None:
        """Publish DNS records as `domains/add` returns them ({name, value, ...})."""
        for record in records:
            self.publish(record["name"], record["value"])

    def fail(self, name: str) -> None:
        with self._lock:
            self._failing.add(_name(name))

    def ignore(self, name: str) -> None:
        with self._lock:
            self._silent.add(_name(name))

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self._failing.clear()
            self._silent.clear()
            self.queries.clear()
            self.udp_payload_limit = None

    @property
    def nameserver(self) -> tuple[str, int]:
        return (self.host, self.port)

    # --- answering ----------------------------------------------------------------------------
    def answer(self, wire: bytes, *, transport: str) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # not DNS: a real server drops it too
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        with self._lock:
            self.queries.append((transport, question.name.to_text(), dns.rdatatype.to_text(question.rdtype)))
            if question.name in self._silent:
                return None
            if question.name in self._failing:
                response.set_rcode(dns.rcode.SERVFAIL)
                return response.to_wire()
            values = list(self._records.get(question.name, ()))
            known = question.name in self._records
        if not known:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype in (dns.rdatatype.TXT, dns.rdatatype.ANY) and values:
            rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, dns.rdatatype.TXT)
            rrset.ttl = 60
            for value in values:
                rrset.add(self._txt(value))
            response.answer.append(rrset)
        if transport == "tcp":
            return response.to_wire()
        limit = query.payload if query.edns >= 0 else 512
        if self.udp_payload_limit is not None:
            limit = min(limit, self.udp_payload_limit)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()

    @staticmethod
    def _txt(value: str) -> dns.rdtypes.ANY.TXT.TXT:
        data = value.encode()
        strings = [data[i : i + TXT_STRING_MAX] for i in range(0, len(data), TXT_STRING_MAX)] or [b""]
        return dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings)

    # --- running ------------------------------------------------------------------------------
    def start(self) -> AuthoritativeDnsServer:
        server = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = server.answer(data, transport="udp")
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                # RFC 7766: each message is preceded by its two-byte length; a client may send several.
                conn = self.request
                conn.settimeout(5)
                try:
                    while header := _read_exactly(conn, 2):
                        data = _read_exactly(conn, struct.unpack("!H", header)[0])
                        if data is None:
                            return
                        reply = server.answer(data, transport="tcp")
                        if reply is None:
                            return
                        conn.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    return

        # One port for both transports, as DNS expects; retry if TCP finds the UDP port taken.
        for _attempt in range(20):
            udp = socketserver.ThreadingUDPServer((self.host, 0), Udp)
            try:
                tcp = socketserver.ThreadingTCPServer((self.host, udp.server_address[1]), Tcp)
            except OSError:
                udp.server_close()
                continue
            break
        else:  # pragma: no cover - the machine ran out of ports
            raise RuntimeError("no free port for the test DNS server")
        udp.daemon_threads = tcp.daemon_threads = True
        self.port = udp.server_address[1]
        self._servers = [udp, tcp]
        for srv in self._servers:
            threading.Thread(target=srv.serve_forever, name=f"dns-{type(srv).__name__}", daemon=True).start()
        return self

    def stop(self) -> None:
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()
        self._servers = []


def _read_exactly(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def unused_udp_port(host: str = "127.0.0.1") -> int:
    """A loopback port nobody listens on (bound, then released): queries to it are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
