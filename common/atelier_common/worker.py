"""gunicorn's gevent pywsgi worker, whose own answers follow the contract too, which writes
each answer in one send, and which stops promptly.

- One send per answer: gevent's pywsgi writes the status line and headers with one send and the
  body with a second. An instance that dies between the two (SIGKILL, the OOM killer, a crashed
  machine; a busy host can deschedule the process right there) leaves the balancer a complete
  header and no body. nginx has then already started its answer to the client, so it can no
  longer try the next instance (`proxy_next_upstream` only covers failures before the header):
  it logs "upstream prematurely closed connection while reading upstream" and the client gets a
  truncated answer (requests: `ChunkedEncodingError('Response ended prematurely')` when nginx
  gzips). Written in one send, the answer reaches the balancer whole or not at all, and "not at
  all" is retried on the next instance. Once the send has returned the kernel owns the bytes and
  delivers them even if the process is killed next; on loopback (the balancer is on the same
  machine) one non-blocking send took 1 MB whole (measured), above the largest page. A streamed
  answer (a generator) would still go out in several sends; no route streams.

- Shutdown (SIGTERM: `make down`, a deploy): gunicorn waits until every connection has ended,
  and a balancer keeps idle keep-alive connections open, so each instance used to sit out the
  whole graceful_timeout (20 s). Closing idle connections at once is not the answer: nginx may
  be sending its next request on one at that very instant, gets "upstream prematurely closed
  connection", and must answer a write with 502 (it cannot know whether the write reached us,
  so it never retries one). So, once the worker stops accepting: a request that still arrives
  on a kept-alive connection is answered normally, with `Connection: close` (nginx then never
  reuses that connection: race-free), and a connection is closed by us only after it has been
  idle for DRAIN_IDLE_SECONDS (4 s), longer than the balancer's upstream `keepalive_timeout`
  (2 s, infra/nginx/nginx.conf.template), so nginx closes its idle ones first. Requests in
  flight finish; the worker exits when the last connection has gone, a few seconds after the
  signal.
- gevent's HTTP parser answers what never reaches Flask itself: more than 100 header lines, a
malformed request line or header, a request line over 8 KB (behind nginx, these are the few it
lets through). Its answers have an empty or plain-text body; here they carry the contract's
JSON error shape, and a 500 of the server itself says no more than Flask's would.
- The parser is strict where two HTTP parsers could disagree on where a request ends (request
  smuggling, should anything but the balancer ever reach an instance): Content-Length together
  with Transfer-Encoding, two Content-Lengths, a length that is not plain digits (`+70`), a
  Transfer-Encoding other than `chunked`, a CR or NUL inside a header, a folded header line, a
  header name that is not a token: all 400. A GET, HEAD or OPTIONS with a body is 400 too (the
  balancer refuses it the same way).
- Each request has a deadline as a whole: from its first byte, the request line, headers and
  body must have arrived within REQUEST_DEADLINE_SECONDS (10 s), else 408 and the connection is
  closed (a slow client cannot hold a connection by trickling bytes). The body is read before
  the application runs (at most MAX_BODY_BYTES + 1 bytes, so a larger one is still 413)."""
import io
import json
import os
import re
import socket
import time
import weakref

import gevent
from gevent.pywsgi import OldMessage, _InvalidClientRequest
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler, PyWSGIServer

_MESSAGES = {
    "400": ("400 Bad Request", {"message": "The request could not be read.",
                                "errors": {"request": ["malformed HTTP request"]}}),
    "408": ("408 Request Timeout", {"message": "The request took too long to arrive."}),
    "414": ("414 Request-URI Too Long", {"message": "The request line is too long."}),
    "500": ("500 Internal Server Error", {"message": "internal server error"}),
}


