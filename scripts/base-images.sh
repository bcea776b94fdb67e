#!/usr/bin/env bash
# Make the Debian base images the Dockerfiles start FROM. Where a registry answers, pull them;
# where none does (this lab's usual home), build them with mmdebstrap from the host's own apt
# sources and `docker import` them under the same tag, so the Dockerfiles stay conventional.
set -euo pipefail

# The host's Debian mirror, read from its apt sources at run time (never written down).
host_mirror() {
  local uri
  uri=$(grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' \
        | grep -v security | head -n 1 || true)
  if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
    uri=$(awk '$1=="deb" && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  [ -n "$uri" ] || { echo "base-images: no Debian mirror in /etc/apt/sources.list(.d); add one or make a registry reachable" >&2; exit 1; }
  echo "$uri"
}

build_base() {  # tag suite
  local tag=$1 suite=$2
  if docker image inspect "$tag" >/dev/null 2>&1; then echo "base-images: $tag present"; return; fi
  if timeout 20 docker pull -q "$tag" >/dev/null 2>&1; then echo "base-images: pulled $tag"; return; fi
  command -v mmdebstrap >/dev/null || {
    echo "base-images: no registry for $tag and no mmdebstrap; install it: apt-get install mmdebstrap" >&2; exit 1; }
  local mirror; mirror=$(host_mirror)
  echo "base-images: building $tag from Debian $suite with mmdebstrap"
  # sid's Release file on some mirrors is past Valid-Until; the check means nothing for a lab image.
  mmdebstrap --quiet --variant=minbase --aptopt='Acquire::Check-Valid-Until "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    "$suite" - "deb $mirror $suite main" \
    | docker import --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$tag" >/dev/null
  echo "base-images: imported $tag"
}

build_base debian:bookworm-slim bookworm
build_base debian:sid-slim sid
