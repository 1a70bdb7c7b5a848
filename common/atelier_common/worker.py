"""gunicorn's gevent pywsgi worker, whose own answers follow the contract too, and which
stops promptly.

- Shutdown (SIGTERM: `make down`, a deploy): gunicorn waits until every connection has ended,
  and a balancer keeps idle keep-alive connections open for a minute, so each instance used to
  sit out the whole graceful_timeout (20 s). Here, once the worker stops accepting, connections
  that wait for their next request are closed (requests in flight still finish); the worker
  exits as soon as the last answer is sent.
- gevent's HTTP parser answers what never reaches Flask itself: more than 100 header lines, a
malformed request line or header, a request line over 8 KB (behind nginx, these are the few it
lets through). Its answers have an empty or plain-text body; here they carry the contract's
JSON error shape, and a 500 of the server itself says no more than Flask's would."""
import json
import socket
import weakref

import gevent
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

_MESSAGES = {
    "400": ("400 Bad Request", {"message": "The request could not be read.",
                                "errors": {"request": ["malformed HTTP request"]}}),
    "414": ("414 Request-URI Too Long", {"message": "The request line is too long."}),
    "500": ("500 Internal Server Error", {"message": "internal server error"}),
}


def _raw_response(code: str) -> bytes:
    status, body = _MESSAGES[code]
    payload = json.dumps(body).encode()
    return (f"HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload


_RAW = {code: _raw_response(code) for code in _MESSAGES}


class ContractHandler(PyWSGIHandler):
    connections = weakref.WeakSet()  # the worker's open connections (one handler each)
    waiting = False                  # between requests: nothing in flight on this connection

    def handle(self):
        self.connections.add(self)
        super().handle()

    def read_requestline(self):
        self.waiting = True
        try:
            return super().read_requestline()
        finally:
            self.waiting = False

    def close_if_waiting(self) -> bool:
        if not self.waiting or self.socket is None:
            return False
        try:
            self.socket.shutdown(socket.SHUT_RDWR)  # the pending read sees EOF: the handler ends
        except OSError:
            pass
        return True

    def handle_one_request(self):
        result = super().handle_one_request()
        if isinstance(result, tuple) and result[0] in _RAW:  # (status, raw bytes) of an error
            return result[0], _RAW[result[0]]
        return result

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


class ContractWorker(GeventPyWSGIWorker):
    wsgi_handler = ContractHandler

    def run(self):
        gevent.spawn(self._close_idle_connections_on_shutdown)
        super().run()

    def _close_idle_connections_on_shutdown(self):
        while self.alive:
            gevent.sleep(0.2)
        while True:  # until the worker exits: a connection may finish its request later
            for handler in list(ContractHandler.connections):
                handler.close_if_waiting()
            gevent.sleep(0.1)
