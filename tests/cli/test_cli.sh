#!/usr/bin/env bash
# test_cli.sh - the vlmchat program as users and scripts run it: scripted
# answers, --json, stdin modes, exit codes and one-line errors on bad input.
set -u
V=${VLMCHAT:-build/vlmchat}
FX=tests/fixtures/models
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
. "$(dirname "$0")/lib.bash"

# run ARGS... : captures stdout, stderr, exit code
run() {
    "$V" "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
    rc=$?
}
run_in() {  # run_in INPUT ARGS...
    local input=$1; shift
    printf '%s' "$input" | "$V" "$@" >"$TMP/out" 2>"$TMP/err"
    rc=$?
}
one_line_error() { [ "$(wc -l <"$TMP/err")" -eq 1 ] && grep -q '^vlmchat: ' "$TMP/err"; }
json_field() { python3 -c "import json,sys; d=json.loads(sys.stdin.readline()); print($1)" <"$TMP/out"; }

# --- help and version
run --help;        check "help exits 0" [ $rc -eq 0 ]; check "help lists --json" grep -q -- --json "$TMP/out"
run --version;     check "version" grep -q '^vlmchat [0-9]' "$TMP/out"

# --- usage errors: exit 2, one line
run --bogus;               check "unknown option exit 2" [ $rc -eq 2 ]; check "unknown option one line" one_line_error
run --max-tokens abc;      check "bad number exit 2" [ $rc -eq 2 ]; check "bad number names option" grep -q -- '--max-tokens' "$TMP/err"
run --temp -1 -m x;        check "negative temp exit 2" [ $rc -eq 2 ]
run -m nosuchmodel -p hi;  check "unknown model name exit 3" [ $rc -eq 3 ]; check "unknown model lists places" grep -q "configs/nosuchmodel" "$TMP/err"
run convert --model x;     check "convert without --out exit 2" [ $rc -eq 2 ]

# --- model errors: exit 3, one line naming the file
run -m /nonexistent/model -p hi;  check "missing model exit 3" [ $rc -eq 3 ]; check "missing model one line" one_line_error
head -c 4096 /dev/urandom >"$TMP/junk.gguf"
run -m "$TMP/junk.gguf" -p hi;   check "junk file exit 3" [ $rc -eq 3 ]; check "junk file named" grep -q junk.gguf "$TMP/err"
printf 'GGUF\003\000\000\000' >"$TMP/trunc.gguf"
run -m "$TMP/trunc.gguf" -p hi;  check "truncated gguf exit 3" [ $rc -eq 3 ]; check "truncated one line" one_line_error
mkdir -p "$TMP/broken" && echo '{"model_type": "llama", "hidden_size": ' >"$TMP/broken/config.json"
run -m "$TMP/broken" -p hi;      check "bad config.json exit 3" [ $rc -eq 3 ]; check "bad config one line" one_line_error
mkdir -p "$TMP/notok" && cp $FX/llama/config.json $FX/llama/model.safetensors "$TMP/notok/"
run -m "$TMP/notok" -p hi;       check "missing tokenizer exit 3" [ $rc -eq 3 ]; check "missing tokenizer named" grep -q tokenizer.json "$TMP/err"

# --- greedy answer equals transformers' ids (fixture: llama, conversation "short")
want=$(python3 -c "import json; c=json.load(open('$FX/llama/reference.json'))['cases'][0]; print(' '.join(map(str,c['generated_ids'])))")
run -m $FX/llama -p "What is the capital of France?" --temp 0 --ignore-eos -n 32 --json
check "json exit 0" [ $rc -eq 0 ]
got=$(json_field "' '.join(map(str, d['tokens']))")
check "cli greedy ids equal transformers" [ "$got" = "$want" ]
check "json prompt_tokens" [ "$(json_field "d['prompt_tokens']")" = 24 ]
check "json has timings and memory" [ "$(json_field "sorted(d['timings'])==['decode_ms','decode_tok_s','load_ms','prefill_ms','prefill_tok_s'] and d['memory']['weights_bytes']>0 and d['memory']['kv_bytes']>0 and d['memory']['peak_rss_bytes']>0")" = True ]

