#!/usr/bin/env bash
# gVisor as a second wall: installs the distribution's `runsc` package when it
# is missing, registers it with the Docker engine under the two names the
# spawner uses (runsc: sandboxes without a network; runsc-network: sandboxes
# on an internal network) and reloads the engine (SIGHUP) when it runs.
#
# Idempotent: an engine already configured is left alone, daemon.json
# untouched and the engine not reloaded. When gVisor cannot be had, one line
# says why and the script exits 0: sandboxes then run on runc only.
# SANDBOX_GVISOR=0 skips all of it. Called by scripts/ensure_docker.sh; when
# the engine is not running yet, daemon.json is written before it starts.
# Needs root (or sudo) for apt-get, daemon.json and the reload.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DAEMON_JSON=${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}
PIDFILE=${DOCKER_PIDFILE:-/var/run/docker.pid}
RELOAD_WAIT_SECONDS=${GVISOR_RELOAD_WAIT_SECONDS:-20}
RUNTIMES=(runsc runsc-network)  # as in scripts/engine_runtimes.py

log() { echo "ensure_gvisor: $*" >&2; }
unavailable() {
    echo "gVisor (runsc) unavailable: $*; sandboxes run on runc only" >&2
    exit 0
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else return 1
    fi
}

if [ "${SANDBOX_GVISOR:-1}" = 0 ]; then
    log "skipped (SANDBOX_GVISOR=0); sandboxes run on runc only"
    exit 0
fi

# --- the package ---------------------------------------------------------

runsc_candidate() {
    apt-cache policy runsc 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2 }'
}

install_runsc() {
    command -v apt-get >/dev/null 2>&1 || unavailable "no runsc on PATH and no apt-get to install it"
    local candidate
    candidate=$(runsc_candidate)
    if [ -z "$candidate" ]; then
        # Package lists may be absent (fresh machine) or stale.
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 ||
            unavailable "apt-get update failed"
        candidate=$(runsc_candidate)
    fi
    [ -n "$candidate" ] || unavailable "the distribution offers no runsc package (apt-cache policy runsc: no candidate)"
    log "apt-get install runsc ($candidate)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends runsc >&2 ||
        unavailable "apt-get install runsc failed"
}

command -v runsc >/dev/null 2>&1 || install_runsc
RUNSC=$(command -v runsc) || unavailable "runsc not found on PATH after installing it"
"$RUNSC" --version >/dev/null 2>&1 || unavailable "$RUNSC --version fails"

# --- the engine's runtimes -----------------------------------------------

engine_up() { docker info >/dev/null 2>&1; }

# One name per line: the runtimes the running engine offers.
engine_runtime_names() {
    docker info --format '{{range $name, $runtime := .Runtimes}}{{$name}}{{"\n"}}{{end}}' 2>/dev/null
}

engine_offers_gvisor() {
    local names name
    names=$(engine_runtime_names) || return 1
    for name in "${RUNTIMES[@]}"; do
        grep -qx -- "$name" <<<"$names" || return 1
    done
}

# SIGHUP makes dockerd re-read daemon.json (runtimes included) without
# touching running containers. Only a pid that is dockerd gets the signal.
reload_engine() {
    local pid deadline
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    if [ -z "$pid" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" != dockerd ]; then
        log "WARNING: no dockerd pid in $PIDFILE; reload the engine (SIGHUP to dockerd) for gVisor to be offered"
        return 0
    fi
    log "reloading the engine (SIGHUP to dockerd, pid $pid)"
    as_root kill -HUP "$pid" || { log "WARNING: could not signal dockerd (pid $pid)"; return 0; }
    deadline=$((SECONDS + RELOAD_WAIT_SECONDS))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if engine_offers_gvisor; then return 0; fi
        sleep 1
    done
}

engine_runtimes='{}'
running=0
if engine_up; then
    running=1
    engine_runtimes=$(docker info --format '{{json .Runtimes}}' 2>/dev/null || echo '{}')
fi

command -v python3 >/dev/null 2>&1 || unavailable "python3 is needed to edit $DAEMON_JSON"
if ! result=$(as_root python3 "$HERE/engine_runtimes.py" --daemon-json "$DAEMON_JSON" \
    --runsc "$RUNSC" --engine-runtimes "$engine_runtimes"); then
    unavailable "could not register the runtimes in $DAEMON_JSON (see above)"
fi
[ "$result" = unchanged ] || log "registered ${RUNTIMES[*]} ($RUNSC) in $DAEMON_JSON"

if [ "$running" -eq 0 ]; then
    log "the engine is not running; it reads $DAEMON_JSON when it starts"
    exit 0
fi
if [ "$result" = changed ] || ! engine_offers_gvisor; then
    reload_engine
fi
if engine_offers_gvisor; then
    log "the engine offers runc, ${RUNTIMES[*]}"
else
    unavailable "the engine does not list ${RUNTIMES[*]} after a reload (see the engine's log)"
fi
