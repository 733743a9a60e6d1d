#!/usr/bin/env bash
# A plugin registry on 127.0.0.1:5000 for `make push` and `docker plugin
# install`, as users install the plugin: Debian's docker-registry
# (distribution 2.8) with a config of our own, since the packaged one asks
# for htpasswd auth. Loopback only; 127.0.0.0/8 registries need no TLS for
# Docker. Idempotent.
#
#   e2e/registry.sh start   install and start unless one answers; prints host:port
#   e2e/registry.sh stop    stop the registry started by `start`
#
# State: .e2e/registry/ (storage, config, log, pid).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.e2e/registry"
listen=127.0.0.1:5000

log() { printf 'registry.sh: %s\n' "$*" >&2; }

answers() { curl --noproxy '*' -s -f -o /dev/null --max-time 2 "http://$listen/v2/"; }

start() {
	if answers; then
		echo "$listen"
		return
	fi
	if ! command -v docker-registry >/dev/null 2>&1; then
		[ "$(id -u)" = 0 ] || { log "docker-registry is missing and we are not root to install it"; exit 1; }
		log "installing Debian's docker-registry"
		apt-get -o DPkg::Lock::Timeout=300 update -qq
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq docker-registry >/dev/null
	fi
	mkdir -p "$state/storage"
	cat >"$state/config.yml" <<-YAML
		version: 0.1
		log:
		  level: warn
		storage:
		  filesystem:
		    rootdirectory: $state/storage
		  delete:
		    enabled: true
		http:
		  addr: $listen
	YAML
	log "starting on $listen (log: $state/registry.log)"
	nohup docker-registry serve "$state/config.yml" >>"$state/registry.log" 2>&1 &
	echo $! >"$state/registry.pid"
	for _ in $(seq 1 50); do
		if answers; then
			echo "$listen"
			return
		fi
		sleep 0.2
	done
	log "the registry did not answer; last log lines:"
	tail -n 20 "$state/registry.log" >&2
	exit 1
}

stop() {
	[ -s "$state/registry.pid" ] || return 0
	kill "$(cat "$state/registry.pid")" 2>/dev/null || true
	rm -f "$state/registry.pid"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
