#!/bin/sh
# One line, and a way out, when there is no docker daemon to talk to.
command -v docker >/dev/null 2>&1 || {
  echo "error: the docker CLI is not installed; install Docker Engine (Debian: apt-get install docker.io) and start it" >&2; exit 1; }
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || {
  echo "error: no docker daemon answers at ${DOCKER_HOST:-unix:///var/run/docker.sock}; start it (systemctl start docker) or set DOCKER_HOST to one that runs" >&2; exit 1; }
