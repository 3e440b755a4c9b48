#!/usr/bin/env bash
# A steady login load on one pushauthd replica (PostgreSQL, a 3-node NATS
# cluster) for DURATION, sampling the replica every 10 s: resident memory,
# goroutines (go_goroutines of /metrics), open file descriptors, the
# database's size and the push queue's depth. Writes docs/soak.csv and
# docs/soak.png (or OUT.csv / OUT.png) and prints the flows' counts and a
# flatness summary (the last third of the run against the first).
#
# Usage: scripts/soak.sh DURATION [OUT]     e.g. scripts/soak.sh 10m
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/soak.sh DURATION [OUT]   (e.g. 10m)" >&2; exit 2; }
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.26.10}"
out="${2:-docs/soak}"
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/soak" ./internal/cluster/cmd/soak
"$bin/soak" -duration "$1" -csv "$out.csv" -png "$out.png"
