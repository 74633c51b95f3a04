#!/usr/bin/env bash
# Removes everything the mesh made, naming each thing: its containers and
# networks, every one of its volumes (control's database and output files,
# the egress's CA, the package caches) and the sandboxes or sandbox networks
# a spawner left behind. Kept: .env (the secrets and tenant keys clients sign
# with; delete it yourself for new ones), the images (`make images` made
# them) and the workspace root (empty once the spawner has stopped).
set -euo pipefail
cd "$(dirname "$0")/.."
PROJECT=${COMPOSE_PROJECT_NAME:-sandbox-mesh}
SPAWNER=${SPAWNER_NAME:-compose}

remove() { # kind docker-subcommand names...
    local kind=$1 command=$2 name
    shift 2
    for name in "$@"; do
        echo "removing $kind $name"
        docker $command "$name" >/dev/null
    done
}

services=$(docker ps -a --format '{{.Names}}' --filter "label=com.docker.compose.project=$PROJECT")
if [ -n "$services" ]; then
    # The spawner drains on SIGTERM and removes its sandboxes itself.
    echo "stopping" $services
    docker stop -t 45 $services >/dev/null
fi
remove container "rm -f" $services
remove sandbox "rm -f" \
    $(docker ps -a --format '{{.Names}}' --filter "label=sandbox-mesh.role=sandbox" --filter "label=sandbox-mesh.spawner=$SPAWNER")
remove network "network rm" \
    $(docker network ls --format '{{.Name}}' --filter "label=sandbox-mesh.role=sandbox-network" --filter "label=sandbox-mesh.spawner=$SPAWNER") \
    $(docker network ls --format '{{.Name}}' --filter "label=com.docker.compose.project=$PROJECT")
# The CA volume has a fixed name (compose.yml); found by it too.
remove volume "volume rm" $( {
    docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT"
    docker volume ls -q --filter "name=^$PROJECT-egress-ca\$"
} | sort -u)
echo "kept .env and the images; nothing else of project $PROJECT is left"
