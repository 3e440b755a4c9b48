#!/usr/bin/env bash
# Fault scenarios against real processes (docs/operations.md, "Failures"):
# 3 pushauthd replicas built from ./cmd/pushauthd on PostgreSQL, a 3-node
# NATS cluster (/usr/sbin/nats-server), a throwaway PostgreSQL server
# (initdb/pg_ctl) for the full restart, and one node on SQLite. Under a
# load of login flows each scenario injects its fault and prints one line:
#
#   scenario=… flows=… approved=… lost=… stuck=… dup_push=… recovery_ms=… …
#
# Usage: scripts/chaos.sh [--quick] [--only name,name] [-v]
#   --quick  each scenario scaled down (CI; all in a few minutes)
# Exits non-zero when any scenario loses or strands a login (lost, stuck or
# wrong > 0), when health did not turn NOT_SERVING during an outage, or
# when a scenario cannot run. A failed scenario keeps its cluster's logs
# and data under $TMPDIR/pushauth-cluster-* and prints their tails.
# PostgreSQL: PUSHAUTH_TEST_POSTGRES_DSN, default the local server.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.26.10}"
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/chaos" ./internal/cluster/cmd/chaos
"$bin/chaos" "$@"
