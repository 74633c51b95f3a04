#!/usr/bin/env bash
# Brings the mesh up with compose, waits for health, prints a first call.
set -euo pipefail
cd "$(dirname "$0")/.."
COMPOSE=${COMPOSE:-$(docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)}
PROJECT=${COMPOSE_PROJECT_NAME:-sandbox-mesh}
PORT=${SPAWNER_PORT:-50051}
WORKSPACE_ROOT=${SPAWNER_WORKSPACE_ROOT:-/var/lib/sandbox-mesh/workspaces}
mkdir -p "$WORKSPACE_ROOT"
# The spawner mounts each workspace's filesystem inside its container; the
# engine sees it only through a shared mount. Where the filesystem holding
# the root is not shared, the root becomes one (bound onto itself; stays
# until reboot, harmless).
case "$(findmnt -n -o PROPAGATION -T "$WORKSPACE_ROOT")" in
    *shared*) ;;
    *) mountpoint -q "$WORKSPACE_ROOT" || mount --bind "$WORKSPACE_ROOT" "$WORKSPACE_ROOT"
       mount --make-rshared "$WORKSPACE_ROOT" ;;
esac

# Secrets and tenant keys live in .env (mode 600); made on first use.
source scripts/env_secrets.sh .env

# The egress allowlist: the registries the runtime image's own pip and npm
# are configured with (a private mirror there is allowlisted automatically).
if [ -z "${EGRESS_ALLOW_HOSTS:-}" ]; then
    EGRESS_ALLOW_HOSTS=$(.venv/bin/python -m services.egress.allowlist)
    export EGRESS_ALLOW_HOSTS
fi
echo "egress allowlist: $EGRESS_ALLOW_HOSTS"
# Where those names resolve to non-global addresses here (a mirror on the
# LAN, or a TLS-intercepting gateway), the egress must be told to accept
# exactly those addresses; it refuses every other non-global address.
if [ -z "${EGRESS_ALLOW_NETWORKS+set}" ]; then
    EGRESS_ALLOW_NETWORKS=$(.venv/bin/python -m services.egress.private_registries "$EGRESS_ALLOW_HOSTS")
    export EGRESS_ALLOW_NETWORKS
    [ -z "$EGRESS_ALLOW_NETWORKS" ] || echo "NOTE: registries resolve to non-global addresses here; the egress accepts exactly: $EGRESS_ALLOW_NETWORKS"
fi

# Intercept mode by default: the egress terminates TLS with a CA of its own
# (made on first use, kept on its egress-conf volume) and lets only reads
# (GET, HEAD) through. Passthrough relays TLS end to end and cannot see
# methods or bodies (docs/egress.md); sandboxes then trust no egress CA.
EGRESS_MODE=${EGRESS_MODE:-intercept}
case "$EGRESS_MODE" in
    intercept) ;;
    passthrough) export SPAWNER_EGRESS_CA_CERT="" ;;
    *) echo "EGRESS_MODE must be intercept or passthrough, not '$EGRESS_MODE'" >&2; exit 2 ;;
esac
export EGRESS_MODE
echo "egress mode: $EGRESS_MODE"

# gVisor is offered where scripts/ensure_gvisor.sh could register it, under
# the names the spawner asks for.
runtimes=$(docker info --format '{{range $name, $runtime := .Runtimes}}{{$name}}{{"\n"}}{{end}}' 2>/dev/null || true)
gvisor=()
for name in "${SPAWNER_GVISOR_RUNTIME:-runsc}" "${SPAWNER_GVISOR_NETWORK_RUNTIME:-runsc-network}"; do
    if grep -qx -- "$name" <<<"$runtimes"; then gvisor+=("$name"); fi
done
if [ "${#gvisor[@]}" -gt 0 ]; then
    echo "sandbox runtimes: runc and gVisor (${gvisor[*]})"
else
    echo "sandbox runtimes: runc only (the engine offers no gVisor runtime)"
fi

$COMPOSE -p "$PROJECT" -f compose.yml up -d
CONTROL_PORT=${CONTROL_PORT:-50061}
for target in "127.0.0.1:$PORT" "127.0.0.1:$CONTROL_PORT"; do
    if ! .venv/bin/python scripts/wait_healthy.py "$target" 90; then
        $COMPOSE -p "$PROJECT" -f compose.yml logs --tail 50 >&2
        exit 1
    fi
done

cat <<MSG

The mesh is up: control on 127.0.0.1:$CONTROL_PORT (what clients call), the
spawner on 127.0.0.1:$PORT, the egress inside. Calls are signed (keys in .env;
a signature is good for one call within 60 s). Run some code as tenant "demo":

  echo 'print("hello")' > hello.py && .venv/bin/sandboxctl --url 127.0.0.1:$CONTROL_PORT run hello.py

or with grpcurl:

  REQ='{"language": "LANGUAGE_PYTHON", "files": [{"path": "main.py", "content": "cHJpbnQoImhlbGxvIik="}], "entry": "main.py"}'
  eval "\$(.venv/bin/sandboxctl --url 127.0.0.1:$CONTROL_PORT sign --grpcurl Control/Execute "\$REQ")"

(file contents are base64: cHJpbnQoImhlbGxvIik= is print("hello")). Stop with: make down (keeps the data; make clean removes everything)
MSG
