#!/bin/sh
# install-deps.sh - install every Debian package Clawback needs to build, test and run.
# Idempotent: does nothing when all are present; otherwise apt-get update, then install,
# non-interactively, through sudo when not root.
set -eu
PACKAGES="build-essential pkg-config libzmq3-dev libczmq-dev libcurl4-openssl-dev
libmsgpack-dev libssl-dev libhiredis-dev libcmocka-dev libinih-dev uuid-dev
redis-server redis-tools curl procps
libgmime-3.0-dev libxml2-dev libidn2-dev libpsl-dev publicsuffix rspamd
libjansson-dev python3 openssl
dovecot-imapd dovecot-lmtpd postfix libmilter-dev"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
command -v npm >/dev/null 2>&1 || missing="$missing npm"
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing:$missing"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
