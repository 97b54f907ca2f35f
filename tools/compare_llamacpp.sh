#!/usr/bin/env bash
# compare_llamacpp.sh - vlmchat and llama.cpp side by side on the same GGUF
# files and the same number of threads: prefill (256-token prompt) and decode
# (64 tokens from an empty context) tokens/s, and peak RSS of a one-shot
# generation with the same context size.
#
#   tools/compare_llamacpp.sh LLAMA_CPP_BIN_DIR [TYPE...]
#
# LLAMA_CPP_BIN_DIR holds llama-bench and llama-completion from a llama.cpp
# build (llama.cpp is never part of this repository). TYPEs default to
# "q8_0 q8_0+int8 q4_0 q4_0+int8"; "+int8" runs vlmchat with --int8-dot.
# The model is `vlmchat bench`'s random-weight SmolVLM-256M text model,
# converted with `vlmchat convert`. Each figure is the median of RUNS runs.
#
# Image encode: the same text GGUF + mmproj GGUF pair (both written by
# `vlmchat convert`, which puts mmproj-NAME beside NAME) in both engines: the
# bench image (512x384, one 512x512 tile: 64 tokens), vlmchat's time from
# `-v` (decode, preprocess and encode of the image), llama-mtmd-cli's
# "mtmd batch encoding done" (encode only, summed over its chunks). The
# ratio is llama.cpp's time over vlmchat's. IMAGE=0 skips it.
set -eu
BIN=${1:?usage: $0 LLAMA_CPP_BIN_DIR [TYPE...]}
shift
TYPES=${*:-q8_0 q8_0+int8 q4_0 q4_0+int8}
V=${VLMCHAT:-build/vlmchat}
THREADS=${THREADS:-2}
RUNS=${RUNS:-3}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/vlmchat/bench/smolvlm-256m
OUT=${OUT:-/tmp/vlmchat-compare}
mkdir -p "$OUT"

[ -f "$CACHE/config.json" ] || "$V" bench smolvlm-256m --quant q8_0 >/dev/null   # writes the model once
# A prompt of about 256 tokens, and a short one for decode from an empty context.
LONG=$(python3 -c "print(' '.join(['the quick brown fox jumps over the lazy dog'] * 8))")
SHORT="the quick brown fox"

median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
rss_kib() { /usr/bin/time -f %M -o "$OUT/time" "$@" >/dev/null 2>"$OUT/err" || { cat "$OUT/err" >&2; exit 1; }; cat "$OUT/time"; }

if [ "${IMAGE:-1}" != 0 ]; then
    printf '%-12s %-9s %16s %8s\n' type engine "image encode ms" ratio
    for t in $TYPES; do
        q=${t%+int8}
        flag=
        [ "$q" = "$t" ] || flag=--int8-dot
        file="$OUT/smolvlm256m-$q.gguf"
        [ -f "$file" ] || "$V" convert --model "$CACHE" --out "$file" --type "$q" >/dev/null
        enc=() ref=()
        for _ in $(seq "$RUNS"); do
            enc+=("$("$V" -m "$file" $flag --threads "$THREADS" -i "$CACHE/image.png" -p hi -n 1 --temp 0 -v 2>&1 \
                    >/dev/null | sed -n 's/.*image tokens in \([0-9.]*\) ms.*/\1/p')")
            ref+=("$("$BIN/llama-mtmd-cli" -m "$file" --mmproj "$OUT/mmproj-smolvlm256m-$q.gguf" --image "$CACHE/image.png" \
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
    q=${t%+int8}
    flag=
    [ "$q" = "$t" ] || flag=--int8-dot
    file="$OUT/smolvlm256m-$q.gguf"
    [ -f "$file" ] || "$V" convert --model "$CACHE" --out "$file" --type "$q" >/dev/null

    pp=() tg=() rss=()
    for _ in $(seq "$RUNS"); do
        pp+=("$("$V" -m "$file" $flag --threads "$THREADS" --raw -p "$LONG" -n 1 --temp 0 --json |
                python3 -c "import json,sys; print(json.load(sys.stdin)['timings']['prefill_tok_s'])")")
        tg+=("$("$V" -m "$file" $flag --threads "$THREADS" --raw -p "$SHORT" -n 64 --ignore-eos --temp 0 --json |
                python3 -c "import json,sys; print(json.load(sys.stdin)['timings']['decode_tok_s'])")")
        rss+=("$(rss_kib "$V" -m "$file" $flag --threads "$THREADS" --ctx 512 --raw -p "$LONG" -n 64 --ignore-eos --temp 0)")
    done
    printf '%-12s %-9s %10.1f %10.1f %9.1f MiB\n' "$t" vlmchat "$(median "${pp[@]}")" "$(median "${tg[@]}")" \
        "$(python3 -c "print($(median "${rss[@]}") / 1024)")"

    [ "$q" = "$t" ] || continue   # llama.cpp has no switch for it: its Q8_0/Q4_0 decode always uses int8 activations
    "$BIN/llama-bench" -m "$file" -t "$THREADS" -p 256 -n 64 -r "$RUNS" -o json >"$OUT/bench.json" 2>"$OUT/err" ||
        { cat "$OUT/err" >&2; exit 1; }
    read -r lpp ltg < <(python3 -c "
import json, statistics
runs = json.load(open('$OUT/bench.json'))
pp = [r for r in runs if r['n_prompt'] > 0][0]['samples_ts']
tg = [r for r in runs if r['n_gen'] > 0][0]['samples_ts']
print(statistics.median(pp), statistics.median(tg))")
    rss=()
    for _ in $(seq "$RUNS"); do
        rss+=("$(rss_kib "$BIN/llama-completion" -m "$file" -t "$THREADS" -c 512 -p "$LONG" -n 64 --ignore-eos --temp 0 \
                 -no-cnv --no-warmup)")
    done
    printf '%-12s %-9s %10.1f %10.1f %9.1f MiB\n' "$t" llama.cpp "$lpp" "$ltg" \
        "$(python3 -c "print($(median "${rss[@]}") / 1024)")"
done
