"""The instances' worker (atelier_common.worker) writes each answer (status line, headers, body) in one send: an instance
killed between a header send and a body send would leave the balancer a header and no body,
too late to try the next instance (tests/fleet/test_failover.py kills one under load)."""
import socket

import pytest
from gevent.pywsgi import WSGIHandler

from atelier_common.worker import ContractHandler


def answer(handler_class, status: str, headers: list, body_chunks):
    """The sends a handler makes to answer one HTTP/1.1 request with `body_chunks`."""
    ours, _theirs = socket.socketpair()
    with ours, _theirs:
        handler = handler_class(ours, ("127.0.0.1", 1), server=None)
        handler.request_version = "HTTP/1.1"
        handler.close_connection = False
        handler.result = body_chunks
        sends = []
        handler._sendall = lambda data: sends.append(bytes(data))
        handler.start_response(status, headers)
        for chunk in body_chunks:
            handler.write(chunk)
        if not handler.headers_sent:  # what pywsgi does for an empty body
            handler.write(b"")
        return sends


def test_a_json_answer_is_one_send_with_its_length():
    body = b'{"product_id": "1", "results": []}'
    sends = answer(ContractHandler, "200 OK", [("Content-Type", "application/json"),
                                              ("Content-Length", str(len(body)))], [body])
    assert len(sends) == 1
    head, sent_body = sends[0].split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: %d" % len(body) in head
    assert sent_body == body


def test_gevents_own_handler_sends_the_header_apart():
    """Why the subclass exists (if gevent ever joins them, the subclass can go)."""
    body = b"{}"
    sends = answer(WSGIHandler, "200 OK", [("Content-Length", "2")], [body])
    assert len(sends) == 2 and sends[1] == body


def test_an_empty_answer_is_its_header_alone():
    sends = answer(ContractHandler, "204 NO CONTENT", [], [])
    assert len(sends) == 1 and sends[0].startswith(b"HTTP/1.1 204") and sends[0].endswith(b"\r\n\r\n")


@pytest.mark.parametrize("chunks", [[b"ab", b"cde"]])
def test_a_streamed_answer_carries_its_first_chunk_with_the_header(chunks):
    sends = answer(ContractHandler, "200 OK", [], iter(chunks))
    assert b"Transfer-Encoding: chunked" in sends[0]
    assert sends[0].endswith(b"\r\n\r\n2\r\nab\r\n") and sends[1:] == [b"3\r\ncde\r\n"]