def _raw_response(code: str) -> bytes:
    status, body = _MESSAGES[code]
    payload = json.dumps(body).encode()
    return (f"HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload


_RAW = {code: _raw_response(code) for code in _MESSAGES}


# Above the balancer's upstream keepalive_timeout: nginx closes its idle connections before we do.
DRAIN_IDLE_SECONDS = float(os.environ.get("DRAIN_IDLE_SECONDS", "4"))
# From a request's first byte to its last (request line, headers, body).
REQUEST_DEADLINE_SECONDS = float(os.environ.get("REQUEST_DEADLINE_SECONDS", "10"))
# Read before the application runs; one byte more than the largest body, so Flask still says 413.
MAX_BODY_BYTES = int(os.environ.get("MAX_BODY_BYTES", "65536"))

_MAX_HEADER_LINE = 65536  # as Python's own parser
_MAX_HEADERS = 100
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_DIGITS = re.compile(rb"[0-9]{1,15}\Z")
_BODYLESS = frozenset(("GET", "HEAD", "OPTIONS"))


class BodyUnreadable(BaseException):
    """The body's framing was broken (400)."""


class RequestTooSlow(BaseException):
    """The request's deadline passed before it had arrived (a BaseException: gevent's parser
    turns any Exception into a 400)."""


def check_framing(command: str, lengths: list, codings: list) -> None:
    """Raise ValueError (gevent: 400) where two parsers could disagree on where the request ends
    (the raw values of every Content-Length and Transfer-Encoding line), and for a body on a
    method that has none."""
    if lengths and codings:
        raise _InvalidClientRequest("Content-Length with Transfer-Encoding")
    if len(lengths) > 1 or len(codings) > 1:
        raise _InvalidClientRequest("repeated framing header")
    if lengths and not _DIGITS.match(lengths[0]):
        raise _InvalidClientRequest("malformed Content-Length")
    if codings and codings[0].lower() != b"chunked":
        raise _InvalidClientRequest("unsupported Transfer-Encoding")
    if command in _BODYLESS and (codings or (lengths and int(lengths[0]) > 0)):
        raise _InvalidClientRequest("a body on a method that has none")


class ContractHandler(PyWSGIHandler):
    connections = weakref.WeakSet()  # the worker's open connections (one handler each)
    draining = False                 # the worker stopped accepting (SIGTERM): answer, then close
    waiting = False                  # between requests: nothing in flight on this connection
    idle_since = 0.0                 # when it started waiting (time.monotonic())

    def handle(self):
        self.connections.add(self)
        super().handle()

    deadline = None                  # gevent.Timeout of the request being read, once it began

    def read_requestline(self):
        self.idle_since = time.monotonic()
        self.waiting = True
        try:
            self.rfile.peek(1)  # idle until the next request's first byte (or EOF)
        except OSError:
            return ""
        finally:
            self.waiting = False
        self.deadline = gevent.Timeout.start_new(REQUEST_DEADLINE_SECONDS, RequestTooSlow)
        return super().read_requestline()

    def MessageClass(self, fp, *args):
        """The headers, each raw line checked first (Python's parser would take a bare CR for
        the end of a line and drop what follows, where another parser would not), the framing
        headers counted on the way; then parsed once, as gevent does."""
        lines = []
        lengths, codings = [], []
        while True:
            line = fp.readline(_MAX_HEADER_LINE + 1)
            if len(line) > _MAX_HEADER_LINE or len(lines) > _MAX_HEADERS:
                raise _InvalidClientRequest("headers too large")
            lines.append(line)
            if line in (b"\r\n", b"\n", b""):
                break
            content = line[:-2] if line.endswith(b"\r\n") else line.rstrip(b"\n")
            name, colon, value = content.partition(b":")
            if (not colon or b"\r" in content or b"\x00" in content
                    or not _TOKEN.match(name.decode("latin-1"))):
                raise _InvalidClientRequest("malformed header line")
            lowered = name.lower()
            if lowered == b"content-length":
                lengths.append(value.strip())
            elif lowered == b"transfer-encoding":
                codings.append(value.strip())
        check_framing(self.command, lengths, codings)  # before gevent drops a length beside chunked
        # Every line is `name:value` now (a folded line, its name not a token, was refused): the
        # message email.parser would build (compat32: the value's leading blanks and the line end
        # dropped), without running its parser (~15 µs a request).
        message = OldMessage()
        for line in lines[:-1]:
            name, _, value = line.decode("latin-1").partition(":")
            message.set_raw(name, value.lstrip(" \t").rstrip("\r\n"))
        return message

    def get_environ(self):
        """The WSGI environ, its body already read in full within the request's deadline."""
        environ = super().get_environ()
        body_input = environ["wsgi.input"]
        if self.content_length or environ.get("HTTP_TRANSFER_ENCODING"):
            try:
                body = body_input.read(MAX_BODY_BYTES + 1)
            except (OSError, ValueError):  # a malformed chunk, or a body cut short
                raise BodyUnreadable() from None
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            if len(body) > MAX_BODY_BYTES:
                self.close_connection = True  # the rest of the body is never read
        self._stop_deadline()
        return environ

    def _stop_deadline(self):
        if self.deadline is not None:
            self.deadline.close()
            self.deadline = None

    def start_response(self, status, headers, exc_info=None):
        if self.draining:  # the balancer must not send another request on this connection
            headers = [(name, value) for name, value in headers if name.lower() != "connection"]
            headers.append(("Connection", "close"))
        return super().start_response(status, headers, exc_info)

    def close_if_idle(self, seconds: float) -> bool:
        """Close the connection when it has waited `seconds` for its next request."""
        if not self.waiting or self.socket is None or time.monotonic() - self.idle_since < seconds:
            return False
        try:
            self.socket.shutdown(socket.SHUT_RDWR)  # the pending read sees EOF: the handler ends
        except OSError:
            pass
        return True

    def handle_one_request(self):
        try:
            result = super().handle_one_request()
        except RequestTooSlow:
            self.close_connection = True
            return "408", _RAW["408"]
        except BodyUnreadable:
            self.close_connection = True
            return "400", _RAW["400"]
        finally:
            self._stop_deadline()
        if isinstance(result, tuple) and result[0] in _RAW:  # (status, raw bytes) of an error
            return result[0], _RAW[result[0]]
        return result

    def _write_with_headers(self, data):
        # gevent's own version, except that the first body chunk joins the headers' buffer.
        self.headers_sent = True
        self.finalize_headers()
        answer = bytearray(b"HTTP/1.1 ")
        answer += self.status
        answer += b"\r\n"
        for header, value in self.response_headers:
            answer += header
            answer += b": "
            answer += value
            answer += b"\r\n"
        answer += b"\r\n"
        if data:
            if self.response_use_chunked:
                answer += b"%x\r\n" % len(data)
                answer += data
                answer += b"\r\n"
            else:
                answer += data
        self._sendall(answer)

    def _send_error_response_if_possible(self, error_code):
        code = str(error_code)
        if self.response_length or code not in _MESSAGES:
            return super()._send_error_response_if_possible(error_code)
        status, body = _MESSAGES[code]
        payload = json.dumps(body).encode()
        try:
            self.start_response(status, [("Content-Type", "application/json"),
                                         ("Content-Length", str(len(payload))),
                                         ("Connection", "close")])
            self.write(payload)
        except OSError:
            self.close_connection = True


class DrainingServer(PyWSGIServer):
    def close(self):
        """Stop accepting, but first take the connections the kernel already accepted for us
        (its backlog): closing the listener resets them, after the balancer may have sent its
        request on them ("Connection reset by peer": a 502 for a write). Answered like any other
        request during the drain. What connects between this last accept and the close is
        still reset (a window of microseconds, not of a busy event loop's turn)."""
        while self.socket is not None:
            try:
                pending = self.do_read()
            except OSError:
                break
            if not pending:
                break
            self.do_handle(*pending)
        super().close()


class ContractWorker(GeventPyWSGIWorker):
    wsgi_handler = ContractHandler
    server_class = DrainingServer

    def run(self):
        gevent.spawn(self._drain_on_shutdown)
        super().run()

    def _drain_on_shutdown(self):
        while self.alive:
            gevent.sleep(0.1)
        ContractHandler.draining = True
        while True:  # until the worker exits: the balancer closes its idle connections first
            for handler in list(ContractHandler.connections):
                handler.close_if_idle(DRAIN_IDLE_SECONDS)
            gevent.sleep(0.2)
