#!/usr/bin/env bash
# Build the lab's images with the plain docker builder (this daemon has no buildx); layer caching
# makes a rebuild with nothing changed take seconds.
set -euo pipefail
build() {  # tag context [dockerfile]
  local tag=$1 ctx=$2 file=${3:-$2/Dockerfile} out
  if ! out=$(DOCKER_BUILDKIT=0 docker build -q -t "$tag" -f "$file" "$ctx" 2>&1); then
    echo "$out" | tail -n 20 >&2
    echo "error: building image $tag from $file failed (output above)" >&2
    exit 1
  fi
  echo "images: $tag ready"
}
build wobble/python:dev . agents/Dockerfile
build wobble/sbc:dev sbc/kamailio
build wobble/media:dev sbc/rtpengine
build wobble/pbx:dev sbc/asterisk
build wobble/db:dev sbc/postgres
