#!/usr/bin/env python3
"""redis_wait - wait until a Redis command's integer reply reaches a number.

    redis_wait.py PORT SECONDS N COMMAND [ARG...]

Sends COMMAND (e.g. XLEN cb:bus:results:q) to the Redis on 127.0.0.1:PORT every 5 ms over one
connection until its integer reply is at least N: exit 0 then, 1 when SECONDS pass first (or
the reply is not an integer), 2 on a connection error. For benchmarks, whose measured time
should not include a process started per poll (wait_until's way); bounded by SECONDS.
"""
import socket
import sys
import time


def command(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def main():
    if len(sys.argv) < 5:
        print(__doc__, file=sys.stderr)
        return 2
    port, seconds, want = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    request = command(sys.argv[4:])
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError as e:
        print(f"redis_wait: {e}", file=sys.stderr)
        return 2
    reader = sock.makefile("rb")
    deadline = time.monotonic() + seconds
    while True:
        sock.sendall(request)
        line = reader.readline()
        if not line.startswith(b":"):
            print(f"redis_wait: not an integer reply: {line!r}", file=sys.stderr)
            return 1
        if int(line[1:]) >= want:
            return 0
        if time.monotonic() >= deadline:
            return 1
        time.sleep(0.005)


if __name__ == "__main__":
    sys.exit(main())
