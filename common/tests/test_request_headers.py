"""The instance reads a request's header lines itself (each raw line checked); the message it
builds is the one email.parser (which gevent uses) builds from the same lines."""
import email.parser
import io

import pytest
from gevent.pywsgi import OldMessage

from atelier_common.worker import ContractHandler

BLOCKS = [
    b"Host: 127.0.0.1:3002\r\nX-Forwarded-For: 10.0.0.1, 127.0.0.1\r\nConnection: keep-alive\r\n\r\n",
    b"Host: a\r\nX-Empty:\r\nX-Blank: \r\nX-Tab:\tvalue\r\nX-Trailing: value  \r\n\r\n",
    b"Host: a\nAccept: */*\nX-Colon: a:b:c\n\n",  # bare LF line ends
    b"Host: a\r\nCookie: x=1\r\nCookie: y=2\r\nContent-Length: 12\r\n\r\n",  # repeated names
    b"Host: a\r\nContent-Type: application/json; charset=utf-8\r\nX-Latin: caf\xe9\r\n\r\n",
    b"Host: a\r\n",  # the connection closed before the blank line
]


def handler(command="POST"):
    built = ContractHandler.__new__(ContractHandler)
    built.command = command
    return built


@pytest.mark.parametrize("block", BLOCKS)
def test_the_message_is_the_one_email_parser_builds(block):
    ours = handler().MessageClass(io.BytesIO(block))
    theirs = email.parser.Parser(_class=OldMessage).parsestr(block.decode("latin-1"))
    assert ours.items() == theirs.items()
    assert list(ours.headers) == list(theirs.headers)  # what gevent builds the WSGI environ from
    assert (ours.status, ours.typeheader, ours.getheader("content-length")) == \
        (theirs.status, theirs.typeheader, theirs.getheader("content-length"))
