#!/usr/bin/env bash
# Interop: drive flaregate with clients we did not write.
#  - the Python MCP SDK (mcp 2.3.0) over streamable HTTP and stdio, and its
#    OAuth client against a real authorization server (oauth2-mock-server);
#  - GraphQL Analytics through query_analytics, scoped by the policy;
#  - Cloudflare's alerts through a webhook to a subscribed session;
#  - the operator's console in headless Chromium (Selenium, axe-core);
#  - the official MCP conformance suite's protocol scenarios.
# Usage: interop/run.sh [path/to/flaregate]   (default: target/debug/flaregate)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/flaregate}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    # A stopping server still writes its audit head checkpoint: wait for it.
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
# The shipped catalog only: a user's import in catalog/imported stays out.
mkdir -p "$WORK/shipped" "$WORK/catalog"
cp catalog/*.toml "$WORK/shipped/"
cp catalog/*.toml "$WORK/catalog/"

# Starts `flaregate serve` in the background (on $LISTEN if set); waits
# for its banner.
start_server() {
    local out=$1; shift
    local catalog=(--catalog "$WORK/shipped")
    case " $* " in *" --catalog "*) catalog=() ;; esac
    "$BIN" serve --http "${LISTEN:-127.0.0.1:0}" --log-level warn --audit-db "$WORK/audit-$RANDOM.db" "${catalog[@]}" "$@" >"$out" 2>"$out.err" &
    PIDS+=($!)
    for _ in $(seq 100); do
        grep -q '^Ready\.' "$out" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "flaregate did not start:"; cat "$out" "$out.err"; exit 1
}
field() { sed -n "s/^ *$1 *//p" "$2" | head -1; }

echo "== Python SDK (mcp 2.3.0)"
VENV=.venv-interop
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install --quiet --disable-pip-version-check mcp==2.3.0
start_server "$WORK/demo.out" --sandbox --policies policies/demo.toml
URL=$(field "MCP:" "$WORK/demo.out")
AUDITOR=$(field "key for auditor:" "$WORK/demo.out")
DEPLOYER=$(field "key for site-deployer:" "$WORK/demo.out")
timeout 120 "$VENV/bin/python" interop/python_client.py http "$URL" "$AUDITOR" "$DEPLOYER"
timeout 120 "$VENV/bin/python" interop/python_client.py stdio "$BIN" serve --sandbox --stdio --agent auditor \
    --catalog "$WORK/shipped" --policies policies/demo.toml --audit-db "$WORK/stdio.db" --log-level warn

echo "== Python SDK, approval at the client (2025-11-25 elicitation, 2026-07-28 input_required) and by the operator"
start_server "$WORK/approval.out" --sandbox --policies interop/approval-policy.toml
start_server "$WORK/operator.out" --sandbox --policies interop/approval-operator-policy.toml
timeout 120 "$VENV/bin/python" interop/python_approval.py "$(field "MCP:" "$WORK/approval.out")" \
    "$(field "sandbox API:" "$WORK/approval.out")" "$(field "MCP:" "$WORK/operator.out")" \
    "$(field "sandbox API:" "$WORK/operator.out")"

echo "== Python SDK, discover mode, the whole imported API"
"$BIN" catalog import --openapi openapi/cloudflare-openapi-2024-08-06.json \
    --catalog "$WORK/catalog" --out "$WORK/catalog/imported" >"$WORK/import.log"
head -1 "$WORK/import.log"
sed 's/^tool_mode.*//; s/^grants = \(.*\)$/grants = \1\ntool_mode = "typed"/' interop/discover-policy.toml >"$WORK/typed.toml"
start_server "$WORK/discover.out" --sandbox --catalog "$WORK/catalog" --policies interop/discover-policy.toml
start_server "$WORK/typed.out" --sandbox --catalog "$WORK/catalog" --policies "$WORK/typed.toml"
timeout 300 "$VENV/bin/python" interop/python_discover.py "$(field "MCP:" "$WORK/discover.out")" \
    "$(field "MCP:" "$WORK/typed.out")"

