"""The event log's fdatasync process: ``python -I -S fdatasyncer.py FD``, started by ``EventLog``.

It shares no interpreter lock with the service: for every byte it reads on stdin it answers on
stdout with one ``ANSWER`` record, errno 0 once ``fdatasync(FD)`` has returned (everything written
to the file before the request is on disk: fdatasync works on the file, whichever process wrote
it), else the errno, and how long the fdatasync took in milliseconds. It
exits when stdin closes, that is when the service closes the log or dies, and ignores SIGINT and
SIGTERM so that a Ctrl-C or a stop signal to the process group lets the service finish the
requests in flight. Standard library only: it runs without the virtual environment (``-S``).
"""

import os
import signal
import struct
import sys
import time

ANSWER = struct.Struct("<BH")  # errno (0: done), milliseconds taken (at most 65535)
MOST = 1024  # requests read at once: their answers fit one atomic pipe write (PIPE_BUF, 4096 bytes)


def serve(fd: int) -> None:
    """Answer sync requests on stdin until it closes."""
    while True:
        requests = os.read(0, MOST)
        if not requests:
            return
        started = time.monotonic()
        try:
            os.fdatasync(fd)
            errno = 0
        except OSError as exc:
            errno = min(exc.errno or 5, 255)  # EIO when the error has no number
        took = min(round((time.monotonic() - started) * 1000), 65535)
        os.write(1, ANSWER.pack(errno, took) * len(requests))  # one answer per request, in one write


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(int(sys.argv[1]))
