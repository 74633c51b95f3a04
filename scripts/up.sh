#!/usr/bin/env bash
# Brings the mesh up with compose, waits for health, prints a first call.
set -euo pipefail
cd "$(dirname "$0")/.."
COMPOSE=${COMPOSE:-$(docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)}
PROJECT=${COMPOSE_PROJECT_NAME:-sandbox-mesh}
PORT=${SPAWNER_PORT:-50051}
mkdir -p "${SPAWNER_WORKSPACE_ROOT:-/var/lib/sandbox-mesh/workspaces}"

# The services authenticate each other with a shared secret. Keep the one in
# .env (gitignored; compose reads it too) or make one on first use.
if [ -z "${SANDBOX_SECRET:-}" ]; then
    if ! grep -q '^SANDBOX_SECRET=' .env 2>/dev/null; then
        echo "SANDBOX_SECRET=$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(32))')" >> .env
        chmod 600 .env
        echo "generated a shared secret in .env"
    fi
    SANDBOX_SECRET=$(sed -n 's/^SANDBOX_SECRET=//p' .env | tail -1)
    export SANDBOX_SECRET
fi

$COMPOSE -p "$PROJECT" -f compose.yml up -d
if ! .venv/bin/python scripts/wait_healthy.py "127.0.0.1:$PORT" 90; then
    $COMPOSE -p "$PROJECT" -f compose.yml logs --tail 50 spawner >&2
    exit 1
fi

cat <<MSG

The spawner is up on 127.0.0.1:$PORT. Run some code (calls are signed with
the secret in .env; a signature is good for one call within 60 s):

  export \$(grep SANDBOX_SECRET .env)
  REQ='{"execution_id": "hello-1", "tenant": "demo", "language": "LANGUAGE_PYTHON", "files": [{"path": "main.py", "content": "cHJpbnQoImhlbGxvIik="}], "entry": "main.py"}'
  .venv/bin/grpcurl -plaintext -d "\$REQ" -H "x-sandbox-signature: \$(.venv/bin/python -m services.common.sign sandbox.spawner.v1.Spawner/Execute "\$REQ")" 127.0.0.1:$PORT sandbox.spawner.v1.Spawner/Execute

(file contents are base64: cHJpbnQoImhlbGxvIik= is print("hello")). Stop with: make down
MSG