echo "== Python SDK, signing in with OAuth: authorization code + PKCE against oauth2-mock-server 9.3.0"
mkdir -p "$WORK/oauth"
cp interop/oauth_server.mjs "$WORK/oauth/"
(cd "$WORK/oauth" && npm install --silent --no-audit --no-fund oauth2-mock-server@9.3.0 >/dev/null)
node "$WORK/oauth/oauth_server.mjs" >"$WORK/oauth/issuer.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do grep -q '^issuer:' "$WORK/oauth/issuer.out" && break; sleep 0.1; done
ISSUER=$(field "issuer:" "$WORK/oauth/issuer.out")
[ -n "$ISSUER" ] || { echo "the authorization server did not start:"; cat "$WORK/oauth/issuer.out"; exit 1; }
# The resource URL names the MCP endpoint, so the port is chosen first.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '[auth.oauth]\nissuers = ["%s"]\nresource = "http://127.0.0.1:%s/mcp"\n' "$ISSUER" "$PORT" >"$WORK/oauth/flaregate.toml"
LISTEN=127.0.0.1:$PORT start_server "$WORK/oauth.out" --sandbox --config "$WORK/oauth/flaregate.toml" \
    --policies interop/oauth-policy.toml
timeout 120 "$VENV/bin/python" interop/python_oauth.py "http://127.0.0.1:$PORT/mcp"

echo "== Python SDK, GraphQL Analytics behind the policy"
start_server "$WORK/analytics.out" --sandbox --policies interop/analytics-policy.toml
timeout 120 "$VENV/bin/python" interop/python_analytics.py "$(field "MCP:" "$WORK/analytics.out")" \
    "$(field "key for analyst:" "$WORK/analytics.out")"

echo "== Python SDK, Cloudflare alerts through a webhook to a subscribed session"
HOOK_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
HOOK_HASH=$(printf %s "$HOOK_SECRET" | sha256sum | cut -d' ' -f1)
printf '[[hook]]\nname = "alerts"\nsecret_sha256 = "%s"\n' "$HOOK_HASH" >"$WORK/hooks.toml"
start_server "$WORK/alerts.out" --sandbox --config "$WORK/hooks.toml" --policies interop/alerts-policy.toml
ALERTS_MCP=$(field "MCP:" "$WORK/alerts.out")
timeout 120 "$VENV/bin/python" interop/python_alerts.py "$ALERTS_MCP" \
    "$(field "key for watcher:" "$WORK/alerts.out")" \
    "$(field "sandbox API:" "$WORK/alerts.out" | sed 's|/client/v4||')" \
    "${ALERTS_MCP%/mcp}/hooks/cloudflare/alerts" "$HOOK_SECRET"

echo "== The console in a real browser: headless Chromium (Debian), Selenium 4.27.1, axe-core 4.10.3"
"$VENV/bin/pip" install --quiet --disable-pip-version-check selenium==4.27.1
mkdir -p "$WORK/axe"
(cd "$WORK/axe" && npm install --silent --no-audit --no-fund axe-core@4.10.3 >/dev/null)
OPERATOR_KEY=$(python3 -c 'import secrets; print("fgk_" + secrets.token_hex(32))')
OPERATOR_HASH=$(printf %s "$OPERATOR_KEY" | sha256sum | cut -d' ' -f1)
printf '[[console.operator]]\nid = "alice"\nkey_sha256 = ["%s"]\nrole = "admin"\n' "$OPERATOR_HASH" >"$WORK/console.toml"
# A copy: the run changes access through the console, which writes the file.
cp interop/console-policy.toml "$WORK/console-policy.toml"
start_server "$WORK/console.out" --sandbox --config "$WORK/console.toml" \
    --policies "$WORK/console-policy.toml" --admin 127.0.0.1:0
timeout 300 "$VENV/bin/python" interop/console_browser.py \
    "$(field "admin:" "$WORK/console.out" | cut -d' ' -f1)" "$OPERATOR_KEY" \
    "$(field "MCP:" "$WORK/console.out")" "$(field "key for ops:" "$WORK/console.out")" \
    "$(field "key for dns-editor:" "$WORK/console.out")" \
    "$WORK/axe/node_modules/axe-core/axe.min.js" "${CONSOLE_SHOTS:-$WORK/shots}"

echo "== MCP conformance suite (0.1.16)"
start_server "$WORK/conformance.out" --sandbox --policies interop/conformance-policy.toml
URL=$(field "MCP:" "$WORK/conformance.out")
for scenario in server-initialize ping tools-list logging-set-level dns-rebinding-protection server-sse-multiple-streams; do
    echo "-- $scenario"
    if ! timeout 300 npx --yes -p node@22 -p @modelcontextprotocol/conformance@0.1.16 -c \
        "conformance server --url $URL --scenario $scenario" >"$WORK/$scenario.log" 2>&1; then
        cat "$WORK/$scenario.log"; echo "conformance scenario $scenario failed"; exit 1
    fi
    grep -a 'Passed:' "$WORK/$scenario.log"
done
echo "interop: all passed"
