#!/usr/bin/env bash
# The whole test suite: formatting, vet, proto lint, generated-code drift,
# breaking-change check, and every Go test under the race detector.
# PostgreSQL tests run when PUSHAUTH_TEST_POSTGRES_DSN is set (.ci/run sets it).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

step "tools (pinned in tools/go.mod)"
bin="$PWD/.bin"
mkdir -p "$bin"
(cd tools && go build -o "$bin/" \
  github.com/bufbuild/buf/cmd/buf \
  google.golang.org/protobuf/cmd/protoc-gen-go \
  google.golang.org/grpc/cmd/protoc-gen-go-grpc \
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
  github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2)
export PATH="$bin:$PATH"

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go') $(git ls-files --others --exclude-standard '*.go'))
[ -z "$unformatted" ] || fail "gofmt would change: $unformatted"

step "go vet"
go vet ./...

step "buf lint"
buf lint

step "generated code is up to date"
buf generate
drift=$(git status --porcelain -- proto)
if [ -n "$drift" ]; then
  git --no-pager diff --stat -- proto
  fail "regenerating changed proto/ (run 'buf generate' and commit): $drift"
fi

step "buf breaking"
if git rev-parse -q --verify HEAD~1 >/dev/null && git cat-file -e HEAD~1:buf.yaml 2>/dev/null; then
  against=".git#ref=HEAD~1"
  if [ "$(git rev-parse --abbrev-ref HEAD)" != main ] && git rev-parse -q --verify main >/dev/null; then
    against=".git#branch=main"
  fi
  buf breaking --against "$against"
else
  echo "no earlier protos to compare with"
fi

step "go test -race"
if [ -z "${PUSHAUTH_TEST_POSTGRES_DSN:-}" ]; then
  echo "PUSHAUTH_TEST_POSTGRES_DSN is not set: PostgreSQL tests will be skipped"
fi
go test -race -count=1 ./...
