#!/usr/bin/env bash
# Builds the example renter image spiceroute/hello:dev (nomad-jobs/hello-image)
# into the local Docker engine: a static Go binary in an image FROM scratch,
# so no registry is needed. Idempotent; the tests run it.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tag=${1:-spiceroute/hello:dev}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
CGO_ENABLED=0 GOWORK=off ${GO:-go} build -trimpath -ldflags '-s -w' -o "$ctx/hello" "$root/nomad-jobs/hello-image"
cp "$root/nomad-jobs/hello-image/Dockerfile" "$ctx/"
docker build -q -t "$tag" "$ctx" >/dev/null
echo "built $tag" >&2
