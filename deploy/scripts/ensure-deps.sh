#!/usr/bin/env bash
# Installs what `make dev` and `make test` need and a fresh Debian machine may
# lack: PostgreSQL server binaries (initdb, pg_ctl, postgres, pgbench) and
# poppler-utils (pdftotext, for the invoice tests).
# Idempotent; does nothing when everything is present.
set -euo pipefail

need=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then need+=(postgresql); fi
if ! ls /usr/lib/postgresql/*/bin/pgbench >/dev/null 2>&1 && ! command -v pgbench >/dev/null 2>&1; then need+=(postgresql-contrib); fi

# pdftotext/pdftoppm check rendered invoices in the tests.
if ! command -v pdftotext >/dev/null 2>&1; then need+=(poppler-utils); fi

if [ ${#need[@]} -eq 0 ]; then exit 0; fi
echo "ensure-deps: installing ${need[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
# Debian starts a system cluster on install; SpiceRoute runs its own
# ephemeral clusters and does not need it.
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters -h 2>/dev/null | while read -r ver name _; do $SUDO pg_ctlcluster "$ver" "$name" stop 2>/dev/null || true; done
fi
