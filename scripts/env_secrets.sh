#!/usr/bin/env bash
# Sourced by up.sh with the env file's path: keeps the mesh's secrets in it
# (gitignored; compose reads it too), makes missing ones, exports them, and
# keeps the file private however it was created (mode 600).
ENV_FILE=${1:?usage: source scripts/env_secrets.sh ENV_FILE}
PYTHON=${PYTHON:-.venv/bin/python}

(umask 077 && touch "$ENV_FILE")
chmod 600 "$ENV_FILE"

new_secret() { "$PYTHON" -c 'import secrets; print(secrets.token_hex(32))'; }

# The services authenticate each other with shared secrets.
# An env file from before the rename calls the service secret SANDBOX_SECRET:
# rename it in place, so the mesh keeps its secret.
if grep -q '^SANDBOX_SECRET=' "$ENV_FILE" 2>/dev/null && ! grep -q '^SERVICE_SECRET=' "$ENV_FILE"; then
    sed -i.bak 's/^SANDBOX_SECRET=/SERVICE_SECRET=/' "$ENV_FILE" && rm -f "$ENV_FILE".bak
    echo "renamed SANDBOX_SECRET to SERVICE_SECRET in $ENV_FILE"
fi
for name in SERVICE_SECRET EGRESS_SECRET; do
    if [ -z "${!name:-}" ]; then
        if ! grep -q "^$name=" "$ENV_FILE" 2>/dev/null; then
            echo "$name=$(new_secret)" >> "$ENV_FILE"
            echo "generated $name in $ENV_FILE"
        fi
        export "$name=$(sed -n "s/^$name=//p" "$ENV_FILE" | tail -1)"
    fi
done

# Control's tenants and their keys (JSON); a "demo" tenant to start with.
if [ -z "${CONTROL_TENANT_KEYS:-}" ]; then
    if ! grep -q '^CONTROL_TENANT_KEYS=' "$ENV_FILE" 2>/dev/null; then
        echo "CONTROL_TENANT_KEYS={\"demo\": \"$(new_secret)\"}" >> "$ENV_FILE"
        echo "generated a key for tenant demo in $ENV_FILE"
    fi
    export "CONTROL_TENANT_KEYS=$(sed -n 's/^CONTROL_TENANT_KEYS=//p' "$ENV_FILE" | tail -1)"
fi

