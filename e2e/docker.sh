#!/usr/bin/env bash
# Makes sure a Docker engine in swarm mode answers on this machine, installing
# and starting one when we are root and none runs. Idempotent: an engine that
# already answers (a user's, or one started by an earlier run) is used as is.
#
#   e2e/docker.sh          ensure engine + swarm; prints the dockerd log path
#   e2e/docker.sh images   also build the offline test images (busybox)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.e2e"
mkdir -p "$state"
dockerd_log=${DOCKERD_LOG:-/var/log/dockerd.log}

log() { printf 'docker.sh: %s\n' "$*" >&2; }

apt_install() {
	[ "$(id -u)" = 0 ] || { log "need root to install $*"; exit 1; }
	# apt-get update once per run of this script, not once per package.
	if [ -z "${_apt_updated:-}" ]; then
		apt-get update -qq
		_apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_engine() {
	if docker info >/dev/null 2>&1; then
		return
	fi
	command -v dockerd >/dev/null 2>&1 || {
		log "installing Debian's docker.io"
		apt_install docker.io
	}
	[ "$(id -u)" = 0 ] || { log "no Docker engine answers and we are not root to start one"; exit 1; }
	recreate_credentials_mounts
	# Three tries: Docker 20.10's manager can panic at start when a task's
	# secret driver is not enabled yet (see recreate_credentials_mounts), a
	# race that a new start may win.
	local pid try
	for try in 1 2 3; do
		log "starting dockerd (log: $dockerd_log)"
		nohup dockerd >>"$dockerd_log" 2>&1 &
		pid=$!
		echo "$pid" >"$state/dockerd.pid"
		for _ in $(seq 1 60); do
			docker info >/dev/null 2>&1 && return
			kill -0 "$pid" 2>/dev/null || break
			sleep 1
		done
		kill -0 "$pid" 2>/dev/null && break # alive but silent: a new start would not help
		log "dockerd exited at start (try $try of 3); last log lines:"
		tail -n 20 "$dockerd_log" >&2
	done
	log "dockerd did not answer within 60 s; last log lines:"
	tail -n 20 "$dockerd_log" >&2
	exit 1
}

# A swarmvault plugin whose credentials mount source is gone (the clone a
# test set it to was removed, as CI removes its clones) cannot be enabled
# when dockerd starts, and Docker 20.10's manager then panics on the first
# task that needs one of its secrets (a nil plugin client in swarmkit's
# SecretDriver.Get): dockerd exits at every start. An empty directory in its
# place lets the plugin start; the tests set the mount again.
recreate_credentials_mounts() {
	local cfg src
	for cfg in /var/lib/docker/plugins/*/config.json; do
		[ -f "$cfg" ] || continue
		src=$(grep -oE '"Destination":"/run/swarmvault","Name":"credentials"[^{}]*"Source":"[^"]*"' "$cfg" | sed -E 's/.*"Source":"([^"]*)"$/\1/' | head -n 1)
		case "$src" in
		/*) ;;
		*) continue ;;
		esac
		[ -e "$src" ] && continue
		log "plugin credentials mount $src is gone: creating it empty, or the plugin cannot start and Docker 20.10's manager panics at the first task that needs its secrets"
		mkdir -p "$src"
	done
}

ensure_swarm() {
	local state
	state=$(docker info --format '{{.Swarm.LocalNodeState}}')
	if [ "$state" != active ]; then
		log "initialising a single-node swarm on 127.0.0.1"
		docker swarm init --advertise-addr 127.0.0.1 >/dev/null
	fi
}

# The test image: busybox from Debian's busybox-static, FROM scratch, so it
# builds with no registry. The helper-service bootstrap needs its `cat`, and
# the e2e tests read each task's /run/secrets/* with `docker exec … cat`.
ensure_busybox() {
	local image=swarmvault-test/busybox:latest
	if docker image inspect "$image" >/dev/null 2>&1; then
		return
	fi
	[ -x /bin/busybox ] || apt_install busybox-static
	local ctx
	ctx=$(mktemp -d)
	cp /bin/busybox "$ctx/busybox"
	cat >"$ctx/Dockerfile" <<-'EOF'
		FROM scratch
		COPY busybox /bin/busybox
		ENV PATH=/bin
		RUN ["/bin/busybox", "--install", "-s", "/bin"]
		CMD ["sh"]
	EOF
	log "building $image"
	DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null
	rm -rf "$ctx"
}

# The database client of the dynamic-secret tests (e2e/pgclient), a static
# binary FROM scratch. Rebuilt each time: the build cache makes that cheap,
# and the image follows the source.
build_pgclient() {
	local ctx
	ctx=$(mktemp -d)
	(cd "$root/e2e/pgclient" && CGO_ENABLED=0 go build -trimpath -o "$ctx/pgclient" .)
	cat >"$ctx/Dockerfile" <<-'EOF'
		FROM scratch
		COPY pgclient /pgclient
		ENTRYPOINT ["/pgclient"]
	EOF
	DOCKER_BUILDKIT=0 docker build -q -t swarmvault-test/pgclient:latest "$ctx" >/dev/null
	rm -rf "$ctx"
}

# The TLS server of the certificate tests (e2e/tlsserver), built the same
# way.
build_tlsserver() {
	local ctx
	ctx=$(mktemp -d)
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$ctx/tlsserver" ./e2e/tlsserver)
	cat >"$ctx/Dockerfile" <<-'EOF'
		FROM scratch
		COPY tlsserver /tlsserver
		ENTRYPOINT ["/tlsserver"]
	EOF
	DOCKER_BUILDKIT=0 docker build -q -t swarmvault-test/tlsserver:latest "$ctx" >/dev/null
	rm -rf "$ctx"
}

ensure_engine
ensure_swarm
if [ "${1:-}" = images ]; then
	ensure_busybox
	build_pgclient
	build_tlsserver
fi
echo "$dockerd_log"