# --- bench on a model of the user's: its own dimensions; what a decode step reads is its
# matrices and output head (the tied embedding table here), not the norms
run bench $FX/llama --json
check "bench a model exit 0" [ $rc -eq 0 ]
want=$(python3 - "$FX/llama/model.safetensors" <<'PY'
import json, struct, sys
f = open(sys.argv[1], 'rb'); n = struct.unpack('<Q', f.read(8))[0]; h = json.loads(f.read(n)); h.pop('__metadata__', None)
mats = {k: v['data_offsets'][1] - v['data_offsets'][0] for k, v in h.items() if len(v['shape']) == 2}
if 'lm_head.weight' in mats:
    mats.pop('model.embed_tokens.weight')
print(sum(mats.values()))
PY
)
check "bench: decode_bytes are the matrices and the head" [ "$(json_field "d['decode_bytes']")" = "$want" ]
check "bench a model: its figures" [ "$(json_field "d['model']=='$FX/llama' and d['weights']=='stored' and d['prefill_tokens']==256 and d['prefill_tok_s']>0 and d['prefill_first_tok_s']>0 and d['decode_tok_s']>0 and d['prefill_share_of_int8_peak']>0")" = True ]
run bench nosuchmodel
check "bench unknown model exit 2" [ $rc -eq 2 ]; check "bench unknown model one line" one_line_error
check "bench unknown model lists ours" grep -q "phi3-mini" "$TMP/err"

# --- plain output streams the same text as --json's text
run -m $FX/llama -p "What is the capital of France?" --temp 0 --ignore-eos -n 32
plain=$(cat "$TMP/out")
run -m $FX/llama -p "What is the capital of France?" --temp 0 --ignore-eos -n 32 --json
check "plain text equals json text" [ "$plain" = "$(json_field "d['text'].lstrip(' \\n')")" ]

# --- --ignore-eos gives exactly N tokens; sampling with a seed is reproducible
run -m $FX/phi3 -p "hello" --ignore-eos -n 7 --json --temp 0.9 --seed 5
check "exactly 7 tokens" [ "$(json_field "len(d['tokens'])")" = 7 ]
a=$(json_field "d['tokens']")
run -m $FX/phi3 -p "hello" --ignore-eos -n 7 --json --temp 0.9 --seed 5
check "same seed same tokens" [ "$a" = "$(json_field "d['tokens']")" ]

# --- stdin: one prompt per line, or the whole input
run_in $'first question\n\nsecond question\n' -m $FX/mistral --temp 0 -n 4 --ignore-eos --json
check "stdin lines exit 0" [ $rc -eq 0 ]
check "two answers for two lines" [ "$(wc -l <"$TMP/out")" -eq 2 ]
run_in $'line one\nline two\n' -m $FX/mistral --temp 0 -n 4 --ignore-eos --json --whole-input
check "whole input: one answer" [ "$(wc -l <"$TMP/out")" -eq 1 ]
run_in "" -m $FX/mistral -n 4;  check "empty stdin exit 4" [ $rc -eq 4 ]; check "empty stdin one line" one_line_error

# --- bad input: invalid UTF-8, prompt longer than the context
run -m $FX/llama -p "$(printf 'bad \xff\xfe bytes')" -n 4
check "invalid UTF-8 exit 4" [ $rc -eq 4 ]; check "invalid UTF-8 one line" one_line_error
check "invalid UTF-8 says so" grep -q UTF-8 "$TMP/err"
run -m $FX/llama -p "$(printf 'word %.0s' {1..100})" --ctx 16 -n 4
check "prompt longer than context exit 4" [ $rc -eq 4 ]; check "context error one line" one_line_error
check "context error explains" grep -q context "$TMP/err"

# --- a generation that fills the context stops there, cleanly
run -m $FX/llama -p "hi" --ctx 40 -n 1000 --ignore-eos --json --temp 0
check "context full exit 0" [ $rc -eq 0 ]; check "stop reason context" [ "$(json_field "d['stop_reason']")" = context ]

# --- closed pipe: no crash, clear error, non-zero status
"$V" -m $FX/llama -p "hi" --ctx 4096 -n 3000 --ignore-eos 2>"$TMP/err" | head -c 1 >/dev/null
rc=${PIPESTATUS[0]}
check "closed pipe exit 1" [ $rc -eq 1 ]; check "closed pipe one line" one_line_error

# --- Ctrl-C (SIGINT) stops generation: exit 130, partial output kept
"$V" -m $FX/llama -p "hi" --ctx 100000 -n 100000 --ignore-eos >"$TMP/out" 2>"$TMP/err" &
pid=$!
sleep 1
kill -INT $pid
wait $pid
rc=$?
check "SIGINT exit 130" [ $rc -eq 130 ]; check "SIGINT partial output" [ -s "$TMP/out" ]
check "SIGINT one line" one_line_error

# --- convert: the GGUF file answers like the HF directory
"$V" convert --model $FX/phi3 --out "$TMP/phi3.gguf" --type f32 2>"$TMP/err"
check "convert exit 0" [ $? -eq 0 ]
run -m $FX/phi3 -p "hello there" --temp 0 --ignore-eos -n 12 --json; a=$(json_field "d['tokens']")
run -m "$TMP/phi3.gguf" -p "hello there" --temp 0 --ignore-eos -n 12 --json
check "gguf answers like hf" [ "$a" = "$(json_field "d['tokens']")" ]
run convert --model $FX/phi3 --out "$TMP/x.gguf" --type q9_9; check "convert bad type exit 2" [ $rc -eq 2 ]

