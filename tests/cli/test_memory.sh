#!/usr/bin/env bash
# test_memory.sh - memory budgets and presets: a budget far below need is
# refused in one line (exit 5), a tight one shrinks the context and still
# answers, a memory-limited chat shows cleanup events and keeps working, and
# a preset whose weights are missing says what to download and where to put it.
set -u
V=${VLMCHAT:-build/vlmchat}
TMP=$(mktemp -d)
SOCK="$TMP/tmux.sock"
trap 'tmux -S "$SOCK" kill-server 2>/dev/null; rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.bash"
one_line() { [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^vlmchat: ' "$TMP/err"; }

"$V" --mem-limit 1M -p hi >"$TMP/out" 2>"$TMP/err"
check "budget far below need: exit 5" [ $? -eq 5 ]
check "budget error is one line naming the budget" bash -c "[ \$(wc -l <'$TMP/err') -eq 1 ] && grep -q 'budget is 1.0 MiB' '$TMP/err'"
"$V" --mem-limit abc -p hi 2>"$TMP/err"
check "bad --mem-limit: exit 2" [ $? -eq 2 ]

"$V" --mem-limit 36M --ctx 4096 --image examples/scene3.png -p "Describe the image." >"$TMP/out" 2>"$TMP/err"
check "tight budget still answers" [ $? -eq 0 ]
check "tight budget answer" grep -q "^a green star and an orange circle$" "$TMP/out"
check "tight budget shrinks the context, with a message" grep -q "context reduced from 4096 to" "$TMP/err"

# ulimit -v: the address space left counts in the budget (degrade), and far too little is refused (exit 5)
case "$V" in *build-asan*) ;; *)   # ASan reserves terabytes of address space: ulimit -v cannot apply
    (ulimit -v 120000; "$V" --ctx 100000 --image examples/scene1.png -p "How many shapes are there?") >"$TMP/out" 2>"$TMP/err"
    check "ulimit -v: still answers" [ $? -eq 0 ]
    check "ulimit -v: context reduced" grep -q "context reduced from 100000" "$TMP/err"
    # --int8-dot copies the 4-bit weights at load: still room for it, and the same answer
    (ulimit -v 90000; "$V" --quant q4_0 --int8-dot --image examples/scene1.png -p "How many shapes are there?") \
        >"$TMP/out" 2>"$TMP/err"
    check "ulimit -v: --int8-dot answers" [ $? -eq 0 -a "$(cat "$TMP/out")" = four ]
    (ulimit -v 20000; "$V" -p hi) >"$TMP/out" 2>"$TMP/err"
    check "ulimit -v far too small: exit 5" [ $? -eq 5 ]
    check "ulimit -v far too small: one line" one_line
esac

# low memory: a vision model also takes fewer tiles per image
F=tests/fixtures/vision/idefics3
full=$("$V" -m $F --image tests/fixtures/images/photo.jpg -p hi -n 2 --json | python3 -c "import json,sys; print(json.load(sys.stdin)['prompt_tokens'])")
"$V" -m $F --ctx 100000 --mem-limit 24M --image tests/fixtures/images/photo.jpg -p hi -n 2 --json >"$TMP/out" 2>"$TMP/err"
few=$(python3 -c "import json; print(json.load(open('$TMP/out'))['prompt_tokens'])")
check "low memory: fewer image tiles" [ "$few" -lt "$full" ]
check "low memory: says so" grep -q "images use fewer tiles" "$TMP/err"

# presets: missing weights explained; present weights (a SmolVLM-architecture fixture) used
HOME=$TMP XDG_DATA_HOME=$TMP/data "$V" -m smolvlm -p hi >"$TMP/out" 2>"$TMP/err"
check "missing preset weights: exit 3" [ $? -eq 3 ]
check "missing preset weights: one line" one_line
check "says what to download" grep -q "get config.json, model.safetensors" "$TMP/err"
check "says from where" grep -q "https://huggingface.co/HuggingFaceTB/SmolVLM-256M-Instruct" "$TMP/err"
check "says where to put them" grep -q "$TMP/data/vlmchat/models/SmolVLM-256M-Instruct" "$TMP/err"
mkdir -p "$TMP/data/vlmchat/models"
ln -s "$PWD/tests/fixtures/vision/idefics3" "$TMP/data/vlmchat/models/SmolVLM-256M-Instruct"
HOME=$TMP XDG_DATA_HOME=$TMP/data "$V" -m smolvlm --image examples/scene1.png -p hi -n 4 --json >"$TMP/out" 2>"$TMP/err"
check "preset with weights present answers" [ $? -eq 0 ]
check "preset JSON" python3 -c "import json; d=json.load(open('$TMP/out')); assert len(d['tokens']) >= 1"

# a memory-limited chat: cached image features are dropped (an event) and re-encoded when needed
screen() { tmux -S "$SOCK" capture-pane -t s -p; }
on_fail() { screen | tail -12; }
wait_for() { for _ in $(seq 150); do screen | grep -q -- "$1" && return 0; sleep 0.1; done; return 1; }
tmux -S "$SOCK" new-session -d -s s -x 110 -y 30 \
    "env HOME=$TMP TERM=xterm-256color $V --mem-limit 36M; echo EXITED \$?; sleep 30"
wait_for "/help for commands"
tmux -S "$SOCK" send-keys -t s "/image examples/scene3.png" Enter
wait_for "\[image 1"
tmux -S "$SOCK" send-keys -t s "Describe the image." Enter
check "memory-limited chat answers" wait_for "^a green star and an orange circle"
check "cleanup event in the transcript" wait_for "^\[dropped 1 cached images"
check "cleanup event in the status bar" bash -c "tmux -S '$SOCK' capture-pane -t s -p | tail -1 | grep -q 'dropped 1 cached images'"
tmux -S "$SOCK" send-keys -t s "/clear" Enter
tmux -S "$SOCK" send-keys -t s "/image examples/scene2.png" Enter
tmux -S "$SOCK" send-keys -t s "What shape is this?" Enter
check "keeps working after cleanup" wait_for "^star"
tmux -S "$SOCK" send-keys -t s "/quit" Enter
check "clean exit" wait_for "EXITED 0"

finish test_memory
