# shellcheck shell=bash
# Sourced by the deploy/ scripts: picks the container engine and its compose command.
#
#   ENGINE   docker when a Docker engine answers (`docker info`), else podman; set it to choose
#   COMPOSE  `docker compose` with docker, `podman-compose` with podman; set it to choose

if [ -z "${ENGINE:-}" ]; then
    if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
        ENGINE=docker
    elif command -v podman >/dev/null 2>&1; then
        ENGINE=podman
    else
        echo "no container engine: neither a Docker engine nor podman (make install-system installs podman)" >&2
        exit 3
    fi
fi
if [ -z "${COMPOSE:-}" ]; then
    if [ "$ENGINE" = docker ]; then COMPOSE="docker compose"; else COMPOSE=podman-compose; fi
fi
export ENGINE COMPOSE

# image_exists IMAGE: whether the engine has IMAGE locally
image_exists() {
    "$ENGINE" image inspect "$1" >/dev/null 2>&1
}

# can_pull IMAGE: whether IMAGE is here or can be pulled (a machine without a registry answers no quickly)
can_pull() {
    image_exists "$1" || timeout "${PULL_TIMEOUT:-60}" "$ENGINE" pull -q "$1" >/dev/null 2>&1
}
