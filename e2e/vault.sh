#!/usr/bin/env bash
# A real Vault dev server on 127.0.0.1:8200 for the integration and e2e tests.
# Uses a `vault` binary when one is on PATH (`vault server -dev`); otherwise
# builds e2e/vaultserver (Vault's own core + HTTP API linked as a library, see
# docs/development.md) once per machine and runs that. Idempotent.
#
#   e2e/vault.sh build   build (or reuse) the server binary; prints its path
#   e2e/vault.sh start   start unless a healthy server with a valid token runs;
#                        prints the address (http://127.0.0.1:8200)
#   e2e/vault.sh stop    stop the server started by `start`
#
# State (relative to the repo root): .e2e/vault.log, .e2e/vault.pid and
# .e2e/vault-token (the root token, mode 0600); with VAULT_DEV_PORT other
# than 8200, the same names ending in -<port>.
# Environment: VAULT_DEV_ROOT_TOKEN_ID fixes the root token's ID (default:
# random with the built server, a random ID for a `vault` binary).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/e2e/vaultserver"
state="$root/.e2e"
# VAULT_DEV_PORT runs a second, independent server (the cluster e2e's
# side-by-side instances): its files carry the port, e.g. .e2e/vault-token-8201.
port=${VAULT_DEV_PORT:-8200}
suffix=""
[ "$port" = 8200 ] || suffix="-$port"
listen=127.0.0.1:$port
addr="http://$listen"
log_file="$state/vault$suffix.log"
pid_file="$state/vault$suffix.pid"
token_file="$state/vault-token$suffix"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/swarmvault"

log() { printf 'vault.sh: %s\n' "$*" >&2; }

ensure_curl() {
	command -v curl >/dev/null 2>&1 && return
	[ "$(id -u)" = 0 ] || { log "curl is missing and we are not root to install it"; exit 1; }
	log "installing curl"
	# Another process may hold the dpkg lock; wait for it.
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq curl >/dev/null ||
		{ apt-get -o DPkg::Lock::Timeout=300 update -qq &&
			DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq curl >/dev/null; }
}

# curl against the local server only, never through a proxy.
vcurl() { curl --noproxy '*' -s --max-time 5 "$@"; }

healthy() { vcurl -f -o /dev/null "$addr/v1/sys/health"; }

token_valid() {
	[ -s "$token_file" ] || return 1
	local token
	token=$(tr -d '[:space:]' <"$token_file")
	vcurl -f -o /dev/null -H "X-Vault-Token: $token" "$addr/v1/auth/token/lookup-self"
}

# pid of the server we started, if it still runs.
our_pid() {
	[ -s "$pid_file" ] || return 1
	local pid
	pid=$(cat "$pid_file")
	kill -0 "$pid" 2>/dev/null || return 1
	echo "$pid"
}

build() {
	local hash bin tmp
	# The build flags are part of the hash, so changing them rebuilds too.
	local flags=(-trimpath -buildvcs=false -ldflags=-s\ -w)
	hash=$(cd "$src" && { printf '%s\n' "${flags[@]}"; cat go.mod go.sum $(LC_ALL=C ls ./*.go); } |
		sha256sum | cut -c1-16)
	bin="$cache/vaultserver-$hash"
	if [ -x "$bin" ]; then
		echo "$bin"
		return
	fi
	mkdir -p "$cache"
	# One build at a time per machine; a second caller waits and reuses it.
	exec 9>"$cache/vaultserver.lock"
	flock 9
	if [ ! -x "$bin" ]; then
		log "building the Vault dev server (once per machine; a cold build takes minutes) -> $bin"
		tmp=$(mktemp "$cache/.vaultserver-XXXXXX")
		# go.sum pins every module, so downloads are verified against it and
		# the checksum database is not needed.
		if ! (cd "$src" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly \
			go build "${flags[@]}" -o "$tmp" .); then
			rm -f "$tmp"
			log "build failed"
			exit 1
		fi
		chmod 0755 "$tmp"
		mv -f "$tmp" "$bin"
	fi
	exec 9>&-
	echo "$bin"
}

start() {
	local pid
	ensure_curl
	mkdir -p "$state"
	if healthy; then
		if token_valid; then
			echo "$addr"
			return
		fi
		if pid=$(our_pid); then
			log "server (pid $pid) answers but $token_file is not a valid token: restarting it"
			stop
		else
			log "something else answers on $addr and $token_file holds no valid token for it; stop it first"
			exit 1
		fi
	elif pid=$(our_pid); then
		log "server (pid $pid) is not healthy: restarting it"
		stop
	fi

	rm -f "$token_file"
	if command -v vault >/dev/null 2>&1; then
		local id=${VAULT_DEV_ROOT_TOKEN_ID:-root-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')}
		log "starting $(command -v vault) server -dev (log: $log_file)"
		nohup vault server -dev -dev-listen-address="$listen" -dev-root-token-id="$id" \
			>>"$log_file" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$pid_file"
		wait_healthy "$pid"
		(umask 077 && printf '%s\n' "$id" >"$token_file")
	else
		local bin
		bin=$(build)
		local args=(-addr "$listen" -token-file "$token_file")
		[ -n "${VAULT_DEV_ROOT_TOKEN_ID:-}" ] && args+=(-dev-root-token-id "$VAULT_DEV_ROOT_TOKEN_ID")
		log "starting $bin (log: $log_file)"
		nohup "$bin" "${args[@]}" >>"$log_file" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$pid_file"
		# The server writes the token file once it serves.
		wait_healthy "$pid" "$token_file"
	fi
	token_valid || { log "the root token in $token_file is not accepted"; exit 1; }
	echo "$addr"
}

# wait_healthy PID [FILE]: until PID's server answers healthy (and FILE exists).
wait_healthy() {
	local pid=$1 file=${2:-}
	for _ in $(seq 1 120); do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "the server exited; last log lines:"
			tail -n 20 "$log_file" >&2
			rm -f "$pid_file"
			exit 1
		fi
		if { [ -z "$file" ] || [ -s "$file" ]; } && healthy; then
			return
		fi
		sleep 0.5
	done
	log "the server was not healthy within 60 s; last log lines:"
	tail -n 20 "$log_file" >&2
	exit 1
}

stop() {
	local pid
	if pid=$(our_pid); then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 30); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		if kill -0 "$pid" 2>/dev/null; then
			log "pid $pid did not stop within 15 s: killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	elif healthy 2>/dev/null; then
		log "a server answers on $addr but was not started by vault.sh: leaving it"
	fi
	rm -f "$pid_file" "$token_file"
}

case "${1:-}" in
build) build ;;
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 build|start|stop" >&2
	exit 2
	;;
esac
