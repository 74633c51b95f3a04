#!/usr/bin/env bash
# Make sure the PostgreSQL server binaries the test suite starts a throw-away
# server from are installed (tests/postgres.py: initdb and pg_ctl under
# /usr/lib/postgresql/<version>/bin, or PG_BIN; the `postgres` user; runuser).
#
# Idempotent: nothing is done when they are there. Otherwise Debian's
# `postgresql` package is installed (it brings the versioned server package
# and creates the `postgres` user); the cluster the package may create is left
# stopped (the suite never uses it). Needs root for the install.
set -euo pipefail

log() { echo "ensure_postgres: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run: $*"
    fi
}

have_server() {
    if [ -n "${PG_BIN:-}" ]; then
        [ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ]
    else
        compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
    fi
}

have_user() { getent passwd postgres >/dev/null; }

if have_server && have_user && command -v runuser >/dev/null 2>&1; then
    exit 0
fi
[ -z "${PG_BIN:-}" ] || die "PG_BIN=$PG_BIN has no initdb and pg_ctl; unset it to install Debian's server"
command -v apt-get >/dev/null 2>&1 || die "no apt-get: install the PostgreSQL server binaries and set PG_BIN"

log "apt-get update"
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
log "apt-get install postgresql"
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql util-linux
have_server || die "the postgresql package installed no server binaries under /usr/lib/postgresql"
have_user || die "the postgresql package created no postgres user"
log "PostgreSQL server binaries: $(compgen -G '/usr/lib/postgresql/*/bin' | tail -n 1)"
