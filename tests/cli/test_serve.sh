#!/usr/bin/env bash
# test_serve.sh - vlmchat --serve as clients use it: curl for the wire format
# (SSE, errors, limits, the queue, auth, shutdown) and the official openai npm
# client (tests/serve/client.mjs), all on 127.0.0.1 with bounded requests.
set -u
V=${VLMCHAT:-build/vlmchat}
TMP=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && kill -9 $PID 2>/dev/null; rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.bash"
on_fail() { tail -n 5 "$TMP/server.log" 2>/dev/null; head -c 400 "$TMP/body" 2>/dev/null; echo; }

KEY=serve-test-key
IMG=examples/scene1.png
Q="What color is the shape?"

# start_server ARGS... : starts vlmchat --serve on a free port; sets PID and URL
# Tests that need a request to stay in flight pace tokens with VLMCHAT_TEST_TOKEN_DELAY_MS.
start_server() {
    "$V" --serve 127.0.0.1:0 "$@" 2>"$TMP/server.log" </dev/null &
    PID=$!
    for _ in $(seq 100); do
        grep -q 'serving .* on http' "$TMP/server.log" && break
        kill -0 $PID 2>/dev/null || break
        sleep 0.1
    done
    URL=$(grep -o 'http://[0-9.:]*' "$TMP/server.log" | head -1)
}
stop_server() {
    kill -TERM $PID
    wait $PID
    stop_rc=$?
    PID=""
}
# req METHOD PATH [BODY_FILE] [extra curl args]: sets status; the body is in $TMP/body
req() {
    local method=$1 path=$2 body=${3:-}
    shift 3 2>/dev/null || shift $#
    status=$(curl -s -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}' -X "$method" -H "Authorization: Bearer $KEY" \
             ${body:+-H 'Content-Type: application/json' --data-binary @"$body"} "$@" "$URL$path")
}
field() { python3 -c "import json,sys; d=json.load(open('$TMP/body')); print($1)"; }
# mkreq FILE IMAGE QUESTION [EXTRA_JSON]: a chat request with a data: URL image
mkreq() {
    python3 - "$@" <<'EOF'
import base64, json, sys
out, image, question = sys.argv[1:4]
extra = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
content = [{"type": "text", "text": question}]
if image:
    url = image if not image.startswith("/") and ":" in image else \
        "data:image/png;base64," + base64.b64encode(open(image, "rb").read()).decode()
    content.insert(0, {"type": "image_url", "image_url": {"url": url}})
body = {"model": "demo", "temperature": 0, "messages": [{"role": "user", "content": content}]}
body.update(extra)
json.dump(body, open(out, "w"))
EOF
}

# --- command-line errors
"$V" --serve 70000 2>"$TMP/err"; rc=$?
check "bad port exit 2" [ $rc -eq 2 ]; check "bad port message" grep -q -- '--serve expects' "$TMP/err"
"$V" --api-key x -p hi 2>"$TMP/err"; check "--api-key without --serve exit 2" [ $? -eq 2 ]
"$V" --serve 8080 -p hi 2>"$TMP/err"; check "--serve with --prompt exit 2" [ $? -eq 2 ]

mkdir -p "$TMP/allowed"
cp $IMG "$TMP/allowed/img.png"
export VLMCHAT_TEST_TOKEN_DELAY_MS=5    # the disconnect test below must find its request still running
start_server --api-key $KEY --allow-files "$TMP/allowed" --max-body 2M --max-image-pixels 4M
check "server starts" [ -n "$URL" ]

# --- the small endpoints
status=$(curl -s -o "$TMP/body" -w '%{http_code}' "$URL/health")
check "health without key" [ "$status" = 200 ]
check "health body" [ "$(field "d['status'], d['model'], d['loaded'], d['uptime_s'] >= 0")" = "ok demo True True" ]
status=$(curl -s -o "$TMP/body" -w '%{http_code}' "$URL/v1/models")
check "models without key is 401" [ "$status" = 401 ]
check "401 is an OpenAI error" [ "$(field "d['error']['type']")" = authentication_error ]
req GET /v1/models;    check "models 200" [ "$status" = 200 ]; check "models list" [ "$(field "d['data'][0]['id']")" = demo ]
req GET /v1/models/demo; check "one model 200" [ "$status" = 200 ]
req GET /nowhere;      check "unknown path 404" [ "$status" = 404 ]
req GET /v1/chat/completions; check "GET on chat is 405" [ "$status" = 405 ]

