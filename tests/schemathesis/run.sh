#!/usr/bin/env bash
# Fuzzes the control plane's API with schemathesis against its own /openapi.json, and a
# cluster's schema registry against /schema-registry/openapi.json, on a fresh `capstan dev`
# (real SQLite, real brokers). Fails on any 5xx or schema violation.
# Usage: tests/schemathesis/run.sh PATH/TO/capstan [EXAMPLES_PER_OPERATION]
set -euo pipefail
binary=${1:?usage: run.sh PATH/TO/capstan [EXAMPLES]}
examples=${2:-25}
port=${CAPSTAN_FUZZ_PORT:-18090}
dir=$(mktemp -d)
log="$dir/capstan.log"
cleanup() {
  if [ -n "${pid:-}" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

"$binary" dev --data-dir "$dir/data" --listen "127.0.0.1:$port" --gateway-listen "127.0.0.1:$((port + 1))" >"$log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "capstan dev exited before it was ready" >&2; exit 1; }
  sleep 0.1
done

email="fuzz@example.com"; password="fuzzing password 123"
curl -fsS -X POST "$base/v2/auth/signup" -d "{\"email\":\"$email\",\"password\":\"$password\"}" >/dev/null
token=$(curl -fsS -X POST "$base/v2/auth/login" -d "{\"email\":\"$email\",\"password\":\"$password\"}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')

# /v2/auth/logout is left out: it would end the fuzzer's own session (it is tested in
# api/tests/api/accounts.rs). An API key instead of the session would not do either: the fuzzer
# finds the key's id through GET /v2/api-keys and revokes it.
echo "schemathesis: $examples examples per operation against $base/openapi.json"
status=0
st run "$base/openapi.json" \
  --checks all \
  -H "Authorization: Bearer $token" \
  --exclude-path /v2/auth/logout \
  --max-examples "$examples" \
  --workers 1 \
  --seed 20261126 \
  --suppress-health-check too_slow \
  || status=$?
# The registry of a cluster made for it, with the cluster's default credential. Schema-conforming
# requests may still be refused: whether a schema's text is valid Avro or JSON Schema, or a
# change compatible, is beyond what OpenAPI can say, so positive_data_acceptance is left out.
rest="http://127.0.0.1:$((port + 1))"
basic=$(curl -fsS -X POST "$base/v2/kafka/cluster" -H "Authorization: Bearer $token" -d '{"name":"fuzz","region":"eu-west-1"}' \
  | python3 -c 'import base64,json,sys; c=json.load(sys.stdin); print(base64.b64encode((c["username"] + ":" + c["password"]).encode()).decode())')
echo "schemathesis: $examples examples per operation against $rest/schema-registry/openapi.json"
st run "$rest/schema-registry/openapi.json" \
  --checks all \
  --exclude-checks positive_data_acceptance \
  -H "Authorization: Basic $basic" \
  --max-examples "$examples" \
  --workers 1 \
  --seed 20261201 \
  --suppress-health-check too_slow \
  || status=$?
if grep -q "panicked" "$log"; then
  echo "capstan panicked during fuzzing:" >&2; grep -n "panicked" "$log" >&2; status=1
fi
exit $status
