#!/usr/bin/env bash
# A real Vault dev server on 127.0.0.1:8200 for the integration and e2e tests.
# Uses a `vault` binary when one is on PATH (`vault server -dev`); otherwise
# builds e2e/vaultserver (Vault's own core + HTTP API linked as a library, see
# docs/development.md) once per machine and runs that. Idempotent.
#
#   e2e/vault.sh build    build (or reuse) the server binary; prints its path
#   e2e/vault.sh start    start unless a healthy server with a valid token runs
#                         (a sealed persistent one of ours is unsealed instead);
#                         prints the address (http://127.0.0.1:8200)
#   e2e/vault.sh stop     stop the server started by `start`
#   e2e/vault.sh restart  stop, then start (with VAULT_STORAGE: same data and
#                         tokens; without: a fresh, empty Vault); prints the address
#   e2e/vault.sh seal     seal our server (PUT sys/seal with the root token)
#   e2e/vault.sh unseal   unseal our persistent server (PUT sys/unseal with the
#                         key in <storage>/unseal-key); prints the address
#
# State (relative to the repo root): .e2e/vault.log, .e2e/vault.pid,
# .e2e/vault-token (the root token, mode 0600) and, while a persistent server
# runs, .e2e/vault-storage (its storage directory); with VAULT_DEV_PORT other
# than 8200, the same names ending in -<port>.
# Environment: VAULT_DEV_ROOT_TOKEN_ID fixes the root token's ID (default:
# random with the built server, a random ID for a `vault` binary).
# VAULT_STORAGE=DIR (absolute, or relative to the repo root) makes the built
# server persistent: data in DIR/data, unseal key in DIR/unseal-key, root token
# in DIR/root-token (see e2e/vaultserver -storage), so `restart` keeps every
# token and secret. Only with the built server: refused when a `vault` binary
# is on PATH. Without VAULT_STORAGE, `start` reuses a running server of ours
# whatever its storage (unsealing a sealed persistent one); a new one is in
# memory. With it, a server of ours on other storage is restarted on DIR.
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
# The storage directory of the persistent server we started (absent: in memory).
storage_file="$state/vault-storage$suffix"
storage=""
if [ -n "${VAULT_STORAGE:-}" ]; then
	case $VAULT_STORAGE in
	/*) storage=$VAULT_STORAGE ;;
	*) storage=$root/$VAULT_STORAGE ;;
	esac
	storage=$(realpath -m -- "$storage")
fi
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

# HTTP status of sys/health: 200 active, 503 sealed, 000 no answer, ...
health_code() { vcurl -o /dev/null -w '%{http_code}' "$addr/v1/sys/health" || true; }

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

# storage directory of the server we started and that still runs ("": none, or
# in memory).
running_storage() {
	our_pid >/dev/null && [ -s "$storage_file" ] && cat "$storage_file" || true
}

start() {
	local pid running
	ensure_curl
	mkdir -p "$state"
	if [ -n "$storage" ] && command -v vault >/dev/null 2>&1; then
		log "VAULT_STORAGE needs the built e2e/vaultserver, but start would run $(command -v vault) (on PATH): unset VAULT_STORAGE or take vault off PATH"
		exit 1
	fi
	running=$(running_storage)
	case $(health_code) in
	200)
		if pid=$(our_pid); then
			if [ -n "$storage" ] && [ "$running" != "$storage" ]; then
				log "server (pid $pid) runs with ${running:-in-memory storage}, not VAULT_STORAGE=$storage: restarting it"
				stop
			elif token_valid; then
				echo "$addr"
				return
			else
				log "server (pid $pid) answers but $token_file is not a valid token: restarting it"
				stop
			fi
		elif [ -n "$storage" ]; then
			log "VAULT_STORAGE is set but a server not started by vault.sh answers on $addr; stop it first"
			exit 1
		elif token_valid; then
			echo "$addr"
			return
		else
			log "something else answers on $addr and $token_file holds no valid token for it; stop it first"
			exit 1
		fi
		;;
	503)
		if ! pid=$(our_pid); then
			log "a sealed server not started by vault.sh answers on $addr; stop it first"
			exit 1
		fi
		if [ -n "$running" ] && { [ -z "$storage" ] || [ "$running" = "$storage" ]; }; then
			log "server (pid $pid) is sealed: unsealing it with $running/unseal-key"
			unseal_with "$running" "$pid"
			echo "$addr"
			return
		fi
		if [ -n "$running" ]; then
			log "server (pid $pid) is sealed and runs with $running, not VAULT_STORAGE=$storage: restarting it"
		else
			log "server (pid $pid) is sealed and in memory (its unseal key was not kept): restarting it"
		fi
		stop
		;;
	*)
		if pid=$(our_pid); then
			log "server (pid $pid) is not healthy: restarting it"
			stop
		fi
		;;
	esac

	rm -f "$token_file" "$storage_file"
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
		[ -n "$storage" ] && args+=(-storage "$storage")
		log "starting $bin${storage:+ with storage $storage} (log: $log_file)"
		nohup "$bin" "${args[@]}" >>"$log_file" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$pid_file"
		if [ -n "$storage" ]; then
			printf '%s\n' "$storage" >"$storage_file"
		fi
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
			rm -f "$pid_file" "$storage_file"
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
	rm -f "$pid_file" "$token_file" "$storage_file"
}

# unseal_with DIR PID: unseal our server PID with DIR/unseal-key and wait until
# it is active and its root token works.
unseal_with() {
	local dir=$1 pid=$2 key resp
	[ -s "$dir/unseal-key" ] || { log "$dir/unseal-key is missing"; exit 1; }
	key=$(tr -d '[:space:]' <"$dir/unseal-key")
	case $key in
	*[!A-Za-z0-9+/=]*)
		log "$dir/unseal-key is not base64"
		exit 1
		;;
	esac
	# The key goes on stdin, not on curl's command line.
	resp=$(printf '{"key":"%s"}' "$key" | vcurl -X PUT --data-binary @- "$addr/v1/sys/unseal") ||
		{ log "PUT $addr/v1/sys/unseal failed"; exit 1; }
	case $resp in
	*'"sealed":false'*) ;;
	*)
		log "sys/unseal did not unseal: $resp"
		exit 1
		;;
	esac
	wait_healthy "$pid"
	token_valid || { log "unsealed, but the root token in $token_file is not accepted"; exit 1; }
}

unseal() {
	local pid dir code
	ensure_curl
	pid=$(our_pid) || { log "no server started by vault.sh runs on $addr (port $port)"; exit 1; }
	dir=$(running_storage)
	if [ -z "$dir" ]; then
		log "server (pid $pid) is in memory: its unseal key was not kept (start it with VAULT_STORAGE=DIR)"
		exit 1
	fi
	if [ -n "$storage" ] && [ "$storage" != "$dir" ]; then
		log "server (pid $pid) runs with $dir, not VAULT_STORAGE=$storage"
		exit 1
	fi
	code=$(health_code)
	case $code in
	200) ;;
	503) unseal_with "$dir" "$pid" ;;
	*)
		log "server (pid $pid) answers sys/health with $code, neither sealed (503) nor active (200)"
		exit 1
		;;
	esac
	echo "$addr"
}

seal() {
	local pid code token resp
	ensure_curl
	pid=$(our_pid) || { log "no server started by vault.sh runs on $addr (port $port): not sealing"; exit 1; }
	code=$(health_code)
	[ "$code" = 503 ] && return
	[ -s "$token_file" ] || { log "$token_file is missing"; exit 1; }
	token=$(tr -d '[:space:]' <"$token_file")
	resp=$(vcurl -X PUT -H "X-Vault-Token: $token" -w '%{http_code}' "$addr/v1/sys/seal") ||
		{ log "PUT $addr/v1/sys/seal failed: $resp"; exit 1; }
	case $resp in
	*204) ;;
	*)
		log "sys/seal failed: $resp"
		exit 1
		;;
	esac
	code=$(health_code)
	[ "$code" = 503 ] || { log "sealed, but sys/health answers $code, not 503"; exit 1; }
	if [ -z "$(running_storage)" ]; then
		log "server (pid $pid) is in memory: it cannot be unsealed (its key was not kept); start replaces it with a fresh one"
	fi
}

case "${1:-}" in
build) build ;;
start) start ;;
stop) stop ;;
restart)
	stop
	start
	;;
seal) seal ;;
unseal) unseal ;;
*)
	echo "usage: $0 build|start|stop|restart|seal|unseal" >&2
	exit 2
	;;
esac
