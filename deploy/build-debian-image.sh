#!/usr/bin/env bash
# Base images from Debian's packages, for machines that cannot pull from an image registry
# (air-gapped sites; this project's own machines reach only Debian and PyPI):
#
#   deploy/build-debian-image.sh python       # -> localhost/bookworm-python:3.11, the stand-in for python:3.11-slim-bookworm
#   deploy/build-debian-image.sh prometheus   # -> localhost/prometheus-debian:bookworm, the stand-in for prom/prometheus
#   ... --force                               # rebuild even when the image exists (default: build only when missing)
#
# python: `debootstrap --variant=minbase` bookworm with python3 (3.11), python3-venv and ca-certificates,
# a python -> python3 link, and this machine's pip settings (index, find-links, timeout) and CA bundle copied
# in, so that pip inside a build reaches the same package index as pip here. Use it with
#   docker|podman build --build-arg PYTHON_IMAGE=localhost/bookworm-python:3.11 -f deploy/Dockerfile .
# (deploy/build-image.sh does that by itself when python:3.11-slim-bookworm cannot be pulled).
#
# prometheus: Debian's `prometheus` package on top of the python base (deploy/prometheus-image/Dockerfile),
# run as nobody like prom/prometheus; docker-compose.yml takes it through PROMETHEUS_IMAGE.
#
# Environment: ENGINE (docker|podman, default: the one that answers), MIRROR (Debian mirror, default
# http://deb.debian.org/debian), PIP (the pip whose settings are copied, default `python3 -m pip`).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/engine.sh
source deploy/engine.sh

PYTHON_BASE=${PYTHON_BASE:-localhost/bookworm-python:3.11}
PROMETHEUS_BASE=${PROMETHEUS_BASE:-localhost/prometheus-debian:bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PIP=${PIP:-python3 -m pip}

what=${1:?usage: deploy/build-debian-image.sh python|prometheus [--force]}
force=${2:-}

# pip_conf: a pip.conf for the image from this machine's pip settings (files and PIP_* variables alike):
# index-url, extra-index-url (http/https ones), find-links, trusted-host, timeout; the CA bundle at Debian's path
pip_conf() {
    echo "[global]"
    echo "cert = /etc/ssl/certs/ca-certificates.crt"
    $PIP config list 2>/dev/null | python3 -c '
import re, sys
seen = {}
for line in sys.stdin:
    m = re.match(r"^[^.]*\.([a-z-]+)=(.*)$", line.strip())
    if not m:
        continue
    key, value = m.group(1), m.group(2).strip().strip("\x27\"")
    key = {"default-timeout": "timeout"}.get(key, key)
    if key in ("index-url", "find-links", "trusted-host", "timeout"):
        seen[key] = value
    elif key == "extra-index-url":
        urls = [u for u in value.split() if u.startswith(("http://", "https://"))]
        if urls:
            seen[key] = " ".join(urls)
for key, value in seen.items():
    print(f"{key} = {value}")
'
}

# ca_bundle: the CA bundle pip and Python use here (a proxy's CA included), copied over the image's
ca_bundle() {
    for f in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
        if [ -n "$f" ] && [ -f "$f" ]; then
            echo "$f"
            return
        fi
    done
}

build_python() {
    if image_exists "$PYTHON_BASE" && [ "$force" != --force ]; then
        echo "$PYTHON_BASE: present"
        return
    fi
    command -v debootstrap >/dev/null || {
        echo "debootstrap is missing: make install-system (or apt-get install debootstrap)" >&2
        exit 1
    }
    local rootfs start
    start=$(date +%s)
    rootfs=$(mktemp -d /var/tmp/bookworm-python.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    echo "$PYTHON_BASE: debootstrap bookworm into $rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 || {
        tail -20 "$rootfs.log" >&2
        exit 1
    }
    rm -f "$rootfs.log"
    ln -sf python3 "$rootfs/usr/bin/python"
    local bundle
    bundle=$(ca_bundle)
    [ -n "$bundle" ] && cp "$bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    pip_conf >"$rootfs/etc/pip.conf"
    echo "$PYTHON_BASE: /etc/pip.conf:"
    sed 's/^/  /' "$rootfs/etc/pip.conf"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/tmp/*
    local quiet=()
    [ "$ENGINE" = podman ] && quiet=(--quiet)
    tar -C "$rootfs" --numeric-owner -c . | "$ENGINE" import "${quiet[@]}" \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        - "$PYTHON_BASE" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
    echo "$PYTHON_BASE: built in $(($(date +%s) - start)) s"
}

build_prometheus() {
    if image_exists "$PROMETHEUS_BASE" && [ "$force" != --force ]; then
        echo "$PROMETHEUS_BASE: present"
        return
    fi
    build_python
    local start args=()
    start=$(date +%s)
    [ "$ENGINE" = podman ] && args=(--format docker --network host)
    "$ENGINE" build -q "${args[@]}" --build-arg BASE_IMAGE="$PYTHON_BASE" -t "$PROMETHEUS_BASE" -f deploy/prometheus-image/Dockerfile deploy/prometheus-image >/dev/null
    echo "$PROMETHEUS_BASE: built in $(($(date +%s) - start)) s"
}

case "$what" in
    python) build_python ;;
    prometheus) build_prometheus ;;
    *)
        echo "usage: deploy/build-debian-image.sh python|prometheus [--force]" >&2
        exit 2
        ;;
esac
