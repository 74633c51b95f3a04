#!/usr/bin/env bash
# Runs compose on the mesh's project with the values `make up` derived: compose
# validates the whole file, secrets included, for any command (ps, logs, down).
set -euo pipefail
cd "$(dirname "$0")/.."
COMPOSE=${COMPOSE:-$(docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)}
PROJECT=${COMPOSE_PROJECT_NAME:-sandbox-mesh}
for name in SERVICE_SECRET EGRESS_SECRET EGRESS_ALLOW_HOSTS CONTROL_TENANT_KEYS; do
    if [ -z "${!name:-}" ]; then
        value=$(sed -n "s/^$name=//p" .env 2>/dev/null | tail -1 || true)
        export "$name=${value:-unset}"
    fi
done
exec $COMPOSE -p "$PROJECT" -f compose.yml "$@"
