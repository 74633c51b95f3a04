#!/usr/bin/env bash
# Brings the mesh up with compose, waits for health, prints a first call.
set -euo pipefail
cd "$(dirname "$0")/.."
COMPOSE=${COMPOSE:-$(docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)}
PROJECT=${COMPOSE_PROJECT_NAME:-sandbox-mesh}
PORT=${SPAWNER_PORT:-50051}
mkdir -p "${SPAWNER_WORKSPACE_ROOT:-/var/lib/sandbox-mesh/workspaces}"

$COMPOSE -p "$PROJECT" -f compose.yml up -d
if ! .venv/bin/python scripts/wait_healthy.py "127.0.0.1:$PORT" 90; then
    $COMPOSE -p "$PROJECT" -f compose.yml logs --tail 50 spawner >&2
    exit 1
fi

cat <<MSG

The spawner is up on 127.0.0.1:$PORT. Run some code:

  .venv/bin/grpcurl -plaintext -d '{"execution_id": "hello-1", "tenant": "demo", "language": "LANGUAGE_PYTHON", "files": [{"path": "main.py", "content": "cHJpbnQoImhlbGxvIik="}], "entry": "main.py"}' 127.0.0.1:$PORT sandbox.spawner.v1.Spawner/Execute

(file contents are base64: cHJpbnQoImhlbGxvIik= is print("hello")). Stop with: make down
MSG
