#!/usr/bin/env bash
# test_demo.sh - the bundled demo model: found by default, answers like
# transformers, and reaches >= 90% on the held-out set, measured by
# `vlmchat eval`, also when loaded quantized to Q8_0, or to Q4_0 with 8-bit
# activations.
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
"$V" eval $FX/eval.jsonl --min-accuracy 0.9 --quant q8_0 >"$TMP/q8.txt" 2>"$TMP/err"
check "eval >= 90% with Q8_0 weights" [ $? -eq 0 ]
check "eval table summary" grep -q '^accuracy ' "$TMP/q8.txt"
# Q4_0 weights decoded with 8-bit activations (llama.cpp's arithmetic)
"$V" eval $FX/eval.jsonl --min-accuracy 0.9 --quant q4_0 --int8-dot -v >"$TMP/q4.txt" 2>"$TMP/err"
check "eval >= 90% with Q4_0 weights and --int8-dot" [ $? -eq 0 ]
check "-v names the integer kernels" grep -Eq 'int8 dot (avx-vnni|avx512-vnni|avx2|generic)' "$TMP/err"
# without AVX-512 (as on most CPUs): the same answers from the AVX2 kernels
VLMCHAT_ISA=avx-vnni "$V" eval $FX/eval.jsonl --min-accuracy 0.9 --quant q4_0 --int8-dot -v >"$TMP/q4n.txt" 2>"$TMP/err"
check "eval >= 90% with VLMCHAT_ISA=avx-vnni" [ $? -eq 0 ]
check "VLMCHAT_ISA=avx-vnni leaves no AVX-512 kernel" grep -Eq 'avx2 kernels, int8 dot (avx-vnni|avx2)' "$TMP/err"

# multi-turn, multi-image conversations (the --messages format, the model's
# own answers fed back): every answered turn scored and counted in its
# category. A subset of the held-out set, image paths made absolute.
python3 -c "
import json, os
fx = os.path.abspath('$FX')
with open('$FX/conversations.jsonl') as f, open('$TMP/conv.jsonl', 'w') as out:
    for line in list(f)[:12]:
        d = json.loads(line)
        for m in d['messages']:
            for p in m['content'] if isinstance(m['content'], list) else []:
                if p['type'] == 'image_url':
                    p['image_url']['url'] = fx + '/' + p['image_url']['url']
        out.write(json.dumps(d) + '\n')"
"$V" eval "$TMP/conv.jsonl" --json >"$TMP/conv.json" 2>"$TMP/err"
check "eval runs conversations" [ $? -eq 0 ]
check "conversation eval: one item per assistant turn, per-category totals" python3 -c "
import json
d = json.load(open('$TMP/conv.json'))
want = [m for l in open('$TMP/conv.jsonl') for m in json.loads(l)['messages'] if m['role'] == 'assistant']
assert d['total'] == len(want) == len(d['items']), (d['total'], len(want))
assert [i['category'] for i in d['items']] == [m['category'] for m in want]
assert [i['expected'] for i in d['items']] == [m['answers'][0] for m in want]
cats = d['categories']
assert set(cats) == {'first', 'follow-up', 'cross-image'}, cats
assert sum(c['total'] for c in cats.values()) == d['total'] and cats['first']['total'] == 12
for name, c in cats.items():
    got = [i['score'] for i in d['items'] if i['category'] == name]
    assert abs(c['score'] - sum(got)) < 1e-9 and abs(c['accuracy'] - sum(got) / len(got)) < 1e-9"
"$V" eval "$TMP/conv.jsonl" >"$TMP/conv.txt" 2>"$TMP/err"
check "conversation eval table lists the categories" grep -Eq '^  cross-image +[0-9.]+% \(' "$TMP/conv.txt"
# the full held-out set: 360 conversations, 1227 turns (first 360, follow-up 675, cross-image 192)
check "held-out conversations" python3 -c "
import json
rows = [json.loads(l) for l in open('$FX/conversations.jsonl')]
cats = [m['category'] for r in rows for m in r['messages'] if m['role'] == 'assistant']
assert len(rows) == 360 and len(cats) == 1227 and cats.count('first') == 360 and cats.count('cross-image') == 192"
printf '%s\n' '{"messages": [{"role": "user", "content": "hi"}]}' >"$TMP/noref.jsonl"
"$V" eval "$TMP/noref.jsonl" 2>"$TMP/err"
check "a conversation with no reference answer is refused (exit 4)" [ $? -eq 4 ]

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
