#!/usr/bin/env bash
# Builds the service image (deploy/Dockerfile) with the engine at hand, docker or podman:
#
#   deploy/build-image.sh [TAG]          # default lstm-serving:latest, what docker-compose.yml runs
#
# It adds only what this machine needs, and says what it added:
#   - PYTHON_IMAGE: python:3.11-slim-bookworm where it can be pulled, else localhost/bookworm-python:3.11,
#     built from Debian's packages when missing (deploy/build-debian-image.sh python)
#   - TORCH_INDEX_URL: the PyTorch CPU index where it answers, else the index pip uses here (`pip config list`;
#     PyPI when none is set), with pip's local find-links folders mounted into the build read-only
#     (podman build -v DIR:DIR:ro), where the CPU wheel of torch lies
#   - podman: --format docker (the OCI format drops HEALTHCHECK), --network host, and the ignore file named
#     (docker reads deploy/Dockerfile.dockerignore by itself, next to the Dockerfile)
# Set PYTHON_IMAGE or TORCH_INDEX_URL to choose yourself. An image whose inputs (Dockerfile, build arguments,
# base image, the files the build copies) are unchanged is not built again: FORCE_BUILD=1 builds it anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/engine.sh
source deploy/engine.sh

TAG=${1:-lstm-serving:latest}
PIP=${PIP:-python3 -m pip}
DEFAULT_PYTHON_IMAGE=docker.io/library/python:3.11-slim-bookworm
DEFAULT_TORCH_INDEX=https://download.pytorch.org/whl/cpu

args=()
if [ -z "${PYTHON_IMAGE:-}" ]; then
    if can_pull "$DEFAULT_PYTHON_IMAGE"; then
        PYTHON_IMAGE=$DEFAULT_PYTHON_IMAGE
    else
        PYTHON_IMAGE=localhost/bookworm-python:3.11
        echo "build-image: $DEFAULT_PYTHON_IMAGE cannot be pulled: base $PYTHON_IMAGE (Debian's packages)"
        PYTHON_BASE=$PYTHON_IMAGE deploy/build-debian-image.sh python
    fi
fi
args+=(--build-arg "PYTHON_IMAGE=$PYTHON_IMAGE")

pip_setting() {  # the last value pip reports for KEY (files, then PIP_* variables)
    $PIP config list 2>/dev/null | sed -n "s/^[^.]*\.$1='\(.*\)'$/\1/p" | tail -1
}

if [ -z "${TORCH_INDEX_URL:-}" ]; then
    if curl -fsS -m 10 -o /dev/null "$DEFAULT_TORCH_INDEX/torch/" 2>/dev/null; then
        TORCH_INDEX_URL=$DEFAULT_TORCH_INDEX
    else
        TORCH_INDEX_URL=$(pip_setting index-url)
        TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://pypi.org/simple}
        echo "build-image: $DEFAULT_TORCH_INDEX does not answer: torch from $TORCH_INDEX_URL and pip's find-links"
    fi
fi
if [ "$TORCH_INDEX_URL" != "$DEFAULT_TORCH_INDEX" ]; then
    for dir in $(pip_setting find-links); do
        dir=${dir#file://}
        if [ -d "$dir" ]; then
            if [ "$ENGINE" = podman ]; then
                args+=(-v "$dir:$dir:ro")
            else
                echo "build-image: docker build cannot mount $dir (pip's find-links): torch comes from $TORCH_INDEX_URL alone" >&2
            fi
        fi
    done
fi
args+=(--build-arg "TORCH_INDEX_URL=$TORCH_INDEX_URL")
[ "$ENGINE" = podman ] && args+=(--format docker --network host --ignorefile deploy/Dockerfile.dockerignore)

# The inputs' digest, kept as a label: an image built from the same inputs is not built again. (Podman's layer
# cache would find every step cached too, but hashes the 1 GB venv to know it: about 20 s.)
inputs_digest() {
    {
        echo "$ENGINE ${args[*]}"
        "$ENGINE" image inspect --format '{{.Id}}' "$PYTHON_IMAGE" 2>/dev/null || true
        sha256sum deploy/Dockerfile deploy/Dockerfile.dockerignore
        # what the build context lets in (the ! lines of the ignore file), less what it keeps out
        sed -n 's/^!//p' deploy/Dockerfile.dockerignore | xargs find | grep -v -E '(^|/)__pycache__/|^loadtests/results/' |
            while read -r f; do [ -f "$f" ] && echo "$f"; done | LC_ALL=C sort | xargs sha256sum
    } | sha256sum | cut -c1-64
}
digest=$(inputs_digest)
if [ -z "${FORCE_BUILD:-}" ] && [ "$("$ENGINE" image inspect --format '{{index .Config.Labels "org.lstm-serving.inputs"}}' "$TAG" 2>/dev/null)" = "$digest" ]; then
    echo "build-image: $TAG is up to date (inputs $digest)"
    exit 0
fi
args+=(--label "org.lstm-serving.inputs=$digest")

echo "build-image: $ENGINE build ${args[*]} -t $TAG -f deploy/Dockerfile ."
previous=$("$ENGINE" image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)
start=$(date +%s)
"$ENGINE" build "${args[@]}" -t "$TAG" -f deploy/Dockerfile .
# the image this one replaces, untagged now: removed, so rebuilds do not fill the disk (the layer cache stays)
if [ -n "$previous" ] && [ "$previous" != "$("$ENGINE" image inspect --format '{{.Id}}' "$TAG")" ]; then
    "$ENGINE" rmi "$previous" >/dev/null 2>&1 || true
fi
size=$("$ENGINE" image inspect --format '{{.Size}}' "$TAG")
echo "build-image: $TAG built in $(($(date +%s) - start)) s, $((size / 1000000)) MB"
