#!/usr/bin/env bash
# compare_llamacpp.sh - vlmchat and llama.cpp side by side on the same GGUF
# files and the same number of threads: prefill (256-token prompt) and decode
# (64 tokens from an empty context) tokens/s, and peak RSS of a one-shot
# generation with the same context size.
#
#   [MODEL=smolvlm-256m|phi3-mini] tools/compare_llamacpp.sh LLAMA_CPP_BIN_DIR [TYPE...]
#
# LLAMA_CPP_BIN_DIR holds llama-bench and llama-completion from a llama.cpp
# build (llama.cpp is never part of this repository). A TYPE is any
# `vlmchat convert --type` (q8_0, q4_0, q4_k_m, ...), with "+int8" to run
# vlmchat with --int8-dot (the float vision tower requantized too) or
# "+float" for --float-act; they default to "q8_0 q8_0+int8 q4_0 q4_0+int8"
# for SmolVLM-256M and "q4_0 q4_k_m q8_0" for phi3-mini (3.8B, text only).
# The model is `vlmchat bench MODEL`'s random-weight model, converted with
# `vlmchat convert`. Each figure is the median of RUNS runs. The prompt for
# prefill has exactly PP tokens (256; BOS included) in vlmchat, as llama-bench's
# -p PP processes PP tokens; decode is TG tokens (64) after a 4-token prompt
# in vlmchat and from an empty context in llama-bench.
#
# Image encode: the same text GGUF + mmproj GGUF pair (both written by
# `vlmchat convert`, which puts mmproj-NAME beside NAME) in both engines: the
# bench image (512x384, one 512x512 tile: 64 tokens), vlmchat's time from
# `-v` (decode, preprocess and encode of the image), llama-mtmd-cli's
# "mtmd batch encoding done" (encode only, summed over its chunks). The
# ratio is llama.cpp's time over vlmchat's. IMAGE=0 skips it.
set -eu
BIN=${1:?usage: [MODEL=NAME] $0 LLAMA_CPP_BIN_DIR [TYPE...]}
shift
MODEL=${MODEL:-smolvlm-256m}
case "$MODEL" in
    smolvlm-256m) DEFAULT_TYPES="q8_0 q8_0+int8 q4_0 q4_0+int8" ;;
    phi3-mini) DEFAULT_TYPES="q4_0 q4_k_m q8_0"; IMAGE=0 ;;
    *) echo "MODEL is smolvlm-256m or phi3-mini" >&2; exit 2 ;;
esac
TYPES=${*:-$DEFAULT_TYPES}
V=${VLMCHAT:-build/vlmchat}
THREADS=${THREADS:-2}
RUNS=${RUNS:-3}
PP=${PP:-256}
TG=${TG:-64}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/vlmchat/bench/$MODEL
OUT=${OUT:-/tmp/vlmchat-compare}/$MODEL   # one folder a model: vlmchat pairs a GGUF with the mmproj beside it
NAME=${MODEL//[.-]/}
mkdir -p "$OUT"

[ -f "$CACHE/.complete" ] || "$V" bench "$MODEL" --quant q8_0 >/dev/null   # writes the model once
flag_of() { case "$1" in *+int8) echo --int8-dot ;; *+float) echo --float-act ;; esac; }
# convert names the model after its folder (general.name), and llama.cpp
# gives a model named like Phi-3 Phi-3's SentencePiece tokens (</s>, <unk>),
# which the benchmark tokenizer lacks: the path is a link with another name
# (its folder named by a checksum: a folder named "phi3-mini" is that name again)
SRC=$(dirname "$OUT")/model-$(printf %s "$MODEL" | cksum | cut -d' ' -f1)
ln -sfn "$CACHE" "$SRC"
gguf_of() {   # the GGUF file of a TYPE, written once
    local f="$OUT/$NAME-${1%+*}.gguf"
    [ -f "$f" ] || "$V" convert --model "$SRC" --out "$f" --type "${1%+*}" >/dev/null
    echo "$f"
}
# The mmproj file convert wrote beside a type's GGUF, named for vlmchat (several
# types in one folder would leave its pairing ambiguous); nothing for text-only models.
mm_of() { local f="$OUT/mmproj-$NAME-${1%+*}.gguf"; [ ! -f "$f" ] || echo "--mmproj $f"; }
prompt_tokens() {
    "$V" -m "$1" $(mm_of "${TYPES%% *}") --threads "$THREADS" --raw -p "$2" -n 1 --temp 0 --json |
        python3 -c "import json,sys; print(json.load(sys.stdin)['prompt_tokens'])"
}
# A prompt of exactly PP tokens in vlmchat: words scaled to fewer than PP
# tokens, then a run of digits (the benchmark tokenizers split digits one by
# one) sized to make up the rest; and a short prompt for decode.
words_prompt() { python3 -c "import sys; w='the quick brown fox jumps over a lazy dog'.split(); print(' '.join(w[i % 9] for i in range(int(sys.argv[1]))) + ' ' + '7' * int(sys.argv[2]))" "$@"; }
first=$(gguf_of "${TYPES%% *}")
words=$((PP / 4)) digits=1
n=$(prompt_tokens "$first" "$(words_prompt "$words" "$digits")")
while [ "$n" -gt "$PP" ] && [ "$words" -gt 1 ]; do
    words=$((words / 2))
    n=$(prompt_tokens "$first" "$(words_prompt "$words" "$digits")")
