#!/usr/bin/env bash
# The arm64 build, run on this (amd64) machine under qemu user-mode emulation
# (Debian's qemu-user-static): no arm64 hardware, no Docker. Idempotent.
#
#   e2e/arm64.sh unit    the unit tests of the packages that run under qemu,
#                        compiled for arm64 (go test -exec qemu-aarch64-static)
#   e2e/arm64.sh smoke   bin/swarmvault-arm64 (make build GOARCH=arm64) run
#                        under qemu as the plugin runs, against the dev Vault:
#                        one GetSecret over its Unix socket must give the
#                        value written to Vault
#
# smoke's environment: VAULT_ADDR (default http://127.0.0.1:8200) and
# VAULT_TOKEN_FILE, a file holding a root token for it (default
# .e2e/vault-token, as make test-integration uses); `make vault-dev` starts
# that Vault. Each run makes its own Vault objects, named arm64smoke-<random>
# (a KV secret, two policies, a token role, a token), and removes them.
#
# Neither part runs -race: the race detector needs cgo, and for arm64 a cgo
# cross-toolchain; under qemu without cgo, go test refuses -race for arm64.
# `make test-unit` runs the race detector natively (amd64).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

QEMU=qemu-aarch64-static
# Every package with unit tests but main (.): main_test.go builds the plugin
# binary for GOARCH and execs it itself, which gives "exec format error"
# unless binfmt_misc hands arm64 ELF files to qemu (a host-wide setting this
# script does not make); the smoke part runs that binary under qemu instead.
UNIT_PKGS=(./provider/ ./lifecycle/ ./vaultauth/ ./internal/... ./check/ ./metrics/ ./swarm/ ./bootstrap/)

log() { printf 'arm64.sh: %s\n' "$*" >&2; }
die() {
	log "FAIL: $*"
	exit 1
}

ensure_qemu() {
	command -v "$QEMU" >/dev/null 2>&1 && return
	[ "$(id -u)" = 0 ] ||
		die "$QEMU is missing: install Debian's qemu-user-static (sudo apt-get install --no-install-recommends qemu-user-static), or run this as root to have it installed"
	log "installing Debian's qemu-user-static (for $QEMU)"
	# Another process may hold the dpkg lock: wait for it (bounded). The
	# package lists may be missing or stale: update once and try again.
	# NEEDRESTART_SUSPEND: no service-restart prompt or noise from needrestart.
	export DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1
	local apt=(apt-get -o DPkg::Lock::Timeout=300)
	"${apt[@]}" install -y -qq --no-install-recommends qemu-user-static >/dev/null ||
		{ "${apt[@]}" update -qq &&
			"${apt[@]}" install -y -qq --no-install-recommends qemu-user-static >/dev/null; } ||
		die "apt-get could not install qemu-user-static"
	command -v "$QEMU" >/dev/null 2>&1 || die "qemu-user-static is installed but $QEMU is not on PATH"
}

unit() {
	ensure_qemu
	local start=$SECONDS
	# -count=1: the cache would otherwise hide a qemu that stopped working.
	GOARCH=arm64 CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-local} \
		go test -count=1 -timeout 15m -exec "$QEMU" "${UNIT_PKGS[@]}"
	log "arm64 unit tests passed under $QEMU in $((SECONDS - start)) s"
}

# --- smoke --------------------------------------------------------------

# is_arm64_elf FILE: a 64-bit little-endian ELF whose e_machine (bytes 18-19)
# is EM_AARCH64 (183 = 0xb7).
is_arm64_elf() {
	local h
	h=$(od -An -tx1 -N20 "$1" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//')
	# \x7f E L F, class 2 (64-bit), data 1 (little-endian) … machine b7 00.
	case "$h" in
	"7f 45 4c 46 02 01 "*" b7 00") return 0 ;;
	*) return 1 ;;
	esac
}

# vcurl: to Vault, never through a proxy, bounded.
vcurl() { curl --noproxy '*' -sS --max-time 10 "$@"; }

