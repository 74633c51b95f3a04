#!/usr/bin/env bash
# Stops the mesh and keeps its data: control's database and output files
# (control-data), the egress's CA (egress-conf, and the certificate it
# republishes from there at every start on egress-ca) and the package caches
# (egress-cache, install-cache). Only the egress's gRPC socket volume goes: a
# socket left there would make the next egress look healthy before it
# listens. `make clean` (scripts/clean.sh) removes everything.
# The spawner drains on SIGTERM and removes the sandboxes it started;
# anything labelled with its name that is still there is removed here.
set -euo pipefail
cd "$(dirname "$0")/.."
PROJECT=${COMPOSE_PROJECT_NAME:-sandbox-mesh}
scripts/compose.sh down --remove-orphans
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
# Volumes compose.yml labels sandbox-mesh.role=runtime hold nothing worth keeping.
runtime=$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT" --filter "label=sandbox-mesh.role=runtime")
if [ -n "$runtime" ]; then
    docker volume rm $runtime >/dev/null
fi
kept=$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT" | tr '\n' ' ')
echo "kept volumes: ${kept:-none} (make clean removes them)"
