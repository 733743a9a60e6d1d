#!/usr/bin/env bash
# scripts/require-docker.sh WHAT: succeeds when a Docker engine answers
# `docker info`; otherwise fails with one sentence naming WHAT (e.g.
# "make push"). It only asks: it installs nothing, starts no dockerd and
# never touches swarm mode or images (e2e/docker.sh does that for the
# test targets). DOCKER_INFO_TIMEOUT bounds the question (default 30 s).
set -euo pipefail

what=${1:-this}
fail() {
	echo "$what needs a running Docker engine (docker info failed): $*" >&2
	exit 1
}

command -v docker >/dev/null 2>&1 || fail "no docker command on PATH (install the Docker CLI and engine, e.g. Debian's docker.io)"
rc=0
out=$(timeout "${DOCKER_INFO_TIMEOUT:-30}" docker info --format '{{.ServerVersion}}' 2>&1) || rc=$?
# Older CLIs print the server error and still exit 0, with no server version.
version=$(printf '%s\n' "$out" | tail -n 1 | tr -d '[:space:]')
if [ "$rc" = 124 ]; then
	fail "no answer within ${DOCKER_INFO_TIMEOUT:-30} s from ${DOCKER_HOST:-the default socket}"
elif [ "$rc" != 0 ] || ! printf '%s' "$version" | grep -Eq '^[0-9]+\.[0-9]+'; then
	# The CLI's own reason, on one line (e.g. "Cannot connect to the Docker
	# daemon at unix:///var/run/docker.sock. Is the docker daemon running?").
	reason=$(printf '%s\n' "$out" | grep -v '^[[:space:]]*$' | tr '\n' ' ' | sed 's/[[:space:]]*$//')
	fail "${reason:-docker info gave no server version}"
fi
