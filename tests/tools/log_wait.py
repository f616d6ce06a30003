#!/usr/bin/env python3
"""log_wait - wait until a growing log file has N more lines containing a text.

    log_wait.py [--ready FILE] LOG TEXT N SECONDS

Starts at LOG's current end and reads what is appended every 10 ms, counting the new lines
that contain TEXT: exit 0 once there are N, 1 when SECONDS pass first. --ready FILE: create
FILE once positioned, so that a benchmark can start its clock after this process's own
start-up. Reading only what was appended keeps each poll cheap, where counting files or
spawning a process per poll would take CPU from what a benchmark measures.
"""
import os
import sys
import time


def main():
    args = sys.argv[1:]
    ready = None
    if args[:1] == ["--ready"] and len(args) > 1:
        ready, args = args[1], args[2:]
    if len(args) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    path, text, want, seconds = args[0], args[1].encode(), int(args[2]), float(args[3])
    f = open(path, "rb")
    f.seek(0, os.SEEK_END)
    if ready:
        open(ready, "w").close()
    deadline = time.monotonic() + seconds
    seen, partial = 0, b""
    while True:
        data = f.read()
        if data:
            lines = (partial + data).split(b"\n")
            partial = lines.pop()  # an unfinished last line waits for its end
            seen += sum(1 for line in lines if text in line)
            if seen >= want:
                return 0
        elif time.monotonic() >= deadline:
            print(f"log_wait: {seen} of {want} lines with {text.decode()!r} in {path}", file=sys.stderr)
            return 1
        else:
            time.sleep(0.01)


if __name__ == "__main__":
    sys.exit(main())
