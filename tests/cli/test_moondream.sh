#!/usr/bin/env bash
# test_moondream.sh - Moondream2's skills from the command line and the REPL,
# on the tiny fixture model (tests/fixtures/vision/moondream) against what its
# torch code produced (reference.json): --task detect/point/caption/query,
# --json coordinates (normalized and in pixels), usage errors, and in a tmux
# terminal /detect, /point and /caption over a drawn preview.
set -u
V=${VLMCHAT:-build/vlmchat}
F=tests/fixtures/vision/moondream
IMG=$F/scene_640x480.png
TMP=$(mktemp -d)
SOCK="$TMP/tmux.sock"
trap 'tmux -S "$SOCK" kill-server 2>/dev/null; rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.bash"

# the reference's scene case: python3 prints what a task must give
ref() {
    python3 - "$F/reference.json" "$1" "$2" <<'PY'
import json, sys
ref = json.load(open(sys.argv[1]))
case = next(c for c in ref["cases"] if c["name"] == "scene")
t = next(t for t in case["tasks"] if t["task"] == sys.argv[2] and (t["length"] or t["text_in"]) == sys.argv[3])
print(json.dumps(t))
PY
}

"$V" -m $F --task detect -p "red ball" -i $IMG --max-objects 6 --json >"$TMP/detect.json" 2>"$TMP/err"
check "detect runs" [ $? -eq 0 ]
ref detect "red ball" >"$TMP/detect.ref"
check "detect: boxes as the reference, pixels of the 640x480 image" python3 - "$TMP/detect.json" "$TMP/detect.ref" <<'PY'
import json, sys
got, want = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert got["image"] == {"width": 640, "height": 480}, got["image"]
objs = got["objects"]
assert len(objs) == len(want["objects"]) and 0 < len(objs) < want["max_objects"], (len(objs), len(want["objects"]))
for g, w in zip(objs, want["objects"]):
    for k in ("x_min", "y_min", "x_max", "y_max"):
        assert abs(g[k] - w[k]) < 2e-6, (k, g[k], w[k])
        side = 640 if k.startswith("x") else 480
        assert abs(g["pixels"][k] - w[k] * side) < 0.06, (k, g["pixels"][k], w[k] * side)
PY
"$V" -m $F --task point -p "blue box" -i $IMG --max-objects 6 --json >"$TMP/point.json" 2>>"$TMP/err"
ref point "blue box" >"$TMP/point.ref"
check "point: points as the reference" python3 - "$TMP/point.json" "$TMP/point.ref" <<'PY'
import json, sys
got, want = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert len(got["points"]) == len(want["objects"]) > 0
for g, w in zip(got["points"], want["objects"]):
    assert abs(g["x"] - w["x"]) < 1e-6 and abs(g["y"] - w["y"]) < 1e-6
    assert abs(g["pixels"]["x"] - w["x"] * 640) < 0.06 and abs(g["pixels"]["y"] - w["y"] * 480) < 0.06
PY
n=$(ref point "blue box" | python3 -c "import json,sys; print(len(json.load(sys.stdin)['objects']))")
lines=$("$V" -m $F --task point -p "blue box" -i $IMG --max-objects 6 2>/dev/null | grep -c "^[0-9]*: point ")
check "point: one line per point" [ "$lines" = "$n" ]
"$V" -m $F --task caption -p normal -i $IMG -n 20 --temp 0 --json >"$TMP/caption.json" 2>>"$TMP/err"
ref caption normal >"$TMP/caption.ref"
check "caption: greedy ids as the reference" python3 -c "
import json
g, w = json.load(open('$TMP/caption.json')), json.load(open('$TMP/caption.ref'))
assert g['tokens'] == w['generated_ids'], (g['tokens'], w['generated_ids'])"
"$V" -m $F --task query -p "How many shapes are there?" -i $IMG -n 20 --temp 0 --json >"$TMP/query.json" 2>>"$TMP/err"
ref query "How many shapes are there?" >"$TMP/query.ref"
check "query: greedy ids as the reference" python3 -c "
import json
g, w = json.load(open('$TMP/query.json')), json.load(open('$TMP/query.ref'))
assert g['tokens'] == w['generated_ids'], (g['tokens'], w['generated_ids'])"
# the chat path (no --task) builds the same query prompt
"$V" -m $F -p "How many shapes are there?" -i $IMG -n 20 --temp 0 --json >"$TMP/chat.json" 2>>"$TMP/err"
check "chat prompt = query skill" python3 -c "
import json
g, w = json.load(open('$TMP/chat.json')), json.load(open('$TMP/query.ref'))
assert g['tokens'] == w['generated_ids'] and g['prompt_tokens'] == 730 + len(w['prompt_ids'])"

