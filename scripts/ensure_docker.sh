#!/usr/bin/env bash
# Make sure a Docker engine answers and debootstrap is installed.
#
# Idempotent: when `docker info` already works only debootstrap is checked.
# Otherwise the Debian packages are installed if dockerd is missing and
# dockerd is started without systemd (setsid + nohup), logging to
# /var/log/sandbox-mesh-dockerd.log. Needs root for the install/start part.
set -euo pipefail

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

if docker_ok; then
    ensure_debootstrap
    ensure_compose
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
if pgrep -x dockerd >/dev/null 2>&1; then
    log "dockerd is already running; waiting for it to answer"
else
    start_dockerd
fi

if ! wait_for_docker; then
    log "docker did not answer within ${WAIT_SECONDS}s; last lines of $LOG:"
    tail -n 30 "$LOG" >&2 || true
    die "docker engine unavailable (see $LOG; nested containers may need the iptables-legacy alternative)"
fi
log "docker engine is up"
