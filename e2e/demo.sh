#!/usr/bin/env bash
# make demo: with the swarm, the dev Vault and the plugin in place (the
# Makefile sees to them), writes a secret into Vault, gives the plugin a token
# that may read it, deploys docker-compose.yml and prints what the task got.
#
#   e2e/demo.sh         run the demo
#   e2e/demo.sh clean   remove the demo stack
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PLUGIN=${PLUGIN:-swarmvault:latest}
VAULT_ADDR=${VAULT_ADDR:-http://127.0.0.1:8200}
stack=swarmvault-demo
image=swarmvault-test/busybox:latest

if [ "${1:-}" = clean ]; then
	docker stack rm "$stack" >/dev/null 2>&1 || true
	for _ in $(seq 1 60); do
		docker ps -aq --filter "label=com.docker.stack.namespace=$stack" | grep -q . || break
		sleep 1
	done
	docker secret rm "${stack}_bootstrap" >/dev/null 2>&1 || true
	exit 0
fi

say() { printf '\n==> %s\n' "$*"; }
root_token=$(cat .e2e/vault-token)
vault_api() { # METHOD PATH [JSON]
	curl -sSf -X "$1" -H "X-Vault-Token: $root_token" ${3:+-d "$3"} "$VAULT_ADDR/v1/$2"
}

say "writing secret/myapp/db into Vault"
password="demo-$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n')"
vault_api POST secret/data/myapp/db "{\"data\":{\"username\":\"myapp\",\"password\":\"$password\"}}" >/dev/null

say "policy for the app's tasks (named after the service), a token role, and the plugin's token"
# POLICY_TEMPLATE's default, {{.ServiceName}}, gives each task of the demo's
# service the policy named after it.
vault_api PUT sys/policies/acl/${stack}_app \
	'{"policy":"path \"secret/data/myapp/*\" { capabilities = [\"read\"] }"}' >/dev/null
# Task tokens are made through a role that may give only that policy, as
# orphans; the plugin's own token may use the role and read nothing.
vault_api POST auth/token/roles/$stack \
	"{\"allowed_policies\":[\"${stack}_app\"],\"orphan\":true,\"token_type\":\"default-service\"}" >/dev/null
vault_api PUT sys/policies/acl/$stack-plugin \
	"{\"policy\":\"path \\\"auth/token/create/$stack\\\" { capabilities = [\\\"update\\\"] }\"}" >/dev/null
token=$(vault_api POST auth/token/create "{\"policies\":[\"$stack-plugin\"],\"ttl\":\"24h\",\"display_name\":\"$stack-plugin\"}" |
	sed -n 's/.*"client_token":"\([^"]*\)".*/\1/p')
[ -n "$token" ] || { echo "demo: Vault gave no token" >&2; exit 1; }
say "configuring and enabling the plugin $PLUGIN: it logs in with the helper service's secret"
docker plugin disable -f "$PLUGIN" >/dev/null 2>&1 || true
# An empty credentials directory: the helper method needs no file, but the
# mount's source must exist.
creds="$root/.e2e/demo-credentials"
mkdir -p "$creds" && chmod 700 "$creds" && rm -f "$creds/token"
set -x
docker plugin set "$PLUGIN" credentials.source="$creds" docker-socket.source=/var/run/docker.sock \
	VAULT_ADDR="$VAULT_ADDR" VAULT_AUTH_METHOD=helper HELPER_SERVICE=${stack}_vault-helper HELPER_SECRET=vault_bootstrap \
	VAULT_TOKEN_FILE= VAULT_TOKEN= TOKEN_ROLE="$stack" LOG_LEVEL=info
docker plugin enable "$PLUGIN"
{ set +x; } 2>/dev/null

say "removing an earlier demo stack"
docker stack rm "$stack" >/dev/null 2>&1 || true
# A removed stack's containers and secrets linger while its tasks stop; a
# redeploy before they are gone would reuse its secrets' names too early.
for _ in $(seq 1 60); do
	{ docker ps -aq --filter "label=com.docker.stack.namespace=$stack"
	  docker secret ls -q --filter "label=com.docker.stack.namespace=$stack"; } | grep -q . || break
	sleep 1
done
say "the plugin's token as the swarm secret ${stack}_bootstrap, for the stack's helper service"
docker secret rm "${stack}_bootstrap" >/dev/null 2>&1 || true
printf '%s' "$token" | docker secret create "${stack}_bootstrap" - >/dev/null

say "deploying docker-compose.yml as stack $stack"
SWARMVAULT_DRIVER=$PLUGIN SWARMVAULT_APP_IMAGE=$image SWARMVAULT_HELPER_IMAGE=$image SWARMVAULT_BOOTSTRAP_SECRET=${stack}_bootstrap \
	docker stack deploy --compose-file docker-compose.yml "$stack"

service_id=$(docker service inspect --format '{{.ID}}' "${stack}_app")
# The app's first task may fail while the helper starts (the plugin cannot
# log in yet); swarm starts a new one.
say "waiting for the task"
for _ in $(seq 1 90); do
	cid=$(docker ps -q --filter "label=com.docker.swarm.service.id=$service_id" --filter status=running | head -n 1)
	[ -n "$cid" ] && break
	sleep 1
done
if [ -z "${cid:-}" ]; then
	docker service ps --no-trunc "${stack}_app" >&2
	echo "demo: the task did not start; the plugin's log lines are in dockerd's log" >&2
	exit 1
fi

say "the task's /run/secrets (read with docker exec)"
for f in db_user db_password; do
	printf '$ docker exec %s cat /run/secrets/%s\n' "${cid:0:12}" "$f"
	docker exec "$cid" cat "/run/secrets/$f"
	echo
done
got=$(docker exec "$cid" cat /run/secrets/db_password)
if [ "$got" != "$password" ]; then
	echo "demo: the delivered password differs from the one written to Vault" >&2
	exit 1
fi
say "delivered: the value written to Vault is in the task's /run/secrets/db_password"
echo "Remove the demo stack with: make demo-clean"
