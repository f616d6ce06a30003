#!/usr/bin/env python3
"""redis_wait - wait until a Redis command's integer reply reaches a number.

    redis_wait.py [--ready FILE] PORT SECONDS N COMMAND [ARG...]

Sends COMMAND (e.g. XLEN cb:bus:results:q) to the Redis on 127.0.0.1:PORT every 5 ms over one
connection until its integer reply is at least N: exit 0 then, 1 when SECONDS pass first (or
the reply is not an integer), 2 on a connection error. --ready FILE: create FILE once
connected, so that a benchmark can start its clock after this process's own start-up. For
benchmarks, whose measured time should not include a process started per poll (wait_until's
way); bounded by SECONDS.
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
    args = sys.argv[1:]
    ready = None
    if args[:1] == ["--ready"] and len(args) > 1:
        ready, args = args[1], args[2:]
    if len(args) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    port, seconds, want = int(args[0]), float(args[1]), int(args[2])
    request = command(args[3:])
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError as e:
        print(f"redis_wait: {e}", file=sys.stderr)
        return 2
    reader = sock.makefile("rb")
    if ready:
        open(ready, "w").close()
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