# --- images: a vision model answers like transformers; bad images and text-only models are refused
VX=tests/fixtures/vision/llava_next
want=$(python3 -c "import json; c=json.load(open('$VX/reference.json'))['cases'][0]; print(' '.join(map(str,c['generated_ids'])))")
run -m $VX -p "What is in the picture?" --image tests/fixtures/images/photo.jpg --temp 0 --ignore-eos -n 20 --json
check "image answer exit 0" [ $rc -eq 0 ]
check "image greedy ids equal transformers" [ "$(json_field "' '.join(map(str, d['tokens']))")" = "$want" ]
# --raw: the images go where the prompt has the model's own placeholder (issue #16)
run -m $VX --raw -p $'[INST] <image>\nWhat is in the picture? [/INST]' --image tests/fixtures/images/photo.jpg --temp 0 --ignore-eos -n 20 --json
check "raw prompt with <image> exit 0" [ $rc -eq 0 ]
check "raw prompt with <image> answers like the template" [ "$(json_field "' '.join(map(str, d['tokens']))")" = "$want" ]
run -m $VX --raw -p "<image> and <image>" --image tests/fixtures/images/photo.jpg
check "raw placeholders without images exit 4" [ $rc -eq 4 ]; check "raw placeholder count one line" one_line_error
check "raw placeholder count named" grep -q "1 images but 2 image placeholders" "$TMP/err"
run -m $VX --raw -p "What is in the picture?" --image tests/fixtures/images/photo.jpg -n 2
check "raw prompt without placeholder takes the image first" [ $rc -eq 0 ]
run -m $FX/llama -p "hi" --image tests/fixtures/images/photo.jpg
check "text-only model with image exit 2" [ $rc -eq 2 ]; check "text-only model one line" one_line_error
run -m $VX -p "hi" --image /nonexistent.jpg
check "missing image exit 4" [ $rc -eq 4 ]; check "missing image named" grep -q nonexistent.jpg "$TMP/err"
head -c 3000 tests/fixtures/images/photo.jpg >"$TMP/cut.jpg"
run -m $VX -p "hi" --image "$TMP/cut.jpg"
check "truncated image exit 4" [ $rc -eq 4 ]; check "truncated image one line" one_line_error
echo "not an image" >"$TMP/fake.png"
run -m $VX -p "hi" --image "$TMP/fake.png"
check "fake image exit 4" [ $rc -eq 4 ]

