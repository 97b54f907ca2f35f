#!/usr/bin/env bash
# test_templates.sh - `vlmchat template` renders every real chat template in
# ../shared/chat-templates (and the fixture models' templates) byte for byte
# as python3-jinja2 does in transformers' environment (tests/jinja/render_ref.py
# computes the expected renderings here), for each message set of
# tests/jinja/cases.json; where the reference raises, vlmchat fails too:
# nothing on stdout, one line on stderr, a non-zero exit.
set -u
V=${VLMCHAT:-build/vlmchat}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.bash"
DIR=$(cd "$(dirname "$0")/../.." && pwd)
# ../shared/chat-templates next to the checkout (one level further up for a worktree)
if [ -z "${TEMPLATES:-}" ]; then
    TEMPLATES=$DIR/../shared/chat-templates
    [ -d "$TEMPLATES" ] || TEMPLATES=$DIR/../../shared/chat-templates
fi
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

shopt -s nullglob
files=("$TEMPLATES"/*.jinja "$DIR"/tests/fixtures/models/*/chat_template.jinja "$DIR"/tests/fixtures/vision/*/chat_template.jinja)
# fixture templates are all named chat_template.jinja: copy them under their model's name
mkdir -p "$TMP/tpl" "$TMP/ref"
list=()
for f in "${files[@]}"; do
    case $f in
    */chat_template.jinja) n=$(basename "$(dirname "$f")"); cp "$f" "$TMP/tpl/fixture-$n.jinja"; list+=("$TMP/tpl/fixture-$n.jinja") ;;
    *) list+=("$f") ;;
    esac
done
check "python3-jinja2 reference renders" "$PY" "$DIR/tests/jinja/render_ref.py" "$TMP/ref" "${list[@]}"
check "at least 54 real templates" [ "$(ls "$TEMPLATES"/*.jinja 2>/dev/null | wc -l)" -ge 54 ]

# the cases as files vlmchat reads
"$PY" - "$DIR/tests/jinja/cases.json" "$TMP" <<'PYEOF'
import json, sys
for c in json.load(open(sys.argv[1], encoding="utf-8")):
    base = f"{sys.argv[2]}/case_{c['name']}"
    json.dump(c["messages"], open(base + ".messages.json", "w", encoding="utf-8"), ensure_ascii=False)
    if "tools" in c:
        json.dump(c["tools"], open(base + ".tools.json", "w", encoding="utf-8"), ensure_ascii=False)
    args = []
    if "bos_token" in c: args += ["--bos", c["bos_token"]]
    if "eos_token" in c: args += ["--eos", c["eos_token"]]
    if not c.get("add_generation_prompt", True): args.append("--no-generation-prompt")
    open(base + ".args", "w", encoding="utf-8").write("\n".join(args) + ("\n" if args else ""))
PYEOF

same=0 raised=0 mismatched=()
for f in "${list[@]}"; do
    name=$(basename "$f" .jinja)
    for m in "$TMP"/case_*.messages.json; do
        case=${m#"$TMP"/case_}; case=${case%.messages.json}
        args=(--messages "$m")
        [ -f "$TMP/case_$case.tools.json" ] && args+=(--tools "$TMP/case_$case.tools.json")
        while IFS= read -r a; do args+=("$a"); done <"$TMP/case_$case.args"
        "$V" template "$f" "${args[@]}" >"$TMP/got" 2>"$TMP/err"; rc=$?
        ref="$TMP/ref/${name}__$case"
        if [ -f "$ref.out" ]; then
            if [ $rc -eq 0 ] && cmp -s "$TMP/got" "$ref.out"; then same=$((same + 1)); else mismatched+=("$name/$case"); fi
        else
            if [ $rc -ne 0 ] && [ ! -s "$TMP/got" ] && [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^vlmchat: ' "$TMP/err"; then
                raised=$((raised + 1))
            else
                mismatched+=("$name/$case (the reference raises: $(head -c 200 "$ref.err"))")
            fi
        fi
    done
done
echo "templates: ${#list[@]} templates, $same renderings identical, $raised raised as the reference does, ${#mismatched[@]} differ"
for x in "${mismatched[@]}"; do echo "  differs: $x"; done
check "every rendering equals python3-jinja2's" [ ${#mismatched[@]} -eq 0 ]
check "most cases render (not raise)" [ $same -gt $((raised * 4)) ]
finish test_templates
