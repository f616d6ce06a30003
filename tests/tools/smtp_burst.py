#!/usr/bin/env python3
"""smtp_burst.py - send a burst of test messages over SMTP, several clients in parallel.

Each message gets Message-ID <PREFIX.N@burst.example> and carries the URL
http://burst.example/PREFIX/N. A 4xx answer (a milter restarting under
milter_default_action = tempfail, say) is retried, a bounded number of times, as a real MTA
would; a 5xx or running out of retries fails the message. The Message-IDs of the messages
the server accepted are written, one per line, to --out.

Exit status: 0 when every message was accepted, 1 otherwise.
"""
import argparse
import smtplib
import sys
import threading
import time


def message(prefix, n, sender, rcpts):
    return (f"Message-ID: <{prefix}.{n}@burst.example>\r\nFrom: {sender}\r\nTo: {', '.join(rcpts)}\r\n"
            f"Subject: burst {prefix} {n}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            f"Content-Type: text/plain\r\n\r\nSee http://burst.example/{prefix}/{n} today.\r\n").encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--sender", default="noreply@outside.example")
    ap.add_argument("--rcpt", action="append", required=True)
    ap.add_argument("--prefix", default="m")
    ap.add_argument("--source-ip", default="")
    ap.add_argument("--retries", type=int, default=100)
    ap.add_argument("--retry-delay", type=float, default=0.1)
    ap.add_argument("--out", default="")
    a = ap.parse_args()

    lock = threading.Lock()
    accepted, failed = [], []
    todo = list(range(1, a.count + 1))

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                n = todo.pop(0)
            data = message(a.prefix, n, a.sender, a.rcpt)
            for attempt in range(a.retries + 1):
                try:
                    src = (a.source_ip, 0) if a.source_ip else None
                    with smtplib.SMTP("127.0.0.1", a.port, timeout=30, source_address=src) as s:
                        s.sendmail(a.sender, a.rcpt, data)
                    with lock:
                        accepted.append(f"{a.prefix}.{n}@burst.example")
                    break
                except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused,
                        smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as e:
                    code = getattr(e, "smtp_code", 450)
                    if isinstance(e, smtplib.SMTPRecipientsRefused):
                        code = min(c for c, _ in e.recipients.values())
                    if code >= 500 or attempt == a.retries:
                        with lock:
                            failed.append((n, str(e)))
                        break
                except (OSError, smtplib.SMTPException) as e:
                    if attempt == a.retries:
                        with lock:
                            failed.append((n, str(e)))
                        break
                time.sleep(a.retry_delay)

    threads = [threading.Thread(target=worker) for _ in range(a.parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if a.out:
        with open(a.out, "w") as f:
            f.write("".join(x + "\n" for x in accepted))
    for n, why in failed:
        print(f"smtp_burst: message {n} failed: {why}", file=sys.stderr)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
