"""gunicorn's gevent_pywsgi worker, with every response's status line, headers and body written
in ONE send (gunicorn_conf.py's default worker_class).

Why: gevent's pywsgi writes the headers with one send() and the body with a second. An instance
that dies between the two (a SIGKILL, an OOM kill, a crashed machine: on a busy host a process
can be descheduled right there) leaves the balancer holding a complete header and no body. nginx
has then already started the answer to its client, so it can no longer try the next instance
(`proxy_next_upstream` only covers failures before the header): it logs "upstream prematurely
closed connection while reading upstream" and the client gets a truncated answer (requests:
`ChunkedEncodingError('Response ended prematurely')` when nginx gzips). Written in one send, the
answer reaches the balancer whole or not at all, and "not at all" is retried on the next instance.

Once the send has returned, the kernel owns the bytes and delivers them even if the process is
killed next. On loopback (the balancer is on the same machine) one non-blocking send took 1 MB
whole (measured), above the largest page; a streamed answer (a generator) would still go out in
several sends, and no route streams.
"""
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler


class OneSendHandler(PyWSGIHandler):
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


class OneSendPyWSGIWorker(GeventPyWSGIWorker):
    wsgi_handler = OneSendHandler
