#!/usr/bin/env bash
# test_valgrind.sh - the scripted path (load, tokenize, prefill, decode, JSON,
# GGUF load and convert, --int8-dot) runs valgrind-clean: no invalid accesses, no
# uninitialized reads, no definite leaks. Runs the normal (non-ASan) build.
set -u
V=${VLMCHAT:-build/vlmchat}
case "$V" in *build-asan*) echo "test_valgrind: skipped under ASan (0 passed, 0 failed)"; exit 0 ;; esac
if ! command -v valgrind >/dev/null; then
    echo "test_valgrind: valgrind is not installed"; echo "test_valgrind: 0 passed, 1 failed"; exit 1
fi
FX=tests/fixtures/models
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
passed=0 failed=0
vg() {  # vg NAME ARGS... : runs vlmchat under memcheck
    local name=$1; shift
    if valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
            --log-file="$TMP/vg.log" "$V" "$@" >"$TMP/out" 2>/dev/null </dev/null; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); echo "FAIL: $name"; head -40 "$TMP/vg.log"
    fi
}
vg "hf phi3 json" -m $FX/phi3 -p "What is 2+2?" --temp 0 --ignore-eos -n 8 --json --threads 2
vg "hf llama sampled" -m $FX/llama -p "hello" --temp 0.8 --top-k 20 --top-p 0.9 --min-p 0.05 --repeat-penalty 1.1 -n 8 --threads 1
vg "convert q8_0" convert --model $FX/mistral --out "$TMP/m.gguf" --type q8_0
vg "gguf run" -m "$TMP/m.gguf" -p "hi" --temp 0 -n 6 --ignore-eos
vg "llama.cpp gguf" -m tests/fixtures/gguf/phi3-q8_0.gguf -p "hi" --temp 0 -n 6 --ignore-eos
# --int8-dot: interleaving at load, integer prefill and decode (valgrind's CPU has no AVX-512: AVX2 kernels)
vg "int8 dot q8_0 gguf" -m tests/fixtures/gguf/llama-q8_0.gguf --int8-dot -p "hello there, how are you" --temp 0 -n 6 --ignore-eos --threads 2
vg "int8 dot q4_0 at load" -m $FX/llama --quant q4_0 --int8-dot -p "hello there" --temp 0 -n 6 --ignore-eos
echo "test_valgrind: $passed passed, $failed failed"
[ $failed -eq 0 ]
