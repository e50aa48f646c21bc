#!/usr/bin/env bash
# The README's first hour, run literally against the sandbox: set up a
# folder with `flaregate init`, give the agent a zone, a DELETE that needs
# a person's approval and the right to undo; serve it over HTTP *and* over
# stdio (Claude Desktop's way) on the one configuration and log; approve a
# call from the host, undo it, verify the log. CI runs it (.ci/run).
# Usage: examples/first-hour.sh [path/to/flaregate]   (default: flaregate on PATH)
set -euo pipefail
BIN=$(command -v "${1:-flaregate}") || { echo "no flaregate binary: ${1:-flaregate}"; exit 1; }
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
WORK=$(mktemp -d)
SERVER=""
cleanup() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAILED: $*"; exit 1; }
COM=023e105f4ecef8ad9ca31a8372d0c353       # the sandbox's example.com
WWW=8ce0e8a8a7b7b3c1d0e9f8a7b6c5d4e3       # its www record

step "flaregate init"
"$BIN" init "$WORK/fg" >"$WORK/init.out"
cat "$WORK/init.out"
KEY=$(grep -o 'fgk_[0-9a-f]*' "$WORK/init.out" | head -1)
CONFIG="$WORK/fg/flaregate.toml"
POLICY="$WORK/fg/policies/my-agent.toml"
# The edits the README walks through: a zone, full DNS, approval of every
# DELETE by the operator, and undo.
sed -i 's/^zones = \[\]/zones = ["example.com"]/; s/^dns = "read"/dns = "full"/' "$POLICY"
sed -i 's/^\[agent.grants\]/approve = ["method:DELETE"]\nundo = true\n\n[agent.grants]/' "$POLICY"
"$BIN" check --config "$CONFIG" --sandbox

step "serve over HTTP (the sandbox), in the background"
cd /   # as a client would start it: paths come from the configuration
"$BIN" serve --sandbox --config "$CONFIG" --http 127.0.0.1:0 >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER=$!
for _ in $(seq 100); do grep -q '^Ready\.' "$WORK/serve.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^Ready\.' "$WORK/serve.out" || { cat "$WORK/serve.out" "$WORK/serve.err"; fail "serve did not start"; }
URL=$(sed -n 's/^ *MCP: *//p' "$WORK/serve.out")

# One stateless tools/call (MCP 2026-07-28); prints the result as JSON.
call() {
    local body
    body=$(python3 -c 'import json,sys; print(json.dumps({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":sys.argv[1],"arguments":json.loads(sys.argv[2]),"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"first-hour","version":"1"}}}}))' "$1" "$2")
    curl -sS "$URL" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' \
        -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2026-07-28' \
        -H 'mcp-method: tools/call' -H "mcp-name: $1" -d "$body" |
        python3 -c 'import json,sys
text = sys.stdin.read()
for line in [l[5:] for l in text.splitlines() if l.startswith("data:")] + [text]:
    try:
        print(json.dumps(json.loads(line)["result"])); break
    except Exception: pass
else: sys.exit("no JSON-RPC answer: " + text)'
}
field() { python3 -c 'import json,sys; r=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

step "an HTTP client reads DNS"
call list_dns_records "{\"zone_id\":\"$COM\"}" | field 'len(r["structuredContent"]["result"])'

step "Claude Desktop's way: stdio, same configuration, same log"
printf '%s\n' \
    '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"first-hour","version":"1"}}}' \
    '{"jsonrpc":"2.0","method":"notifications/initialized"}' \
    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"get_dns_record\",\"arguments\":{\"zone_id\":\"$COM\",\"dns_record_id\":\"$WWW\"}}}" |
    (cat; sleep 2) | "$BIN" serve --sandbox --stdio --agent my-agent --config "$CONFIG" --log-level warn >"$WORK/stdio.out"
grep -q '"id":2,"result"' "$WORK/stdio.out" || { cat "$WORK/stdio.out"; fail "the stdio call got no result"; }
grep -q 'www.example.com' "$WORK/stdio.out" || fail "the stdio call did not read the record"
echo "stdio: get_dns_record answered"

step "a DELETE waits for a person"
ASKED=$(call delete_dns_record "{\"zone_id\":\"$COM\",\"dns_record_id\":\"$WWW\"}")
ID=$(echo "$ASKED" | field '__import__("re").search(r"approval ([0-9a-f]{32})", r["content"][0]["text"]).group(1)')
echo "approval id: $ID"
"$BIN" approvals --sandbox --config "$CONFIG"
"$BIN" approve --sandbox --config "$CONFIG" "$ID" --by first-hour
DONE=$(call delete_dns_record "{\"zone_id\":\"$COM\",\"dns_record_id\":\"$WWW\",\"approval_id\":\"$ID\"}")
[ "$(echo "$DONE" | field 'r.get("isError", False)')" = False ] || fail "the approved delete was refused: $DONE"
echo "deleted, once approved"

step "undo it from the host"
ROW=$("$BIN" audit --sandbox --config "$CONFIG" --json --tool delete_dns_record --decision allow |
    python3 -c 'import json,sys; print([json.loads(l) for l in sys.stdin][-1]["id"])')
FLAREGATE_KEY=$KEY "$BIN" undo "$ROW" --yes --url "$URL" --config "$CONFIG"
call list_dns_records "{\"zone_id\":\"$COM\",\"name\":\"www.example.com\"}" |
    field 'len(r["structuredContent"]["result"])' | grep -qx 1 || fail "the record is not back"
echo "the record is back"

step "the log"
"$BIN" audit --sandbox --config "$CONFIG" --limit 20
"$BIN" audit verify --sandbox --config "$CONFIG"
echo; echo "first hour: OK"