# --- answers equal the command line's greedy answers, request after request
# (the server keeps the KV cache between requests: this checks the reuse)
ok=true
for img in examples/scene1.png examples/scene2.png examples/scene1.png examples/scene3.png; do
    for q in "$Q" "What shape is in the picture?"; do
        want=$("$V" -p "$q" --image $img --temp 0)
        mkreq "$TMP/req.json" $img "$q"
        req POST /v1/chat/completions "$TMP/req.json"
        got=$(field "d['choices'][0]['message']['content']")
        [ "$status" = 200 ] && [ "$got" = "$want" ] || { ok=false; echo "mismatch for $img / $q: '$got' vs '$want'"; }
    done
done
check "8 answers equal vlmchat -p" $ok
WANT=$("$V" -p "$Q" --image $IMG --temp 0)
check "completion object" [ "$(field "d['object'], d['choices'][0]['finish_reason'], d['usage']['total_tokens'] == d['usage']['prompt_tokens'] + d['usage']['completion_tokens']")" = "chat.completion stop True" ]

# --- streaming over SSE
mkreq "$TMP/req.json" $IMG "$Q" '{"stream": true, "stream_options": {"include_usage": true}}'
req POST /v1/chat/completions "$TMP/req.json"
check "stream 200" [ "$status" = 200 ]
check "stream content type" grep -qi '^content-type: text/event-stream' "$TMP/headers"
check "stream ends with [DONE]" [ "$(grep '^data: ' "$TMP/body" | tail -1)" = "data: [DONE]" ]
streamed=$(python3 -c "
import json
text, finish, usage = '', None, None
for line in open('$TMP/body'):
    if line.startswith('data: {'):
        d = json.loads(line[6:])
        usage = d.get('usage') or usage
        for c in d['choices']:
            text += c['delta'].get('content', '')
            finish = c['finish_reason'] or finish
print(text + '|' + str(finish) + '|' + str(bool(usage)))")
check "stream text equals answer" [ "$streamed" = "$WANT|stop|True" ]

# --- generation parameters
mkreq "$TMP/req.json" $IMG "$Q" '{"max_tokens": 1, "ignore_eos": true}'
req POST /v1/chat/completions "$TMP/req.json"
check "max_tokens 1 gives length" [ "$(field "d['choices'][0]['finish_reason'], d['usage']['completion_tokens']")" = "length 1" ]
mkreq "$TMP/req.json" "" "hello" '{"max_tokens": 40, "ignore_eos": true, "stop": ["one"]}'
req POST /v1/chat/completions "$TMP/req.json"
check "stop sequence cuts the text" [ "$(field "'one' not in d['choices'][0]['message']['content'] and d['choices'][0]['finish_reason'] == 'stop'")" = True ]

# --- malformed requests: 400 with a message naming the problem
printf '{"messages": [' >"$TMP/bad.json"
req POST /v1/chat/completions "$TMP/bad.json"
check "broken JSON is 400" [ "$status" = 400 ]; check "broken JSON message" grep -q 'not valid JSON' "$TMP/body"
mkreq "$TMP/req.json" "" "hi" '{"temperature": "hot"}'
req POST /v1/chat/completions "$TMP/req.json"
check "wrong type is 400 naming the field" [ "$status:$(field "d['error']['message']")" = "400:temperature must be a number" ]
printf '{"messages": [{"role": "user", "content": "caf\xff"}]}' >"$TMP/bad.json"
req POST /v1/chat/completions "$TMP/bad.json"
check "invalid UTF-8 is 400" [ "$status" = 400 ]
mkreq "$TMP/req.json" "http://example.invalid/cat.png" "hi"
req POST /v1/chat/completions "$TMP/req.json"
check "remote URL refused" [ "$status" = 400 ]; check "remote URL message" grep -q 'not fetched' "$TMP/body"
mkreq "$TMP/req.json" "" "hi" '{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@@"}}]}]}'
req POST /v1/chat/completions "$TMP/req.json"
check "bad base64 is 400" [ "$status" = 400 ]; check "bad base64 message" grep -q 'base64' "$TMP/body"

# --- size limits: body (413) and image (400 naming the limit)
python3 -c "import json; json.dump({'messages': [{'role': 'user', 'content': 'x' * 3000000}]}, open('$TMP/big.json', 'w'))"
req POST /v1/chat/completions "$TMP/big.json"
check "oversized body is 413" [ "$status" = 413 ]
python3 - "$TMP/huge.png" <<'EOF'
import struct, sys, zlib
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
w = h = 5000   # 25 megapixels, in a file of a few hundred bytes
raw = zlib.compress(b"\0" * (w * 3 + 1) * 8)
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
EOF
mkreq "$TMP/req.json" "$TMP/huge.png" "hi"
req POST /v1/chat/completions "$TMP/req.json"
check "oversized image is 400" [ "$status" = 400 ]; check "oversized image names the limit" grep -q 'over the limit' "$TMP/body"

# --- local paths: only under --allow-files
mkreq "$TMP/req.json" "" "$Q" "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"file://$TMP/allowed/img.png\"}}, {\"type\": \"text\", \"text\": \"$Q\"}]}]}"
req POST /v1/chat/completions "$TMP/req.json"
check "allowed path answers" [ "$status:$(field "d['choices'][0]['message']['content']")" = "200:$WANT" ]
mkreq "$TMP/req.json" "" "$Q" "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"$TMP/allowed/../../$(basename "$TMP")/allowed/img.png\"}}]}]}"
req POST /v1/chat/completions "$TMP/req.json"
check "path resolving inside is allowed" [ "$status" = 200 ]
mkreq "$TMP/req.json" "" "$Q" "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"$PWD/$IMG\"}}]}]}"
req POST /v1/chat/completions "$TMP/req.json"
check "path outside is 403" [ "$status" = 403 ]

# --- the official openai client
if [ ! -d tests/serve/node_modules/openai ]; then
    (cd tests/serve && npm ci --no-audit --no-fund --loglevel=error) >"$TMP/npm.log" 2>&1 || cat "$TMP/npm.log"
fi
node tests/serve/client.mjs "$URL/v1" $KEY $IMG "$WANT" "$Q" >"$TMP/client.out" 2>&1
client_rc=$?
cat "$TMP/client.out"
check "openai npm client checks pass" [ $client_rc -eq 0 ]
check "openai npm client ran its checks" grep -Eq 'client: [1-9][0-9]* passed, 0 failed' "$TMP/client.out"

# --- stats
req GET /stats
check "stats counts" [ "$(field "d['http']['requests'] > 20 and d['http']['unauthorized_401'] >= 1 and d['http']['too_large_413'] == 1 and d['tokens']['completion'] > 0 and d['tokens']['reused_from_kv_cache'] > 0")" = True ]
check "stats image cache hits" [ "$(field "d['images']['encoded'] >= 3 and d['images']['cache_hits'] >= 5")" = True ]
check "stats memory" [ "$(field "d['memory']['rss_bytes'] > 0 and d['memory']['weights_bytes'] > 0 and d['memory']['kv_cache_bytes'] > 0")" = True ]

stop_server
check "SIGTERM stops with 0" [ $stop_rc -eq 0 ]
check "stop is logged" grep -q 'stopping the server' "$TMP/server.log"
check "access log lines" grep -q 'POST /v1/chat/completions 200' "$TMP/server.log"

# slow_pair: two slow requests in the background, the second queued behind the first
slow_pair() {
    CURLS=()
    for i in 1 2; do
        curl -s -o "$TMP/q$i" -w '%{http_code}' --data-binary @"$TMP/slow.json" "$URL/v1/chat/completions" >"$TMP/q$i.status" &
        CURLS+=($!)
        sleep 0.3
    done
}

# --- the queue: one running, one waiting, the third gets 429
export VLMCHAT_TEST_TOKEN_DELAY_MS=5    # 400 tokens: about 2 s a request
start_server --queue 1
mkreq "$TMP/slow.json" "" "hello" '{"ignore_eos": true, "max_tokens": 400}'

# --- a client that goes away mid-stream stops the generation (paced: the stream lasts about 2 s,
# the client leaves after 1, however loaded the machine)
mkreq "$TMP/req.json" "" "hello" '{"stream": true, "ignore_eos": true, "max_tokens": 400}'
curl -s -N --max-time 1 --data-binary @"$TMP/req.json" "$URL/v1/chat/completions" >"$TMP/partial" 2>/dev/null
check "partial stream received" grep -q 'chat.completion.chunk' "$TMP/partial"
check "partial stream cut before its end" sh -c "! grep -q '\\[DONE\\]' '$TMP/partial'"
for _ in $(seq 50); do
    req GET /stats
    [ "$(field "d['completions']['cancelled']")" -ge 1 ] && break
    sleep 0.1
done
check "disconnect cancels the job" [ "$(field "d['completions']['cancelled']")" -ge 1 ]

slow_pair
req POST /v1/chat/completions "$TMP/slow.json"
check "full queue is 429" [ "$status" = 429 ]
check "429 has Retry-After" grep -qi '^retry-after: 1' "$TMP/headers"
check "429 is rate_limit_error" [ "$(field "d['error']['type']")" = rate_limit_error ]
wait "${CURLS[@]}"
check "queued requests finish" [ "$(cat "$TMP/q1.status") $(cat "$TMP/q2.status")" = "200 200" ]

# --- shutting down answers what is still queued with 503
slow_pair
stop_server
wait "${CURLS[@]}"
shutdown_statuses="$(cat "$TMP/q1.status") $(cat "$TMP/q2.status")"
check "shutdown: running one ends, queued one 503 ($shutdown_statuses)" [ "$shutdown_statuses" = "200 503" ]
check "shutdown exit 0" [ $stop_rc -eq 0 ]

# --- memory pressure: a tight budget drops the image cache, visibly
unset VLMCHAT_TEST_TOKEN_DELAY_MS
start_server --mem-limit 38M -v
mkreq "$TMP/req.json" $IMG "$Q"
req POST /v1/chat/completions "$TMP/req.json"
req POST /v1/chat/completions "$TMP/req.json"
req GET /stats
check "pressure event counted" [ "$(field "d['cleanup_events']['count'] >= 1 and 'memory pressure' in d['cleanup_events']['latest'][-1]['event']")" = True ]
check "answers go on under pressure" [ "$(field "d['completions']['ok']")" = 2 ]
stop_server

# --- tools: the "tools" array, an assistant's tool_calls and role "tool" messages reach the chat template
cat > "$TMP/tools.jinja" <<'EOF'
{% for t in tools or [] %}[tool {{ t.function.name }}]{% endfor %}{% for m in messages %}<{{ m.role }}>{% if m.tool_calls %}[call {{ m.tool_calls[0].function.name }}]{% endif %}{% if m.tool_call_id %}[result of {{ m.tool_call_id }}]{% endif %}{{ m.content if m.content is string else '' }}
{% endfor %}<assistant>
EOF
start_server --template "$TMP/tools.jinja"
tokens() {
    python3 - "$TMP/tools_req.json" "$1" <<'PY'
import json, sys
msgs = [{"role": "user", "content": "weather in Paris?"}]
if sys.argv[2] != "plain":
    msgs += [{"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
              "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
             {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]
body = {"model": "demo", "temperature": 0, "max_tokens": 1, "messages": msgs}
if sys.argv[2] == "tools":
    body["tools"] = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
json.dump(body, open(sys.argv[1], "w"))
PY
    req POST /v1/chat/completions "$TMP/tools_req.json"
    [ "$status" = 200 ] && field "d['usage']['prompt_tokens']"
}
plain=$(tokens plain); calls=$(tokens calls); with_tools=$(tokens tools)
check "tool_calls and tool messages are rendered ($plain < $calls)" [ "${calls:-0}" -gt "${plain:-99999}" ]
check "tools are rendered ($calls < $with_tools)" [ "${with_tools:-0}" -gt "${calls:-99999}" ]
stop_server

finish test_serve
