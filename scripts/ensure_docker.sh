#!/usr/bin/env bash
# Make sure a Docker engine answers and debootstrap is installed, with gVisor
# registered as a second runtime where it can be had (scripts/ensure_gvisor.sh;
# SANDBOX_GVISOR=0 skips it).
#
# Idempotent: when `docker info` already works only debootstrap, compose and
# gVisor are checked. Otherwise the Debian packages are installed if dockerd is
# missing and dockerd is started without systemd (setsid + nohup), logging to
# /var/log/sandbox-mesh-dockerd.log. Needs root for the install/start part.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LOG=/var/log/sandbox-mesh-dockerd.log
WAIT_SECONDS=${DOCKER_WAIT_SECONDS:-60}

log() { echo "ensure_docker: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run: $*"
    fi
}

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        apt_updated=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

docker_ok() { docker info >/dev/null 2>&1; }

# debootstrap is needed by images/build.sh even when the engine already runs.
ensure_debootstrap() {
    if ! have debootstrap; then
        apt_install debootstrap
    fi
}

# compose (v2 plugin or v1 docker-compose) is needed by `make up`.
ensure_compose() {
    if ! docker compose version >/dev/null 2>&1 && ! have docker-compose; then
        apt_install docker-compose
    fi
}

wait_for_docker() {
    local deadline=$((SECONDS + WAIT_SECONDS))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if docker_ok; then return 0; fi
        sleep 1
    done
    return 1
}

start_dockerd() {
    local dockerd_bin
    dockerd_bin=$(command -v dockerd || echo /usr/sbin/dockerd)
    log "starting $dockerd_bin in the background (log: $LOG)"
    as_root touch "$LOG"
    # setsid: own session, so the daemon survives the calling shell / make.
    as_root sh -c "nohup setsid '$dockerd_bin' >>'$LOG' 2>&1 </dev/null &"
}

# Never stops the set-up: without gVisor, sandboxes run on runc.
ensure_gvisor() {
    "$HERE/ensure_gvisor.sh" || log "WARNING: scripts/ensure_gvisor.sh failed; sandboxes run on runc only"
}

if docker_ok; then
    ensure_debootstrap
    ensure_compose
    ensure_gvisor
    log "docker engine is up"
    exit 0
fi

if ! have dockerd; then
    apt_install docker.io docker-compose debootstrap iptables
fi
ensure_debootstrap
ensure_compose
have docker || die "docker CLI not found after installing docker.io"

# A dockerd may already be starting (e.g. a parallel run); only start one
# when none is running.
starting_elsewhere=0
if pgrep -x dockerd >/dev/null 2>&1; then
    log "dockerd is already running; waiting for it to answer"
    starting_elsewhere=1
else
    # daemon.json first: the engine reads its runtimes when it starts.
    ensure_gvisor
    start_dockerd
fi

if ! wait_for_docker; then
    log "docker did not answer within ${WAIT_SECONDS}s; last lines of $LOG:"
    tail -n 30 "$LOG" >&2 || true
    die "docker engine unavailable (see $LOG; nested containers may need the iptables-legacy alternative)"
fi
# A dockerd started by someone else may have read daemon.json before gVisor
# was in it; now that it answers, it is reloaded if need be.
if [ "$starting_elsewhere" -eq 1 ]; then
    ensure_gvisor
fi
log "docker engine is up"