# vault_api METHOD PATH [JSON]: as the root token; prints the body, fails on
# an HTTP error (Vault's error text goes to stderr).
vault_api() {
	local out code
	out=$(mktemp)
	code=$(vcurl -o "$out" -w '%{http_code}' -X "$1" -H "X-Vault-Token: $root_token" \
		${3:+-H 'Content-Type: application/json' -d "$3"} "$VAULT_ADDR/v1/$2") || code=000
	case "$code" in
	2??)
		cat "$out"
		rm -f "$out"
		;;
	*)
		log "Vault: $1 $2 answered HTTP $code: $(head -c 500 "$out")"
		rm -f "$out"
		return 1
		;;
	esac
}

# vault_status PATH: the HTTP status of a GET (as the root token).
vault_status() {
	vcurl -o /dev/null -w '%{http_code}' -H "X-Vault-Token: $root_token" "$VAULT_ADDR/v1/$1" || echo 000
}

rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# Set by smoke, read by cleanup (the EXIT trap).
tmp="" plugin_pid="" id="" accessor="" made=() cleaned=""

# cleanup: stops the plugin if it still runs and removes the Vault objects
# this run made; with "check", also verifies that they are gone.
cleanup() {
	local check=${1:-} failed=""
	[ -z "$cleaned" ] || return 0
	cleaned=1
	if [ -n "$plugin_pid" ] && kill -0 "$plugin_pid" 2>/dev/null; then
		kill -KILL "$plugin_pid" 2>/dev/null || true
		wait "$plugin_pid" 2>/dev/null || true
	fi
	local obj
	for obj in "${made[@]}"; do
		case "$obj" in
		secret:*) vault_api DELETE "secret/metadata/${obj#secret:}" >/dev/null || failed=1 ;;
		policy:*) vault_api DELETE "sys/policies/acl/${obj#policy:}" >/dev/null || failed=1 ;;
		role:*) vault_api DELETE "auth/token/roles/${obj#role:}" >/dev/null || failed=1 ;;
		token:*) vault_api POST auth/token/revoke-accessor "{\"accessor\":\"${obj#token:}\"}" >/dev/null || failed=1 ;;
		esac
	done
	if [ "$check" = check ]; then
		for obj in "${made[@]}"; do
			local path code
			case "$obj" in
			secret:*) path="secret/metadata/${obj#secret:}" ;;
			policy:*) path="sys/policies/acl/${obj#policy:}" ;;
			role:*) path="auth/token/roles/${obj#role:}" ;;
			token:*) continue ;;
			esac
			code=$(vault_status "$path")
			[ "$code" = 404 ] || { log "$path is still in Vault after its removal (HTTP $code)"; failed=1; }
		done
		if [ -n "$accessor" ]; then
			local code
			code=$(vcurl -o /dev/null -w '%{http_code}' -X POST -H "X-Vault-Token: $root_token" \
				-d "{\"accessor\":\"$accessor\"}" "$VAULT_ADDR/v1/auth/token/lookup-accessor") || code=000
			[ "${code:0:1}" = 4 ] || { log "the plugin's token is still valid after its revocation (HTTP $code)"; failed=1; }
		fi
	fi
	[ -z "$tmp" ] || rm -rf "$tmp"
	[ -z "$failed" ] || { log "could not remove every Vault object of run $id (names start with $id)"; return 1; }
}