"$V" -m $F --task detect -p ball >/dev/null 2>&1
check "--task needs one image (usage, exit 2)" [ $? -eq 2 ]
"$V" -m $F --task detect -i $IMG >/dev/null 2>"$TMP/e2"
check "--task detect needs the object" bash -c "[ $? -eq 2 ] && grep -q 'needs --prompt' '$TMP/e2'"
"$V" -m $F --task find -i $IMG -p x >/dev/null 2>"$TMP/e3"
check "unknown task" grep -q "caption, query, detect or point" "$TMP/e3"
"$V" -m $F -p "Hi" >/dev/null 2>"$TMP/e4"
check "Moondream needs an image to answer" grep -q "one image" "$TMP/e4"
"$V" -m tests/fixtures/vision/llava_next --task caption -i tests/fixtures/images/photo.jpg >/dev/null 2>"$TMP/e5"
check "a model without skills refuses --task" grep -q "model with skills" "$TMP/e5"

# other revisions: GPT-2's tokenizer (<|endoftext|> = 50256), and the older tensor layout
mkdir -p "$TMP/gpt2" "$TMP/legacy"
ln -s "$PWD/$F/model.safetensors" "$TMP/gpt2/model.safetensors"
cp $F/config.json "$TMP/gpt2/" && cp $F/config.json $F/tokenizer.json "$TMP/legacy/"
python3 - $F/tokenizer.json "$TMP/gpt2/tokenizer.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
v = t["model"]["vocab"]
del v["<|endoftext|>"]
v2 = {k: i for i, (k, _) in enumerate(sorted(v.items(), key=lambda kv: kv[1]))}
for i in range(len(v2), 50256):
    v2["\u0120pad%d" % i] = i
v2["<|endoftext|>"] = 50256
t["model"]["vocab"] = v2
for a in t["added_tokens"]:
    a["id"] = 50256 if a["content"] == "<|endoftext|>" else a["id"] - 1
json.dump(t, open(sys.argv[2], "w"))
PY
"$V" -m "$TMP/gpt2" --task caption -i $IMG >/dev/null 2>"$TMP/e6"
check "GPT-2 tokenizer refused, naming what to download (exit 3)" bash -c \
    "[ $? -eq 3 ] && grep -q 'moondream/starmie-v1' '$TMP/e6' && grep -q '2025-04-14' '$TMP/e6'"
