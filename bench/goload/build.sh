#!/bin/sh
# Builds the load client of bench/ingest.py and bench/fanout.py (`--client go`) into
# ~/.cache/chorus/bin/goload, with Go's caches outside the repository. Go 1.26: /usr/local/go.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cache=${CHORUS_CACHE:-$HOME/.cache/chorus}
go=${GO:-$(command -v go || echo /usr/local/go/bin/go)}
mkdir -p "$cache/bin" "$cache/go"
cd "$here"
export GOPATH="$cache/go" GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build"
"$go" vet ./...
"$go" build -trimpath -o "$cache/bin/goload" .
echo "$cache/bin/goload"
