#!/usr/bin/env bash
# Scale-up in the real swarm: time from `docker service scale x=N` to N
# running tasks, for a service whose SECRETS secrets come from the plugin and
# for the same service with as many native swarm secrets. The two
# alternate, ROUNDS times, in one run. Vault counts the requests of each
# Vault-backed scale-up (a file audit device). Needs the swarm, the dev
# Vault and the plugin built (make bench sees to them); configures the
# plugin with a token file.
#
#   bench/scale.sh [N] [ROUNDS]     default 50 tasks, 3 rounds
#   SECRETS=5                       secrets per task (default 1)
#   REUSE=true                      the Vault secrets are vault.reuse=true
#   DOCKER_HOST, NODES              a cluster (see bench/cluster-scale.sh)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
N=${1:-50}
ROUNDS=${2:-3}
SECRETS=${SECRETS:-1}
REUSE=${REUSE:-false}
PLUGIN=${PLUGIN:-swarmvault:latest}
VAULT_ADDR=${VAULT_ADDR:-http://127.0.0.1:8200}
image=swarmvault-test/busybox:latest
run=scale$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
root_token=$(cat .e2e/vault-token)
vault_api() { curl -sSf -X "$1" -H "X-Vault-Token: $root_token" ${3:+-d "$3"} "$VAULT_ADDR/v1/$2"; }

audit="$root/.e2e/$run-audit.log"
cleanup() {
	docker service rm "$run-vault" "$run-native" >/dev/null 2>&1 || true
	for _ in $(seq 1 60); do
		docker ps -aq --filter "label=com.docker.swarm.service.name=$run-vault" --filter "label=com.docker.swarm.service.name=$run-native" | grep -q . || break
		sleep 1
	done
	for i in $(seq 1 "$SECRETS"); do
		docker secret rm "${run}_vault$i" "${run}_native$i" >/dev/null 2>&1 || true
	done
	vault_api DELETE "sys/audit/$run" >/dev/null 2>&1 || true
	rm -f "$audit"
	vault_api DELETE "secret/metadata/$run" >/dev/null 2>&1 || true
	vault_api DELETE "sys/policies/acl/$run-vault" >/dev/null 2>&1 || true
	vault_api DELETE "sys/policies/acl/$run-plugin" >/dev/null 2>&1 || true
	vault_api DELETE "auth/token/roles/$run" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# Vault: the secret, the service's policy, a role, a plugin token.
vault_api POST "secret/data/$run/db" '{"data":{"password":"scale-pw"}}' >/dev/null
vault_api PUT "sys/policies/acl/$run-vault" "{\"policy\":\"path \\\"secret/data/$run/*\\\" { capabilities = [\\\"read\\\"] }\"}" >/dev/null
vault_api POST "auth/token/roles/$run" "{\"allowed_policies\":[\"$run-vault\"],\"orphan\":true,\"token_type\":\"default-service\"}" >/dev/null
vault_api PUT "sys/policies/acl/$run-plugin" "{\"policy\":\"path \\\"auth/token/create/$run\\\" { capabilities = [\\\"update\\\"] }\"}" >/dev/null
token=$(vault_api POST auth/token/create "{\"policies\":[\"$run-plugin\"],\"ttl\":\"2h\"}" | sed -n 's/.*"client_token":"\([^"]*\)".*/\1/p')
creds="$root/.e2e/bench-credentials"
mkdir -p "$creds" && chmod 700 "$creds"
(umask 077 && printf '%s\n' "$token" >"$creds/token")
# The engines whose plugin serves: NODES, "socket …" of every manager
# (bench/cluster-scale.sh), each plugin then with its node's Docker socket
# (the lifecycle's re-fetch guard on, as in production); else this engine,
# its plugin without the socket.
read -r -a engines <<<"${NODES:-local}"
on_engine() {
	local e=$1
	shift
	if [ "$e" = local ]; then docker "$@"; else docker -H "unix://$e" "$@"; fi
}
for e in "${engines[@]}"; do
	socket=$e
	[ "$e" != local ] || socket=/dev/null
	on_engine "$e" plugin disable -f "$PLUGIN" >/dev/null 2>&1 || true
	on_engine "$e" plugin set "$PLUGIN" credentials.source="$creds" docker-socket.source="$socket" VAULT_ADDR="$VAULT_ADDR" \
		VAULT_AUTH_METHOD=token VAULT_TOKEN_FILE=/run/swarmvault/token VAULT_TOKEN= TOKEN_ROLE="$run" LOG_LEVEL=warn
	on_engine "$e" plugin enable "$PLUGIN" >/dev/null
done

vault_refs=() native_refs=()
for i in $(seq 1 "$SECRETS"); do
	docker secret create --driver "$PLUGIN" --label "vault.path=secret/$run/db" --label vault.field=password \
		--label "vault.reuse=$REUSE" "${run}_vault$i" >/dev/null
	printf 'scale-pw' | docker secret create "${run}_native$i" - >/dev/null
	vault_refs+=(--secret "${run}_vault$i") native_refs+=(--secret "${run}_native$i")
done
# --network host: no overlay network, all traffic on loopback.
docker service create --detach --quiet --no-resolve-image --name "$run-vault" --network host --replicas 0 "${vault_refs[@]}" "$image" sleep 3600 >/dev/null
docker service create --detach --quiet --no-resolve-image --name "$run-native" --network host --replicas 0 "${native_refs[@]}" "$image" sleep 3600 >/dev/null
vault_api PUT "sys/audit/$run" "{\"type\":\"file\",\"options\":{\"file_path\":\"$audit\"}}" >/dev/null
# vault_requests: the requests Vault has audited so far.
vault_requests() { grep -c '"type":"request"' "$audit" 2>/dev/null || echo 0; }

# scale_time SERVICE: seconds from scale to N running tasks, then back to 0.
scale_time() {
	local svc=$1 start end
	start=$(date +%s.%N)
	docker service scale --detach "$svc=$N" >/dev/null
	until [ "$(docker service ps -q --filter desired-state=running --filter "name=$svc" "$svc" |
		xargs -r docker inspect --format '{{.Status.State}}' | grep -c '^running$')" -ge "$N" ]; do
		sleep 0.2
	done
	end=$(date +%s.%N)
	docker service scale --detach "$svc=0" >/dev/null
	for _ in $(seq 1 240); do
		containers_left "$svc" || break
		sleep 0.5
	done
	echo "$end - $start" | bc
}

# containers_left SERVICE: whether a container of it is left on any engine.
containers_left() {
	local e
	for e in "${engines[@]}"; do
		on_engine "$e" ps -q --filter "label=com.docker.swarm.service.name=$1" | grep -q . && return 0
	done
	return 1
}

command -v bc >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bc >/dev/null
# vault_round: scale_time of the Vault-backed service, and the Vault
# requests it made (the scale-down makes none), as "seconds requests".
vault_round() {
	local before t
	before=$(vault_requests)
	t=$(scale_time "$run-vault")
	echo "$t $(($(vault_requests) - before))"
}

echo "$N tasks, $SECRETS secret(s) each, vault.reuse=$REUSE:"
echo "| round | Vault secrets (s) | native secrets (s) | ratio | Vault requests | per task |"
echo "|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
	# Alternate which goes first, so drift over the run falls on both.
	if [ $((r % 2)) = 1 ]; then
		read -r v calls < <(vault_round); n=$(scale_time "$run-native")
	else
		n=$(scale_time "$run-native"); read -r v calls < <(vault_round)
	fi
	printf '| %s | %.2f | %.2f | %.2f | %s | %.2f |\n' "$r" "$v" "$n" "$(echo "$v / $n" | bc -l)" "$calls" "$(echo "$calls / $N" | bc -l)"
done