done
for _ in 1 2 3; do
    [ "$n" -eq "$PP" ] && break
    digits=$((digits + PP - n))
    [ "$digits" -ge 1 ] || break
    n=$(prompt_tokens "$first" "$(words_prompt "$words" "$digits")")
done
[ "$n" -eq "$PP" ] || { echo "no prompt of exactly $PP tokens found ($n)" >&2; exit 1; }
LONG=$(words_prompt "$words" "$digits")
SHORT="the quick brown"

median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
rss_kib() { /usr/bin/time -f %M -o "$OUT/time" "$@" >/dev/null 2>"$OUT/err" || { cat "$OUT/err" >&2; exit 1; }; cat "$OUT/time"; }

if [ "${IMAGE:-1}" != 0 ]; then
    printf '%-12s %-9s %16s %8s\n' type engine "image encode ms" ratio
    for t in $TYPES; do
        q=${t%+*} flag=$(flag_of "$t") file=$(gguf_of "$t")
        enc=() ref=()
        for _ in $(seq "$RUNS"); do
            enc+=("$("$V" -m "$file" $(mm_of "$t") $flag --threads "$THREADS" -i "$CACHE/image.png" -p hi -n 1 --temp 0 -v 2>&1 \
                    >/dev/null | sed -n 's/.*image tokens in \([0-9.]*\) ms.*/\1/p')")
            ref+=("$("$BIN/llama-mtmd-cli" -m "$file" --mmproj "$OUT/mmproj-$NAME-$q.gguf" --image "$CACHE/image.png" \
                    -p hi -n 1 -t "$THREADS" --temp 0 2>&1 |
                    sed -n 's/.*mtmd batch encoding done in \([0-9]*\) ms.*/\1/p' | paste -sd+ | bc)")
        done
        mv=$(median "${enc[@]}") ml=$(median "${ref[@]}")
        printf '%-12s %-9s %16.0f %8s\n' "$t" vlmchat "$mv" "$(python3 -c "print('%.2f' % ($ml / $mv))")"
        printf '%-12s %-9s %16.0f\n' "$t" llama.cpp "$ml"
    done
    echo
fi

printf '%-12s %-9s %10s %10s %12s\n' type engine "prefill/s" "decode/s" "peak RSS"
for t in $TYPES; do
    q=${t%+*} flag=$(flag_of "$t") file=$(gguf_of "$t")
    pp=() tg=() rss=()
    for _ in $(seq "$RUNS"); do
        pp+=("$("$V" -m "$file" $(mm_of "$t") $flag --threads "$THREADS" --raw -p "$LONG" -n 1 --temp 0 --json |
                python3 -c "import json,sys; print(json.load(sys.stdin)['timings']['prefill_tok_s'])")")
        tg+=("$("$V" -m "$file" $(mm_of "$t") $flag --threads "$THREADS" --raw -p "$SHORT" -n "$TG" --ignore-eos --temp 0 --json |
                python3 -c "import json,sys; print(json.load(sys.stdin)['timings']['decode_tok_s'])")")
        rss+=("$(rss_kib "$V" -m "$file" $(mm_of "$t") $flag --threads "$THREADS" --ctx 512 --raw -p "$LONG" -n "$TG" --ignore-eos --temp 0)")
    done
    printf '%-12s %-9s %10.1f %10.1f %9.1f MiB\n' "$t" vlmchat "$(median "${pp[@]}")" "$(median "${tg[@]}")" \
        "$(python3 -c "print($(median "${rss[@]}") / 1024)")"

    [ "$q" = "$t" ] || continue   # llama.cpp has no switch for it: its quantized products always use int8 activations
    "$BIN/llama-bench" -m "$file" -t "$THREADS" -p "$PP" -n "$TG" -r "$RUNS" -o json >"$OUT/bench.json" 2>"$OUT/err" ||
        { cat "$OUT/err" >&2; exit 1; }
    read -r lpp ltg < <(python3 -c "
import json, statistics
runs = json.load(open('$OUT/bench.json'))
pp = [r for r in runs if r['n_prompt'] > 0][0]['samples_ts']
tg = [r for r in runs if r['n_gen'] > 0][0]['samples_ts']
print(statistics.median(pp), statistics.median(tg))")
    rss=()
    for _ in $(seq "$RUNS"); do
        rss+=("$(rss_kib "$BIN/llama-completion" -m "$file" -t "$THREADS" -c 512 -p "$LONG" -n "$TG" --ignore-eos --temp 0 \
                 -no-cnv --no-warmup)")
    done
    printf '%-12s %-9s %10.1f %10.1f %9.1f MiB\n' "$t" llama.cpp "$lpp" "$ltg" \
        "$(python3 -c "print($(median "${rss[@]}") / 1024)")"
done
