#!/usr/bin/env bash
# test_soak.sh - 1000 questions, each decoding and encoding its image (eval
# cycles the held-out scenes): the peak RSS after 1000 may not exceed the
# peak after 100 by more than 2 MiB. Skipped under ASan (its RSS says nothing).
set -u
V=${VLMCHAT:-build/vlmchat}
case "$V" in *build-asan*) echo "test_soak: skipped under ASan (0 passed, 0 failed)"; exit 0 ;; esac
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.bash"
python3 - "$TMP" <<'PY'
import json, os, sys
src = "tests/fixtures/demo_eval"
items = [json.loads(l) for l in open(f"{src}/eval.jsonl")]
for n in (100, 1000):
    with open(f"{sys.argv[1]}/soak{n}.jsonl", "w") as f:
        for i in range(n):
            it = dict(items[i % len(items)])
            it["image"] = os.path.abspath(f"{src}/{it['image']}")
            f.write(json.dumps(it) + "\n")
PY
"$V" eval "$TMP/soak100.jsonl" --json >"$TMP/a.json" 2>"$TMP/err"
check "100 turns" [ $? -eq 0 ]
"$V" eval "$TMP/soak1000.jsonl" --json >"$TMP/b.json" 2>"$TMP/err"
check "1000 turns" [ $? -eq 0 ]
report=$(python3 -c "
import json
a, b = json.load(open('$TMP/a.json')), json.load(open('$TMP/b.json'))
print(a['peak_rss_bytes'], b['peak_rss_bytes'], b['accuracy'], b['latency_ms']['mean'])")
read -r rss100 rss1000 acc mean <<<"$report"
echo "soak: peak RSS $((rss100 / 1024)) KiB after 100 turns, $((rss1000 / 1024)) KiB after 1000; accuracy $acc; mean latency $mean ms"
check "RSS flat over 1000 turns (< 2 MiB growth)" [ $((rss1000 - rss100)) -lt 2097152 ]
check "answers stay right" python3 -c "assert $acc >= 0.9"
finish test_soak