python3 - "$TMP/legacy/model.safetensors" <<'PY'
import json, struct, sys
h = json.dumps({"text_model.transformer.embd.wte.weight": {"dtype": "F32", "shape": [1, 1], "data_offsets": [0, 4]}})
h += " " * ((8 - len(h) % 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h.encode() + b"\0\0\0\0")
PY
"$V" -m "$TMP/legacy" --task caption -i $IMG >/dev/null 2>"$TMP/e7"
check "the older tensor layout refused, naming the revision" grep -q "revisions before 2025-06-21" "$TMP/e7"

# the server: the "task" extension of /v1/chat/completions answers with the skill's JSON
"$V" -m $F --serve 127.0.0.1:0 2>"$TMP/server.log" </dev/null &
SPID=$!
for _ in $(seq 100); do
    grep -q 'serving .* on http' "$TMP/server.log" && break
    kill -0 $SPID 2>/dev/null || break
    sleep 0.1
done
URL=$(grep -o 'http://[0-9.:]*' "$TMP/server.log" | head -1)
body() {   # body TASK TEXT: a chat request with the scene as a data: URL
    python3 - "$IMG" "$1" "$2" <<'PY'
import base64, json, sys
url = "data:image/png;base64," + base64.b64encode(open(sys.argv[1], "rb").read()).decode()
print(json.dumps({"task": sys.argv[2], "max_tokens": 20, "temperature": 0, "messages": [{"role": "user", "content": [
    {"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": sys.argv[3]}]}]}))
PY
}
body detect "red ball" >"$TMP/req_detect.json"
status=$(curl -s -o "$TMP/srv_detect.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$TMP/req_detect.json" "$URL/v1/chat/completions")
check "server detect: 200" [ "$status" = 200 ]
check "server detect: the reference's boxes, with pixels" python3 - "$TMP/srv_detect.json" "$TMP/detect.ref" <<'PY'
import json, sys
got, want = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert got["task"] == "detect" and got["image"] == {"width": 640, "height": 480}
assert len(got["objects"]) == len(want["objects"])
for g, w in zip(got["objects"], want["objects"]):
    for k in ("x_min", "y_min", "x_max", "y_max"):
        assert abs(g[k] - w[k]) < 2e-6 and abs(g["pixels"][k] - w[k] * (640 if k[0] == "x" else 480)) < 0.06
PY
body caption normal >"$TMP/req_caption.json"
curl -s -o "$TMP/srv_caption.json" -H 'Content-Type: application/json' --data-binary @"$TMP/req_caption.json" \
    "$URL/v1/chat/completions"
check "server caption: the reference's text" python3 - "$TMP/srv_caption.json" "$TMP/caption.json" <<'PY'
import json, sys
got, cli = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert got["task"] == "caption" and got["text"] == cli["text"], (got, cli["text"])
PY
body point "blue box" >"$TMP/req_point.json"
python3 -c "import json; r = json.load(open('$TMP/req_point.json')); r['stream'] = True; print(json.dumps(r))" \
    >"$TMP/req_stream.json"
status=$(curl -s -o "$TMP/srv_stream.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    --data-binary @"$TMP/req_stream.json" "$URL/v1/chat/completions")
check "server: a task with stream is refused (400)" [ "$status" = 400 ]
status=$(curl -s -o "$TMP/srv_bad.json" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"task": "find", "messages": [{"role": "user", "content": "x"}]}' "$URL/v1/chat/completions")
check "server: unknown task (400)" [ "$status" = 400 ]
kill -TERM $SPID; wait $SPID

# the REPL: skills on the latest image, drawn over its preview
if command -v tmux >/dev/null; then
    screen() { tmux -S "$SOCK" capture-pane -t s -p -J; }
    send() { tmux -S "$SOCK" send-keys -t s "$@"; }
    wait_for() {
        for _ in $(seq 150); do screen | grep -q -- "$1" && return 0; sleep 0.1; done
        return 1
    }
    on_fail() { screen | tail -15; }
    tmux -S "$SOCK" new-session -d -s s -x 120 -y 50 \
        "env HOME=$TMP TERM=xterm-256color $V -m $F --preview blocks --no-status; echo EXITED \$?; sleep 60"
    check "repl starts" wait_for "/help for commands"
    send "/detect ball" Enter
    check "/detect without an image" wait_for "needs an image"
    send "/image $IMG" Enter
    check "image attached" wait_for "\[image 1: "
    send "clear" Enter
    tmux -S "$SOCK" clear-history -t s
    send "/detect red ball" Enter
    nd=$(ref detect "red ball" | python3 -c "import json,sys; print(len(json.load(sys.stdin)['objects']))")
    check "/detect lists the boxes" wait_for "■ $nd: box "
    check "/detect draws over a half-block preview" bash -c "tmux -S '$SOCK' capture-pane -t s -p | grep -q '▀▀▀▀'"
    send "/point blue box" Enter
    check "/point lists the points" wait_for "■ $n: point "
    send "/caption short" Enter
    send "/stats" Enter
    check "chat still works after skills" wait_for "context "
    send "/quit" Enter
    check "quit" wait_for "EXITED 0"
else
    echo "test_moondream: tmux is not installed: REPL checks skipped"
fi
finish test_moondream
