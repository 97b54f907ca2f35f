#!/usr/bin/env bash
# test_demo.sh - the bundled demo model: found by default, answers like
# transformers, and reaches >= 90% on the held-out set, measured by
# `vlmchat eval`, also when loaded quantized to Q8_0 with float activations
# (--float-act), or to Q4_0 with 8-bit ones (the default).
set -u
V=${VLMCHAT:-build/vlmchat}
FX=tests/fixtures/demo_eval
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.bash"

"$V" eval $FX/eval.jsonl --min-accuracy 0.9 --json >"$TMP/eval.json" 2>"$TMP/err"
check "eval >= 90%" [ $? -eq 0 ]
check "eval reports accuracy, latency, speed, memory" python3 -c "
import json; d=json.load(open('$TMP/eval.json'))
assert d['total'] == 150 and d['accuracy'] >= 0.9 and d['latency_ms']['p90'] > 0 and d['decode_tok_s'] > 0
assert d['peak_rss_bytes'] > 0 and len(d['items']) == 150"
"$V" eval $FX/eval.jsonl --min-accuracy 0.9 --quant q8_0 --float-act -v >"$TMP/q8.txt" 2>"$TMP/err"
check "eval >= 90% with Q8_0 weights and --float-act" [ $? -eq 0 ]
check "eval table summary" grep -q '^accuracy ' "$TMP/q8.txt"
check "--float-act: no integer kernels" bash -c "grep -q 'kernels, loaded' '$TMP/err' && ! grep -q 'int8 dot' '$TMP/err'"
# Q4_0 weights decoded with 8-bit activations (llama.cpp's arithmetic): the default
"$V" eval $FX/eval.jsonl --min-accuracy 0.9 --quant q4_0 -v >"$TMP/q4.txt" 2>"$TMP/err"
check "eval >= 90% with Q4_0 weights and the default 8-bit activations" [ $? -eq 0 ]
check "-v names the integer kernels" grep -Eq 'int8 dot (avx-vnni|avx512-vnni|avx2|generic)' "$TMP/err"
"$V" --float-act --int8-dot -p hi >/dev/null 2>"$TMP/err"
check "--float-act with --int8-dot is a usage error" [ $? -eq 2 ]
# without AVX-512 (as on most CPUs): the same answers from the AVX2 kernels
VLMCHAT_ISA=avx-vnni "$V" eval $FX/eval.jsonl --min-accuracy 0.9 --quant q4_0 --int8-dot -v >"$TMP/q4n.txt" 2>"$TMP/err"
check "eval >= 90% with VLMCHAT_ISA=avx-vnni" [ $? -eq 0 ]
check "VLMCHAT_ISA=avx-vnni leaves no AVX-512 kernel" grep -Eq 'avx2 kernels, int8 dot (avx-vnni|avx2)' "$TMP/err"

# the same greedy tokens as transformers on held-out questions
python3 -c "
import json
for c in json.load(open('$FX/reference.json'))['cases']:
    print(c['image'] + '\t' + c['question'] + '\t' + ' '.join(map(str, c['generated_ids'][:-1])))" >"$TMP/cases"
while IFS=$'\t' read -r img q want; do
    got=$("$V" --image "$FX/$img" -p "$q" --temp 0 --json | python3 -c "import json,sys; print(' '.join(map(str, json.load(sys.stdin)['tokens'])))")
    check "demo answers like transformers: $q" [ "$got" = "$want" ]
done <"$TMP/cases"

# no --model means the demo; --model demo names it; a wrong eval file is refused
a=$("$V" --image examples/scene3.png -p "Describe the image." --temp 0)
check "default model answers" [ "$a" = "a green star and a orange circle" ]
b=$("$V" --model demo --image examples/scene3.png -p "Describe the image." --temp 0)
check "--model demo" [ "$a" = "$b" ]
echo '{"question": 3}' >"$TMP/bad.jsonl"
"$V" eval "$TMP/bad.jsonl" 2>"$TMP/err"
check "bad eval file exit 4" [ $? -eq 4 ]
check "bad eval file one line" [ "$(wc -l <"$TMP/err")" -eq 1 ]
out=$(VLMCHAT=$V bash examples/ask_demo.sh)
check "example script answers" grep -q "^== examples/scene1.png" <<<"$out"

finish test_demo