smoke() {
	VAULT_ADDR=${VAULT_ADDR:-http://127.0.0.1:8200}
	VAULT_TOKEN_FILE=${VAULT_TOKEN_FILE:-$root/.e2e/vault-token}
	local start=$SECONDS
	ensure_qemu
	[ -s "$VAULT_TOKEN_FILE" ] || die "no root token in $VAULT_TOKEN_FILE (VAULT_TOKEN_FILE): start the dev Vault with make vault-dev"
	root_token=$(tr -d '[:space:]' <"$VAULT_TOKEN_FILE")
	vcurl -f -o /dev/null "$VAULT_ADDR/v1/sys/health" ||
		die "no healthy Vault answers on $VAULT_ADDR (VAULT_ADDR): start the dev Vault with make vault-dev"
	vault_api GET auth/token/lookup-self >/dev/null ||
		die "Vault on $VAULT_ADDR does not accept the token in $VAULT_TOKEN_FILE"

	log "building bin/swarmvault-arm64"
	make --no-print-directory build GOARCH=arm64 >&2
	local bin=$root/bin/swarmvault-arm64
	[ -x "$bin" ] || die "make build GOARCH=arm64 made no $bin"
	is_arm64_elf "$bin" || die "$bin is not a 64-bit little-endian arm64 ELF (header: $(od -An -tx1 -N20 "$bin" | tr -s ' \n' ' '))"
	go version -m "$bin" | grep -qE '^[[:space:]]+build[[:space:]]+GOARCH=arm64$' ||
		die "go version -m $bin does not say GOARCH=arm64"

	tmp=$(mktemp -d /tmp/arm64smoke.XXXXXX)
	trap cleanup EXIT
	local run
	run=$(rand_hex 6)
	id=arm64smoke-$run
	local password
	password=pw-$(rand_hex 18)

	log "run $id: a KV v2 secret, the service's policy, a token role and the plugin's token in $VAULT_ADDR"
	vault_api POST "secret/data/$id/db" "{\"data\":{\"password\":\"$password\"}}" >/dev/null ||
		die "could not write secret/$id/db (is secret/ a KV v2 mount?)"
	made+=("secret:$id/db")
	# POLICY_TEMPLATE's default, {{.ServiceName}}: the service is named $id.
	vault_api PUT "sys/policies/acl/$id" \
		"{\"policy\":\"path \\\"secret/data/$id/*\\\" { capabilities = [\\\"read\\\"] }\"}" >/dev/null ||
		die "could not write policy $id"
	made+=("policy:$id")
	vault_api POST "auth/token/roles/$id" \
		"{\"allowed_policies\":[\"$id\"],\"orphan\":true,\"token_type\":\"default-service\"}" >/dev/null ||
		die "could not write token role $id"
	made+=("role:$id")
	vault_api PUT "sys/policies/acl/$id-plugin" \
		"{\"policy\":\"path \\\"auth/token/create/$id\\\" { capabilities = [\\\"update\\\"] }\\npath \\\"auth/token/lookup-self\\\" { capabilities = [\\\"read\\\"] }\"}" >/dev/null ||
		die "could not write policy $id-plugin"
	made+=("policy:$id-plugin")
	local created token
	created=$(vault_api POST auth/token/create \
		"{\"policies\":[\"$id-plugin\"],\"ttl\":\"30m\",\"display_name\":\"$id-plugin\"}") ||
		die "could not create the plugin's token"
	token=$(printf '%s' "$created" | sed -n 's/.*"client_token":"\([^"]*\)".*/\1/p')
	accessor=$(printf '%s' "$created" | sed -n 's/.*"accessor":"\([^"]*\)".*/\1/p')
	[ -n "$token" ] && [ -n "$accessor" ] || die "Vault's answer to auth/token/create holds no token and accessor"
	made+=("token:$accessor")
	(umask 077 && printf '%s\n' "$token" >"$tmp/plugin-token")

	# As the managed plugin runs (plugin/config.json's entrypoint), with a
	# clean environment (no VAULT_TOKEN or proxy of the caller's) and no
	# Docker socket: the task lifecycle is off, which a KV read does not need.
	# LOG_LEVEL=debug: no level may log a value or a token.
	local sock=$tmp/plugin.sock plugin_log=$tmp/plugin.log
	log "starting $bin under $QEMU"
	env -i PATH="$PATH" VAULT_ADDR="$VAULT_ADDR" VAULT_TOKEN_FILE="$tmp/plugin-token" TOKEN_ROLE="$id" LOG_LEVEL=debug \
		"$QEMU" "$bin" -socket "$sock" -docker-socket "$tmp/no-docker.sock" -log-timestamps=false \
		>"$plugin_log" 2>&1 </dev/null &
	plugin_pid=$!
	local i
	for i in $(seq 1 120); do
		kill -0 "$plugin_pid" 2>/dev/null || { cat "$plugin_log" >&2; die "the arm64 plugin exited at start (its log is above)"; }
		[ -S "$sock" ] && curl -sf --max-time 5 --unix-socket "$sock" -X POST -o /dev/null http://plugin/Plugin.Activate && break
		[ "$i" -lt 120 ] || { cat "$plugin_log" >&2; die "the arm64 plugin did not serve $sock within 60 s (its log is above)"; }
		sleep 0.5
	done
	log "serving after $((SECONDS - start)) s (build included)"

	# The request the engine's dispatcher sends (/work/shared/notes/protocol.md);
	# ServiceEndpointSpec is swarmkit's protobuf type: Mode 0 is VIP.
	local task=arm64task$run response code
	cat >"$tmp/request.json" <<-EOF
		{"SecretName":"db_password",
		 "SecretLabels":{"vault.path":"secret/$id/db","vault.field":"password"},
		 "ServiceID":"arm64svc$run","ServiceName":"$id","ServiceLabels":{},"ServiceHostname":"",
		 "TaskID":"$task","TaskName":"$id.1.$task","TaskImage":"busybox:latest",
		 "NodeID":"arm64node$run","ServiceEndpointSpec":{"Mode":0}}
	EOF
	response=$tmp/response.json
	code=$(curl -sS --max-time 30 --unix-socket "$sock" -X POST \
		-H 'Content-Type: application/vnd.docker.plugins.v1.2+json' --data-binary @"$tmp/request.json" \
		-o "$response" -w '%{http_code}' http://plugin/SecretProvider.GetSecret) || code=000
	local body value err
	body=$(tr -d '\n' <"$response" 2>/dev/null || true)
	err=$(printf '%s' "$body" | sed -n 's/.*"Err":"\(\([^"\\]\|\\.\)*\)".*/\1/p')
	[ "$code" = 200 ] || { cat "$plugin_log" >&2; die "GetSecret answered HTTP $code: ${err:-$body}"; }
	[ -z "$err" ] || die "GetSecret answered an error: $err"
	value=$(printf '%s' "$body" | sed -n 's/.*"Value":"\([A-Za-z0-9+/=]*\)".*/\1/p')
	[ -n "$value" ] || die "GetSecret's answer holds no Value: $(printf '%s' "$body" | sed 's/"Value":"[^"]*"/"Value":"…"/')"
	# Byte for byte: the file holds the decoded value, no newline added.
	printf '%s' "$value" | base64 -d >"$tmp/value" 2>/dev/null || die "GetSecret's Value is not base64"
	printf '%s' "$password" | cmp -s - "$tmp/value" ||
		die "GetSecret's Value ($(wc -c <"$tmp/value") bytes) is not the password written to secret/$id/db"
	log "GetSecret gave the value written to Vault"

	log "stopping the plugin (SIGTERM)"
	kill -TERM "$plugin_pid"
	for i in $(seq 1 60); do
		kill -0 "$plugin_pid" 2>/dev/null || break
		[ "$i" -lt 60 ] || { cat "$plugin_log" >&2; die "the arm64 plugin did not stop within 30 s of SIGTERM"; }
		sleep 0.5
	done
	local rc=0
	wait "$plugin_pid" || rc=$?
	plugin_pid=""
	[ "$rc" = 0 ] || { cat "$plugin_log" >&2; die "the arm64 plugin exited with status $rc after SIGTERM (its log is above)"; }
	grep -q 'shutting down' "$plugin_log" || { cat "$plugin_log" >&2; die "the plugin's log does not say it shut down"; }

	# grep -c: the secrets themselves never reach the terminal.
	local n
	n=$(grep -cF -- "$password" "$plugin_log" || true)
	[ "$n" = 0 ] || die "the plugin's log holds the secret value ($n lines)"
	n=$(grep -cF -- "$token" "$plugin_log" || true)
	[ "$n" = 0 ] || die "the plugin's log holds the plugin's token ($n lines)"
	n=$(grep -cF -- "$root_token" "$plugin_log" || true)
	[ "$n" = 0 ] || die "the plugin's log holds the root token ($n lines)"
	log "the plugin's log ($(wc -l <"$plugin_log") lines) holds neither the value nor a token"

	cleanup check || die "Vault objects of run $id are left"
	trap - EXIT
	log "arm64 smoke passed in $((SECONDS - start)) s"
}

case "${1:-}" in
unit) unit ;;
smoke) smoke ;;
*)
	echo "usage: $0 unit|smoke" >&2
	exit 2
	;;
esac
