#!/usr/bin/env python3
"""Tiny real server for the kube-annex test pods.

    podserver.py NAME PORT[/tcp|/udp] ...

Every port is served on IPv4 (0.0.0.0) and IPv6 (::) with separate sockets.

TCP: the reply is the line "NAME <local-port>\\n", then the server closes.
     If the client sends an HTTP request ("GET / HTTP/1.1" ...), the reply is
     a valid HTTP/1.0 200 response whose body is that same line, so curl
     works. "GET /client" answers "NAME <local-port> <client-address>\\n"
     instead: the source address the pod sees (after any NAT on the way).
     If the client sends some other bytes first, the line is sent at
     once; if it sends nothing, the line is sent after PODSERVER_WAIT_MS
     milliseconds (default 100: long enough for an HTTP client's request to
     arrive, short enough for `socat -u TCP:ip:port -`). Load generators
     that care about latency should send a byte (e.g. "\\n") first.
UDP: every datagram is answered with the line.

Python standard library only; works with Python >= 3.6. Exits on SIGTERM.
A line "podserver NAME ready" is printed to stdout once every socket listens.
"""

import errno
import os
import selectors
import signal
import socket
import sys
import time

WAIT = int(os.environ.get("PODSERVER_WAIT_MS", "100")) / 1000.0
LINGER = 2.0          # seconds to drain a client after our FIN
MAX_REQUEST = 16384   # bytes of request we read before answering anyway
HTTP_METHODS = (b"GET ", b"HEAD ", b"POST ", b"PUT ", b"DELETE ", b"OPTIONS ", b"PATCH ")


def usage():
    sys.stderr.write(__doc__)
    sys.exit(2)


def parse_port(spec):
    port, _, proto = spec.partition("/")
    proto = proto or "tcp"
    if proto not in ("tcp", "udp") or not port.isdigit() or not 0 < int(port) < 65536:
        sys.stderr.write("podserver: bad port %r (want PORT[/tcp|/udp])\n" % spec)
        sys.exit(2)
    return int(port), proto


def listen(family, proto, port):
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(family, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
    if proto == "tcp":
        s.listen(512)
    s.setblocking(False)
    return s


class Conn:
    """One accepted TCP connection: wait for a request, answer, drain, close."""

    def __init__(self, sock, line, peer):
        self.sock = sock
        self.line = line
        self.peer = peer         # the client's address, as this pod sees it
        self.buf = b""
        self.out = None          # bytes still to send once we decided
        self.deadline = time.monotonic() + WAIT
        self.answered = False    # reply fully sent and FIN sent

    def decide(self, force=False):
        """Choose the reply; False while an HTTP request is still incomplete."""
        if self.buf.startswith(HTTP_METHODS):
            if b"\r\n\r\n" not in self.buf and b"\n\n" not in self.buf \
                    and len(self.buf) < MAX_REQUEST and not force:
                return False     # keep reading the request headers
            head = b"HEAD " if self.buf.startswith(b"HEAD ") else None
            body = self.line
            target = self.buf.split(b"\n", 1)[0].split(b" ")
            if len(target) > 1 and target[1] == b"/client":
                body = self.line.rstrip(b"\n") + b" " + self.peer.encode() + b"\n"
            hdr = ("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                   "Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)).encode()
            self.out = hdr + (b"" if head else body)
        else:
            self.out = self.line
        return True


class Server:
    def __init__(self, name, specs):
        self.name = name
        self.sel = selectors.DefaultSelector()
        self.conns = {}
        for port, proto in specs:
            for fam in (socket.AF_INET, socket.AF_INET6):
                try:
                    s = listen(fam, proto, port)
                except OSError as e:
                    if fam == socket.AF_INET6 and e.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                        continue  # no IPv6 in this namespace
                    sys.stderr.write("podserver %s: cannot listen on %s %d/%s: %s\n"
                                     % (name, "IPv6" if fam == socket.AF_INET6 else "IPv4",
                                        port, proto, e.strerror))
                    sys.exit(1)
                line = ("%s %d\n" % (name, port)).encode()
                cb = self.on_accept if proto == "tcp" else self.on_datagram
                self.sel.register(s, selectors.EVENT_READ, (cb, line))

    def on_accept(self, lsock, line):
        for _ in range(64):
            try:
                sock, peer = lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return   # e.g. ECONNABORTED, EMFILE: keep serving others
            sock.setblocking(False)
            c = Conn(sock, line, peer[0])
            self.conns[sock] = c
            self.sel.register(sock, selectors.EVENT_READ, (self.on_conn, c))

    def on_datagram(self, sock, line):
        for _ in range(64):
            try:
                _, peer = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                sock.sendto(line, peer)
            except OSError:
                pass

    def close(self, c):
        try:
            self.sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        self.conns.pop(c.sock, None)
        c.sock.close()

    def flush(self, c):
        """Send what is pending; on completion send FIN and start draining."""
        try:
            n = c.sock.send(c.out)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError:
            self.close(c)
            return
        c.out = c.out[n:]
        if c.out:
            self.sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, (self.on_conn, c))
            return
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(c)
            return
        c.answered = True
        c.deadline = time.monotonic() + LINGER
        self.sel.modify(c.sock, selectors.EVENT_READ, (self.on_conn, c))

    def on_conn(self, sock, c, mask=selectors.EVENT_READ):
        if mask & selectors.EVENT_READ:
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self.close(c)
                return
            if data == b"":           # peer closed its side
                if c.answered:
                    self.close(c)
                    return
                if c.out is None:
                    c.decide(force=True)
            elif data:
                if c.answered:
                    return            # drain and ignore
                if c.out is None:
                    c.buf += data
                    if not c.decide():
                        c.deadline = time.monotonic() + 1.0
                        return
        if c.out is not None and not c.answered:
            self.flush(c)

    def expire(self):
        now = time.monotonic()
        for c in list(self.conns.values()):
            if now < c.deadline:
                continue
            if c.answered:
                self.close(c)
            elif c.out is None:
                c.decide(force=True)
                self.flush(c)

    def next_timeout(self):
        if not self.conns:
            return None
        return max(0.0, min(c.deadline for c in self.conns.values()) - time.monotonic())

    def run(self):
        sys.stdout.write("podserver %s ready\n" % self.name)
        sys.stdout.flush()
        while True:
            for key, mask in self.sel.select(self.next_timeout()):
                cb, arg = key.data
                if cb == self.on_conn:
                    cb(key.fileobj, arg, mask)
                else:
                    cb(key.fileobj, arg)
            self.expire()


def main():
    if len(sys.argv) < 3 or sys.argv[1].startswith("-"):
        usage()
    name = sys.argv[1]
    specs = [parse_port(a) for a in sys.argv[2:]]
    srv = Server(name, specs)

    def on_term(signum, frame):
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    srv.run()


if __name__ == "__main__":
    main()
