#!/usr/bin/env bash
# Stops the mesh. The spawner drains on SIGTERM and removes the sandboxes it
# started; anything labelled with its name that is still there is removed here.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/compose.sh down --remove-orphans --volumes
left=$(docker ps -aq --filter "label=sandbox-mesh.role=sandbox" --filter "label=sandbox-mesh.spawner=${SPAWNER_NAME:-compose}")
if [ -n "$left" ]; then
    echo "removing sandboxes left behind: $left"
    docker rm -f $left >/dev/null
fi
# The spawner removes its sandboxes' networks when it stops; a spawner killed
# before that leaves them (its egress and sandboxes are gone by now).
nets=$(docker network ls -q --filter "label=sandbox-mesh.role=sandbox-network" --filter "label=sandbox-mesh.spawner=${SPAWNER_NAME:-compose}")
if [ -n "$nets" ]; then
    echo "removing sandbox networks left behind: $nets"
    docker network rm $nets >/dev/null
fi