# --- chat templates: `template` prints the rendering byte for byte; --print-prompt; --messages
printf '[{"role": "user", "content": "Hi"}]' >"$TMP/hi.json"
run template "$FX/phi3/chat_template.jinja" --messages "$TMP/hi.json"
printf '<|user|>\nHi<|end|>\n<|assistant|>\n' >"$TMP/want"
check "template: exact rendering" cmp -s "$TMP/out" "$TMP/want"
run template "$FX/phi3/chat_template.jinja" --messages "$TMP/hi.json" --no-generation-prompt
check "template: no generation prompt" [ "$(cat "$TMP/out")" = "$(printf '<|user|>\nHi<|end|>')" ]
printf '{{ bos_token }}{{ x.a }}{{ tools|length }}' >"$TMP/vars.jinja"
run template "$TMP/vars.jinja" --bos '<s>' --var 'x={"a": [1, 2.5, null]}' --tools "$TMP/hi.json"
check "template: --bos, --var, --tools" [ "$(cat "$TMP/out")" = "<s>[1, 2.5, None]1" ]
printf "{{ raise_exception('no system role') }}" >"$TMP/raise.jinja"
run template "$TMP/raise.jinja"
check "template: raise exits 4" [ $rc -eq 4 ]; check "template: raise one line" one_line_error
check "template: raise prints nothing" [ ! -s "$TMP/out" ]; check "template: raise message" grep -q "no system role" "$TMP/err"
# a Phi-3 template written as '<|' + message['role'] + '|>' renders (no more "chat raw")
run -m "$FX/phi3" -p Hi --print-prompt
check "print-prompt: phi3 template" cmp -s "$TMP/out" "$TMP/want"
# --messages answers as the same request through --prompt/--system does, token for token
printf '[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]' >"$TMP/conv.json"
run -m "$FX/llama" --messages "$TMP/conv.json" -n 6 --json; a=$(json_field "d['tokens']")
run -m "$FX/llama" --system "Be brief." -p Hi -n 6 --json; b=$(json_field "d['tokens']")
check "--messages equals --prompt/--system" [ -n "$a" ] && [ "$a" = "$b" ]
# LLaVA with a system message and an image (image_url part): the template places the placeholder
printf '[{"role": "system", "content": "Describe."}, {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "tests/fixtures/images/rgb.png"}}, {"type": "text", "text": "What is it?"}]}]' >"$TMP/vlm.json"
run -m tests/fixtures/vision/llava_next --messages "$TMP/vlm.json" --print-prompt
check "print-prompt: llava system + image" [ "$(cat "$TMP/out")" = "$(printf '<<SYS>>\nDescribe.\n<</SYS>>\n\n[INST] <image>\nWhat is it? [/INST]')" ]
run -m tests/fixtures/vision/llava_next --messages "$TMP/vlm.json" -n 3 --json
check "--messages with an image answers" [ $rc -eq 0 ] && [ "$(json_field "d['prompt_tokens'] > 20")" = True ]
# a file written like /save writes it (image_url paths) replays, as the same request through --image does
run -m tests/fixtures/vision/smolvlm --messages <(printf '[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "tests/fixtures/images/rgb.png"}}, {"type": "text", "text": "Hi"}]}]') -n 4 --json
a=$(json_field "d['tokens']")
run -m tests/fixtures/vision/smolvlm -i tests/fixtures/images/rgb.png -p Hi -n 4 --json; b=$(json_field "d['tokens']")
check "--messages image equals --image" [ -n "$a" ] && [ "$a" = "$b" ]
# --template FILE overrides the model's template
printf '{{ messages[0].content | upper }}' >"$TMP/upper.jinja"
run -m "$FX/phi3" -p hi --template "$TMP/upper.jinja" --print-prompt
check "--template FILE" [ "$(cat "$TMP/out")" = "HI" ]
# --- Phi-3-V through its preset: weights under the data directory, answers like the published code
PX=tests/fixtures/vision/phi3v
mkdir -p "$TMP/data/vlmchat/models" && ln -s "$PWD/$PX" "$TMP/data/vlmchat/models/Phi-3.5-vision-instruct"
want=$(python3 -c "import json; c=json.load(open('$PX/reference.json'))['cases'][0]; print(' '.join(map(str,c['generated_ids'])))")
XDG_DATA_HOME="$TMP/data" run -m phi3_vision -p "What is in the picture?" --image tests/fixtures/images/photo.jpg --ignore-eos -n 10 --json
check "phi3_vision preset exit 0" [ $rc -eq 0 ]
check "phi3_vision greedy ids equal the published code" [ "$(json_field "' '.join(map(str, d['tokens']))")" = "$want" ]
XDG_DATA_HOME="$TMP/nodata" run -m phi3_vision -p hi
check "phi3_vision not downloaded exit 3" [ $rc -eq 3 ]; check "lists the download" grep -q "model-00001-of-00002.safetensors" "$TMP/err"

# --- a text GGUF beside several mmproj files none of which is named for it: an error naming the way out;
# --no-mmproj opens the text model alone (and then it takes no images); not together with --mmproj
mkdir -p "$TMP/pair"
cp tests/fixtures/vision/smolvlm_gguf/smolvlm-f32.gguf "$TMP/pair/m.gguf"
cp tests/fixtures/vision/smolvlm_gguf/mmproj-smolvlm-f32.gguf "$TMP/pair/mmproj-a.gguf"
cp "$TMP/pair/mmproj-a.gguf" "$TMP/pair/mmproj-b.gguf"
run -m "$TMP/pair/m.gguf" -p hi -n 2 --temp 0
check "several mmproj: exit 2" [ $rc -eq 2 ]
check "several mmproj: one line naming --no-mmproj" sh -c "[ \$(wc -l <'$TMP/err') -eq 1 ] && grep -q -- --no-mmproj '$TMP/err'"
run -m "$TMP/pair/m.gguf" --no-mmproj -p hi -n 2 --temp 0 --json
check "--no-mmproj: text only, exit 0" [ $rc -eq 0 ]
check "--no-mmproj: an answer" [ "$(json_field "len(d['tokens'])")" -eq 2 ]
run -m "$TMP/pair/m.gguf" --no-mmproj -i tests/fixtures/images/bw.png -p hi -n 2 --temp 0
check "--no-mmproj: images refused, exit 2" [ $rc -eq 2 ]; check "--no-mmproj image: one line" one_line_error
run -m "$TMP/pair/m.gguf" --no-mmproj --mmproj "$TMP/pair/mmproj-a.gguf" -p hi -n 2
check "--no-mmproj with --mmproj: exit 2" [ $rc -eq 2 ]; check "--no-mmproj with --mmproj: one line" one_line_error

finish test_cli
