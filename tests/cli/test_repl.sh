#!/usr/bin/env bash
# test_repl.sh - the interactive chat in a real terminal (tmux): an image
# with its preview, two turns that reuse the KV cache, the status bar,
# Ctrl-C in the middle of a reply, /save, history, NO_COLOR and /quit.
set -u
V=${VLMCHAT:-build/vlmchat}
if ! command -v tmux >/dev/null; then
    echo "test_repl: tmux is not installed"; echo "test_repl: 0 passed, 1 failed"; exit 1
fi
TMP=$(mktemp -d)
SOCK="$TMP/tmux0.sock"
SESSIONS=0
trap 'for s in "$TMP"/tmux*.sock; do tmux -S "$s" kill-server 2>/dev/null; done; rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.bash"
on_fail() { screen | tail -15; }
screen() { tmux -S "$SOCK" capture-pane -t s -p -J; }   # -J: wrapped lines joined
send() { tmux -S "$SOCK" send-keys -t s "$@"; }
# waits until the screen matches a pattern (at most ~15 s)
wait_for() {
    for _ in $(seq 150); do screen | grep -q -- "$1" && return 0; sleep 0.1; done
    return 1
}

start() {   # start ENV... : vlmchat in a 100x30 terminal, each time a fresh tmux server
    tmux -S "$SOCK" kill-server 2>/dev/null
    SESSIONS=$((SESSIONS + 1))
    SOCK="$TMP/tmux$SESSIONS.sock"
    tmux -S "$SOCK" new-session -d -s s -x 100 -y 30 \
        "env HOME=$TMP TERM=xterm-256color $* $V --ctx 100000; echo EXITED \$?; sleep 60"
    wait_for "/help for commands"
}

start
check "banner" wait_for "vlmchat - "
send "/image examples/scene3.png" Enter
check "image attached" wait_for "\[image 1: examples/scene3.png, 16 tokens"
check "half-block preview" bash -c "tmux -S '$SOCK' capture-pane -t s -p | grep -q '▀▀▀▀'"
send "Describe the image." Enter
check "first answer" wait_for "^a green star and an orange circle"
check "status bar at the bottom" bash -c "tmux -S '$SOCK' capture-pane -t s -p | tail -1 | grep -q 'RSS .* KV [0-9]*/100000 '"
send "/stats" Enter
check "stats after one turn" wait_for "context [0-9]* of 100000 tokens, 2 turns, 1 images"
first=$(screen | grep -o "context [0-9]* of" | tail -1 | grep -o "[0-9]*")
send "What shape is on the left?" Enter
check "second answer reuses the image" wait_for "^star$"
send "/stats" Enter
check "stats after two turns" wait_for "4 turns, 1 images"
second=$(screen | grep -o "context [0-9]* of" | tail -1 | grep -o "[0-9]*")
check "context grew by the second turn only" [ "${second:-0}" -gt "${first:-0}" ] && [ $((second - first)) -lt 30 ]

# Ctrl-C in the middle of a reply stops it and keeps the chat alive
send "/set ignore-eos on" Enter
send "/set max-tokens 1000000" Enter
send "Describe the image again." Enter
sleep 1.5
send C-c
check "Ctrl-C stops the reply" wait_for "\[stopped\]"
send "/set ignore-eos off" Enter
send "/set max-tokens 64" Enter
send "/clear" Enter
check "clear" wait_for "new conversation"
send "/image examples/scene1.png" Enter
send "How many shapes are there?" Enter
check "still answering after Ctrl-C" wait_for "^four$"
send "/save $TMP/conv.json" Enter
check "save" wait_for "saved 2 turns"
check "saved conversation is JSON" python3 -c "
import json; d=json.load(open('$TMP/conv.json')); assert d[0]['role'] == 'user' and d[0]['content'][0] == {'type': 'image_url', 'image_url': {'url': 'examples/scene1.png'}}"
send "/bogus" Enter
check "unknown command" wait_for "unknown command /bogus"
send "/quit" Enter
check "quit" wait_for "EXITED 0"
check "history saved" grep -q "How many shapes are there?" "$TMP/.local/state/vlmchat/history"

# NO_COLOR: no coloured preview; Ctrl-D quits
start NO_COLOR=1
send "/image examples/scene2.png" Enter
check "NO_COLOR image" wait_for "\[image 1: examples/scene2.png"
check "NO_COLOR: no preview" bash -c "! tmux -S '$SOCK' capture-pane -t s -p | grep -q '▀'"
send "/load $TMP/conv.json" Enter
check "load" wait_for "loaded 2 turns"
send "What color are the shapes?" Enter
check "answer after /load" wait_for "^blue$"
# Ctrl-D only at the new prompt: typed while a reply streams, the terminal is
# in cooked mode and the end-of-file it makes is lost when readline takes over
wait_for "^> *$"
send C-d
check "Ctrl-D quits" wait_for "EXITED 0"

# SIGTERM: the chat ends cleanly (terminal restored, history kept), exit 130
start
send "/image examples/scene2.png" Enter
check "before SIGTERM" wait_for "\[image 1"
send "What shape is this?" Enter
wait_for "^star"
pkill -TERM -n -f -- "$V --ctx 100000"
check "SIGTERM: exit 130" wait_for "EXITED 130"
check "SIGTERM: one-line reason" wait_for "vlmchat: terminated"
check "SIGTERM: history kept" grep -q "What shape is this?" "$TMP/.local/state/vlmchat/history"

finish test_repl
