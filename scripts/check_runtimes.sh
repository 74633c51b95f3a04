#!/usr/bin/env bash
# Each gVisor runtime the engine offers runs one throw-away container of the
# runtime image printing "ok": runsc with no network, runsc-network on an
# internal network made for the check, as the spawner runs sandboxes.
#
# A runtime that fails is a warning naming it and the engine's error; nothing
# is unregistered (the spawner reports a runtime it cannot use as unavailable)
# and the script exits 0. Everything it makes carries
# sandbox-mesh.role=runtime-check and is removed by id, whatever happens.
# SANDBOX_GVISOR=0 skips it. Run by `make up` and `make test` after the images.
set -euo pipefail

IMAGE=${RUNTIME_IMAGE:-sandbox-mesh/runtime:local}
CHECK_TIMEOUT_SECONDS=${RUNTIME_CHECK_TIMEOUT_SECONDS:-120}
ROLE_LABEL="sandbox-mesh.role=runtime-check"
GVISOR_RUNTIME=runsc                  # scripts/engine_runtimes.py registers both
GVISOR_NETWORK_RUNTIME=runsc-network

log() { echo "check_runtimes: $*" >&2; }

if [ "${SANDBOX_GVISOR:-1}" = 0 ]; then
    log "skipped (SANDBOX_GVISOR=0); sandboxes run on runc only"
    exit 0
fi

CONTAINERS=()
NETWORK=""
cleanup() {
    local id
    for id in "${CONTAINERS[@]}"; do docker rm -f "$id" >/dev/null 2>&1 || true; done
    if [ -n "$NETWORK" ]; then docker network rm "$NETWORK" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

offered=$(docker info --format '{{range $name, $runtime := .Runtimes}}{{$name}}{{"\n"}}{{end}}' 2>/dev/null) || {
    log "WARNING: the engine does not answer; no runtime checked"
    exit 0
}
offers() { grep -qx -- "$1" <<<"$offered"; }

# Runs the check container with runtime $1 and any further docker create
# options, then removes it. Sets RESULT to its output, or to the engine's
# error; returns non-zero unless the output is exactly "ok".
RESULT=""
run_check() {
    local runtime=$1 id status=0
    shift
    if ! id=$(docker create --runtime "$runtime" --label "$ROLE_LABEL" \
        --read-only --cap-drop ALL --security-opt no-new-privileges:true \
        "$@" "$IMAGE" python3 -c 'print("ok")' 2>&1); then
        RESULT=$id
        return 1
    fi
    CONTAINERS+=("$id")
    # A runtime that hangs (gVisor's KVM platform in a VM) stops the wait,
    # not the set-up.
    RESULT=$(timeout "$CHECK_TIMEOUT_SECONDS" docker start -a "$id" 2>&1) || status=$?
    docker rm -f "$id" >/dev/null 2>&1 || true
    if [ "$status" -eq 124 ]; then
        RESULT="no answer within ${CHECK_TIMEOUT_SECONDS}s"
    fi
    [ "$status" -eq 0 ] && [ "$RESULT" = ok ]
}

check() { # runtime, docker create options...
    local runtime=$1
    if run_check "$@"; then
        log "$runtime runs a container: ok"
        return 0
    fi
    local error
    error=$(tr '\n' ' ' <<<"$RESULT")
    log "WARNING: runtime $runtime failed to run a container: ${error% }"
    log "WARNING: sandboxes asking for $runtime fail; the spawner reports it unavailable"
    return 1
}

if ! offers "$GVISOR_RUNTIME" && ! offers "$GVISOR_NETWORK_RUNTIME"; then
    log "the engine offers no gVisor runtime; sandboxes run on runc only"
    exit 0
fi
docker image inspect "$IMAGE" >/dev/null 2>&1 || {
    log "WARNING: $IMAGE is missing (make images); no runtime checked"
    exit 0
}

checked=()
if offers "$GVISOR_RUNTIME"; then
    check "$GVISOR_RUNTIME" --network none && checked+=("$GVISOR_RUNTIME")
else
    log "WARNING: the engine does not offer $GVISOR_RUNTIME"
fi
if offers "$GVISOR_NETWORK_RUNTIME"; then
    # Internal, like a sandbox's own network: no route out.
    if NETWORK=$(docker network create --internal --label "$ROLE_LABEL" \
        "sandbox-mesh-runtime-check-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')" 2>&1); then
        check "$GVISOR_NETWORK_RUNTIME" --network "$NETWORK" && checked+=("$GVISOR_NETWORK_RUNTIME")
    else
        log "WARNING: no internal network for checking $GVISOR_NETWORK_RUNTIME: $NETWORK"
        NETWORK=""
    fi
else
    log "WARNING: the engine does not offer $GVISOR_NETWORK_RUNTIME"
fi
if [ "${#checked[@]}" -gt 0 ]; then
    log "sandbox runtimes: runc and gVisor (${checked[*]})"
else
    log "sandbox runtimes: runc only (no gVisor runtime ran a container)"
fi
