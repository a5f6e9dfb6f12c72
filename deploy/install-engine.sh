#!/usr/bin/env bash
# A container engine and compose for the container test (tests/test_container.py) and `make up`:
# nothing when a Docker engine answers; otherwise Debian's podman, set up to run here, and podman-compose.
# Idempotent: installs only what is missing, rewrites nothing that is already right. Needs root (apt-get).
#
#   deploy/install-engine.sh
#   CONTAINERS_CONF=FILE deploy/install-engine.sh --configure-only   # only the settings, into FILE (tests/test_deploy.py)
#
# What podman needs on a machine like this one (a VM with a hybrid cgroup v1 layout, no systemd as PID 1):
#   - runc as the OCI runtime: crun refuses the hybrid cgroup layout
#   - explicit default_ulimits: without them containers inherit limits podman cannot set here
#   - netavark + aardvark-dns: compose services find each other by name (Prometheus scrapes lstm-service:3000)
# Both settings go into /etc/containers/containers.conf, in the [containers] and [engine] tables.
# podman-compose comes from PyPI (Debian's 1.0.3 knows no compose profiles), in its own venv.
set -euo pipefail

PODMAN_COMPOSE_VERSION=${PODMAN_COMPOSE_VERSION:-1.6.0}
CONF=${CONTAINERS_CONF:-/etc/containers/containers.conf}
PODMAN_COMPOSE_VENV=${PODMAN_COMPOSE_VENV:-/opt/podman-compose}

configure_only=${1:-}

if [ "$configure_only" != --configure-only ] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    echo "install-engine: a Docker engine answers; nothing to install"
    exit 0
fi

# --- Debian packages
if [ "$configure_only" != --configure-only ]; then
    packages=(podman runc netavark aardvark-dns iptables catatonit debootstrap)
    missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "install-engine: apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi

# --- /etc/containers/containers.conf: set KEY = VALUE in [TABLE], keeping everything else in the file
set_key() {  # set_key TABLE KEY VALUE
    local table=$1 key=$2 value=$3
    mkdir -p "$(dirname "$CONF")"
    touch "$CONF"
    if awk -v t="[$table]" -v k="$key" -v v="$value" '
        $0 == t { inside = 1; next }
        /^\[/ { inside = 0 }
        inside && $0 ~ "^[ \t]*" k "[ \t]*=" { found = 1; line = $0; sub(/^[^=]*=[ \t]*/, "", line); if (line == v) same = 1 }
        END { exit !(found && same) }' "$CONF"; then
        return 0  # already so
    fi
    local tmp
    tmp=$(mktemp)
    awk -v t="[$table]" -v k="$key" -v v="$value" '
        BEGIN { done = 0 }
        $0 == t { print; print k " = " v; inside = 1; done = 1; next }
        /^\[/ { inside = 0 }
        inside && $0 ~ "^[ \t]*" k "[ \t]*=" { skip = ($0 ~ /\[[ \t]*$/) ; next }  # drop the old value (a one-line or an open array)
        skip { if ($0 ~ /^[ \t]*\]/) skip = 0; next }
        { print }
        END { if (!done) { print ""; print t; print k " = " v } }' "$CONF" >"$tmp"
    cat "$tmp" >"$CONF"
    rm -f "$tmp"
    echo "install-engine: $CONF: [$table] $key = $value"
}
set_key containers default_ulimits '["nofile=16384:16384", "nproc=30000:30000"]'
set_key engine runtime '"runc"'
set_key network network_backend '"netavark"'
[ "$configure_only" = --configure-only ] && exit 0

# --- podman-compose from PyPI, in its own venv, on PATH as /usr/local/bin/podman-compose
if ! "$PODMAN_COMPOSE_VENV/bin/podman-compose" --version 2>/dev/null | grep -q "podman-compose version $PODMAN_COMPOSE_VERSION"; then
    echo "install-engine: podman-compose $PODMAN_COMPOSE_VERSION (PyPI) in $PODMAN_COMPOSE_VENV"
    python3 -m venv "$PODMAN_COMPOSE_VENV"
    "$PODMAN_COMPOSE_VENV/bin/pip" install -q "podman-compose==$PODMAN_COMPOSE_VERSION"
fi
ln -sf "$PODMAN_COMPOSE_VENV/bin/podman-compose" /usr/local/bin/podman-compose

podman info --format '{{.Host.OCIRuntime.Name}} {{.Host.NetworkBackend}}' | grep -q '^runc netavark$' || {
    echo "install-engine: podman does not run with runc and netavark: see $CONF" >&2
    exit 1
}
echo "install-engine: podman $(podman version --format '{{.Client.Version}}'), $(podman-compose --version 2>/dev/null | grep -m1 podman-compose)"
