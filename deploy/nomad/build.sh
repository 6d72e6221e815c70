#!/usr/bin/env bash
# Builds the Nomad agent SpiceRoute tests and `make dev` run, from the Go
# module proxy, into the file named by $1 (mk/nomad.mk: bin/nomad).
#
# The version is pinned by go.mod in this directory (a tools module; see the
# comments there). Nomad needs cgo: without it the build silently drops the
# exec, java and qemu drivers (helper/pluginutils/catalog/register_cgo.go)
# and the exec driver's libcontainer executor, so a C compiler is required and
# installed from Debian when missing, as deploy/scripts/ensure-deps.sh does.
set -euo pipefail

out=${1:?usage: build.sh OUTPUT}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GO=${GO:-go}

if ! command -v "${CC:-gcc}" >/dev/null 2>&1; then
	echo "nomad: installing gcc and libc6-dev (Nomad's exec driver needs cgo)" >&2
	if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends gcc libc6-dev
fi

mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT

# The module's own go.mod and go.sum are the whole truth: ignore any go.work
# and the caller's GOFLAGS (-mod=mod would let the go command rewrite the pins).
cd "$here"
start=$(date +%s)
echo "nomad: building github.com/hashicorp/nomad from $here (takes several minutes on a cold cache)" >&2
GOWORK=off GOFLAGS=-mod=readonly CGO_ENABLED=1 \
	nice -n 10 "$GO" build -trimpath \
	-ldflags "-X github.com/hashicorp/nomad/version.GitCommit=173ab08a0210789da531847c4ce3c3518f7fb34b" \
	-o "$tmp" github.com/hashicorp/nomad

# Refuse a binary that is not the pinned release or lacks the exec driver.
# (Capture first: `cmd | grep -q` under pipefail fails when grep exits before
# cmd finishes writing and cmd dies of SIGPIPE.)
version=$("$tmp" version)
grep -qx 'Nomad v1\.11\.3' <<<"$version" || { echo "nomad: built binary is not Nomad v1.11.3: $version" >&2; exit 1; }
buildinfo=$("$GO" version -m "$tmp")
grep -q 'CGO_ENABLED=1' <<<"$buildinfo" || { echo "nomad: built without cgo" >&2; exit 1; }
mv -f "$tmp" "$out"
echo "nomad: built $out in $(( $(date +%s) - start ))s" >&2
