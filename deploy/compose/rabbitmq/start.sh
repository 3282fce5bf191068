#!/bin/bash
# RabbitMQ for compose.yaml: starts the server with the image's own entrypoint, then imports
# knut's topology (definitions.json: `knut topology --vhost knut-internal --external-vhost
# knut-external` of the shipped routes; tests/deploy.rs checks it is the same) and sets the
# passwords of knut's two users, which the definitions leave empty. Again at every start
# (an import adds what is missing and changes nothing else). The healthcheck waits for
# /tmp/knut-definitions-imported.
set -euo pipefail
: "${KNUT_INTERNAL_PASSWORD:?}" "${KNUT_EXTERNAL_PASSWORD:?}"
rm -f /tmp/knut-definitions-imported

docker-entrypoint.sh rabbitmq-server &
server=$!
trap 'kill -TERM "$server"; wait "$server"; exit $?' TERM INT

until rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1; do
  kill -0 "$server" 2>/dev/null || { wait "$server"; exit $?; }
  sleep 1
done
rabbitmqctl -q import_definitions /etc/knut/definitions.json
# (On this container's command line for a moment: nothing else runs in it.)
rabbitmqctl -q change_password knut-internal "$KNUT_INTERNAL_PASSWORD"
rabbitmqctl -q change_password knut-external "$KNUT_EXTERNAL_PASSWORD"
touch /tmp/knut-definitions-imported
echo "knut: topology imported, passwords of knut-internal and knut-external set"
wait "$server"
