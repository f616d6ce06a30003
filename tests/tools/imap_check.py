#!/usr/bin/env python3
"""imap_check - look into a test mailbox over IMAP, for the integration tests.

Logs in as USER*MASTER (a Dovecot master user) or as USER alone (--password), then:

  capability                   print the server's capabilities after login, one a line
  folders                      print every folder's name, one a line
  count FOLDER                 print how many messages FOLDER holds (exit 1 if it does not exist)
  count-is FOLDER N            exit 0 when FOLDER holds exactly N messages (for wait_until)
  subjects FOLDER              print each message's Subject header (unfolded), one a line
  message-ids FOLDER           print each message's Message-ID header, one a line
  find MESSAGE-ID              print each "FOLDER UID" whose Message-ID is exactly MESSAGE-ID
                               (exit 1 when none)
  flags FOLDER MESSAGE-ID      print the flags of the message(s) with that Message-ID
  add-flag FOLDER MESSAGE-ID FLAG   add FLAG (e.g. \\Deleted) to the message(s), without expunging
  copy-to FOLDER MESSAGE-ID DEST    copy the message(s) to DEST (created when missing)
  source FOLDER MESSAGE-ID     print the full source of the first message with that Message-ID
  last FOLDER                  print the full source of the newest message in FOLDER

Nothing here expunges or moves mail: the tool only observes, except add-flag and copy-to.
"""
import argparse
import email.parser
import email.policy
import imaplib
import re
import sys


def quote(name):
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def connect(args):
    imap = imaplib.IMAP4(args.host, args.port, timeout=10)
    if args.password is not None:
        imap.login(args.user, args.password)
    else:
        imap.login(args.user + "*" + args.master, args.master_password)
    return imap


LIST_RE = re.compile(r'^\((?P<flags>[^)]*)\) (?P<delim>"[^"]*"|NIL) (?P<name>.+)$')


def folders(imap):
    typ, data = imap.list()
    if typ != "OK":
        raise SystemExit("LIST failed")
    names = []
    for item in data:
        if isinstance(item, tuple):  # a literal name
            names.append(item[1].decode())
            continue
        m = LIST_RE.match(item.decode())
        if not m:
            continue
        name = m.group("name")
        if name.startswith('"'):
            name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        names.append(name)
    return names


def select(imap, folder):
    typ, data = imap.select(quote(folder), readonly=True)
    if typ != "OK":
        return None
    return int(data[0])


def headers_of(imap, uids, field):
    """{uid: header value} of field for the given UIDs."""
    out = {}
    if not uids:
        return out
    typ, data = imap.uid("FETCH", ",".join(uids), "(UID BODY.PEEK[HEADER.FIELDS (%s)])" % field.upper())
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    for item in data:
        if not isinstance(item, tuple):
            continue
        m = re.search(rb"UID (\d+)", item[0])
        msg = parser.parsebytes(item[1])
        value = msg.get(field)
        if value is not None:
            value = re.sub(r"\r?\n[ \t]+", " ", str(value)).strip()
        out[m.group(1).decode()] = value
    return out


def all_uids(imap):
    typ, data = imap.uid("SEARCH", "ALL")
    return data[0].decode().split()


def uids_with_message_id(imap, folder, mid):
    if select(imap, folder) is None:
        return []
    values = headers_of(imap, all_uids(imap), "Message-ID")
    return [uid for uid, value in sorted(values.items(), key=lambda kv: int(kv[0])) if value == mid]


def fetch_source(imap, uid):
    typ, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
    for item in data:
        if isinstance(item, tuple):
            return item[1]
    raise SystemExit("message %s vanished" % uid)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--master", default="admin")
    p.add_argument("--master-password", default="adminpw")
    p.add_argument("--password", help="log in as USER itself with this password")
    p.add_argument("command")
    p.add_argument("args", nargs="*")
    args = p.parse_args()
    imap = connect(args)
    cmd, a = args.command, args.args
    status = 0
    if cmd == "capability":
        typ, data = imap.capability()
        for cap in data[0].decode().split():
            print(cap)
    elif cmd == "folders":
        for name in folders(imap):
            print(name)
    elif cmd in ("count", "count-is"):
        n = select(imap, a[0])
        if n is None:
            status = 1
        elif cmd == "count":
            print(n)
        else:
            status = 0 if n == int(a[1]) else 1
    elif cmd in ("subjects", "message-ids"):
        if select(imap, a[0]) is None:
            raise SystemExit("no folder %s" % a[0])
        field = "Subject" if cmd == "subjects" else "Message-ID"
        values = headers_of(imap, all_uids(imap), field)
        for uid in sorted(values, key=int):
            print(values[uid] if values[uid] is not None else "")
    elif cmd == "find":
        found = False
        for folder in folders(imap):
            for uid in uids_with_message_id(imap, folder, a[0]):
                print(folder, uid)
                found = True
        status = 0 if found else 1
    elif cmd in ("flags", "add-flag", "source", "copy-to"):
        uids = uids_with_message_id(imap, a[0], a[1])
        if not uids:
            raise SystemExit("no message %s in %s" % (a[1], a[0]))
        if cmd == "flags":
            typ, data = imap.uid("FETCH", ",".join(uids), "(FLAGS)")
            for item in data:
                print(item.decode())
        elif cmd == "add-flag":
            imap.select(quote(a[0]))
            typ, data = imap.uid("STORE", ",".join(uids), "+FLAGS.SILENT", "(%s)" % a[2])
            if typ != "OK":
                raise SystemExit("STORE failed")
        elif cmd == "copy-to":
            imap.create(quote(a[2]))  # NO when it exists: fine
            imap.select(quote(a[0]))
            typ, data = imap.uid("COPY", ",".join(uids), quote(a[2]))
            if typ != "OK":
                raise SystemExit("COPY failed")
        else:
            sys.stdout.buffer.write(fetch_source(imap, uids[0]))
    elif cmd == "last":
        if select(imap, a[0]) is None:
            raise SystemExit("no folder %s" % a[0])
        uids = all_uids(imap)
        if not uids:
            raise SystemExit("%s is empty" % a[0])
        sys.stdout.buffer.write(fetch_source(imap, uids[-1]))
    else:
        raise SystemExit("unknown command %s" % cmd)
    imap.logout()
    return status


if __name__ == "__main__":
    sys.exit(main())
