#!/usr/bin/env python3
"""The malformed-input table: each case builds a bad input (from the fixtures), runs vlmchat on it, and checks
the exit status (as documented in the man page), that stderr is exactly one line starting "vlmchat: ", that the
line names the file or the problem, and that nothing crashed (no signal, no sanitizer report).

    python3 tests/cli/malformed.py VLMCHAT
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

V = sys.argv[1] if len(sys.argv) > 1 else "build/vlmchat"
FX = "tests/fixtures"
T = tempfile.mkdtemp(prefix="vlmchat-malformed-")
USAGE, MODEL, INPUT, NOMEM = 2, 3, 4, 5
cases = []


def case(name, args, code, mention, stdin=b""):
    cases.append((name, args, code, mention, stdin))


def write(name, data):
    path = os.path.join(T, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


# ---- GGUF ------------------------------------------------------------------------------------------------
good = open(f"{FX}/gguf/llama-q8_0.gguf", "rb").read()
tname = good.find(b"token_embd.weight") + len(b"token_embd.weight")   # n_dims u32, ne[2] u64, type u32, offset u64


def gguf_case(name, data, mention=None):
    path = write(f"{name}.gguf", data)
    case(f"gguf: {name}", ["-m", path, "-p", "hi"], MODEL, mention or path)


def patched(offset, data):
    b = bytearray(good)
    b[offset:offset + len(data)] = data
    return bytes(b)


gguf_case("empty", b"")
gguf_case("three bytes", b"GGU")
gguf_case("magic only", b"GGUF")
gguf_case("wrong magic", b"GGML" + good[4:])
gguf_case("version 1", patched(4, struct.pack("<I", 1)), "version")
gguf_case("version 99", patched(4, struct.pack("<I", 99)), "version")
gguf_case("truncated header", good[:20])
gguf_case("truncated metadata", good[:3000])
gguf_case("truncated tensor data", good[:-64])
gguf_case("huge tensor count", patched(8, struct.pack("<Q", 1 << 60)), "implausible")
gguf_case("huge metadata count", patched(16, struct.pack("<Q", 1 << 60)), "implausible")
gguf_case("huge key length", patched(24, struct.pack("<Q", 1 << 50)))
gguf_case("unknown tensor type", patched(tname + 4 + 16, struct.pack("<I", 77)), "type")
gguf_case("zero dimensions", patched(tname, struct.pack("<I", 0)), "dimensions")
gguf_case("five dimensions", patched(tname, struct.pack("<I", 5)), "dimensions")
gguf_case("dimension overflow", patched(tname + 4, struct.pack("<Q", 1 << 63)))
gguf_case("offset past the end", patched(tname + 4 + 16 + 4, struct.pack("<Q", 1 << 40)), "past the end")
gguf_case("misaligned offset", patched(tname + 4 + 16 + 4, struct.pack("<Q", 3)), "aligned")
arch = good.find(b"general.architecture") + len(b"general.architecture") + 4 + 8
gguf_case("unknown architecture", patched(arch, b"gptx_"), "not supported")
# the second tensor placed on the first one's bytes
second = good.find(b".weight", tname) + len(b".weight")
b2 = bytearray(good)
nd = struct.unpack("<I", good[second:second + 4])[0]
b2[second + 4 + 8 * nd + 4:second + 4 + 8 * nd + 12] = good[tname + 4 + 16 + 4:tname + 4 + 16 + 12]
gguf_case("overlapping tensors", bytes(b2), "overlap")

# ---- mmproj (llama.cpp's vision half, paired with a text GGUF) ---------------------------------------------
mm_text = f"{FX}/vision/smolvlm_gguf/smolvlm-f32.gguf"
mm_good = open(f"{FX}/vision/smolvlm_gguf/mmproj-smolvlm-f32.gguf", "rb").read()


def mm_value(key):
    """Offset of a metadata value's type (u32), then the value, in the good mmproj file."""
    k = struct.pack("<Q", len(key)) + key.encode()
    i = mm_good.find(k)
    assert i >= 0, key
    return i + len(k)


def mm_patched(offset, data):
    b = bytearray(mm_good)
    b[offset:offset + len(data)] = data
    return bytes(b)


def mm_case(name, data, mention=None):
    path = write(f"mmproj-{name.replace(' ', '_')}.gguf", data)
    case(f"mmproj: {name}", ["-m", mm_text, "--mmproj", path, "-p", "hi"], MODEL, mention or path)


mm_case("truncated", mm_good[:2000])
mm_case("truncated tensor data", mm_good[:-100])
mm_case("not clip", mm_patched(mm_value("general.architecture") + 4 + 8, b"clap"), "not an mmproj")
mm_case("unknown projector", mm_patched(mm_value("clip.projector_type") + 4 + 8, b"idefics9"), "idefics9")
mm_case("image_size as i32", mm_patched(mm_value("clip.vision.image_size"), struct.pack("<I", 5)), "GGUF type")
mm_case("zero patch size", mm_patched(mm_value("clip.vision.patch_size") + 4, struct.pack("<I", 0)), "patch_size")
mm_case("patch size not dividing", mm_patched(mm_value("clip.vision.patch_size") + 4, struct.pack("<I", 13)),
        "do not divide")
mm_case("huge block count", mm_patched(mm_value("clip.vision.block_count") + 4, struct.pack("<I", 1 << 30)),
        "block_count")
mm_case("more blocks than tensors", mm_patched(mm_value("clip.vision.block_count") + 4, struct.pack("<I", 3)),
        "encoder.layers.2")
mm_case("heads not dividing", mm_patched(mm_value("clip.vision.attention.head_count") + 4, struct.pack("<I", 5)),
        "do not divide")
mm_case("scale factor not dividing",
        mm_patched(mm_value("clip.vision.projector.scale_factor") + 4, struct.pack("<I", 3)), "scale_factor")
mm_case("projection width", mm_patched(mm_value("clip.vision.projection_dim") + 4, struct.pack("<I", 65)),
        "projects to 65")
mm_case("no image_mean", mm_patched(mm_value("clip.vision.image_mean") - 4, b"meax"), "image_mean")
mm_case("image_std as i32 array", mm_patched(mm_value("clip.vision.image_std") + 4, struct.pack("<I", 5)),
        "image_std")
mm_case("negative std", mm_patched(mm_value("clip.vision.image_std") + 4 + 4 + 8, struct.pack("<f", -0.5)),
        "std positive")
mm_case("NaN epsilon", mm_patched(mm_value("clip.vision.attention.layer_norm_epsilon") + 4,
                                   struct.pack("<f", float("nan"))), "layer_norm_epsilon")
mm_case("no projector tensor", mm_patched(mm_good.find(b"mm.model.fc.weight"), b"mm.model.fx.weight"),
        "modality_projection")
mm_case("no post norm", mm_patched(mm_good.find(b"v.post_ln.weight"), b"v.post_lx.weight"), "v.post_ln")
fc = mm_good.find(b"v.blk.0.ffn_up.weight") + len(b"v.blk.0.ffn_up.weight")
mm_case("fc1 wrong shape", mm_patched(fc + 4, struct.pack("<QQ", 64, 32)), "fc")
mm_case("patch embedding wrong shape", mm_patched(mm_good.find(b"v.patch_embd.weight") + len(b"v.patch_embd.weight")
                                                  + 4, struct.pack("<QQQQ", 14, 14, 1, 96)), "patch embedding")
# ---- Phi-3-V as one GGUF (vlmchat.phi3v.* keys; include/loader/gguf_phi3v.h) -------------------------------
p3_path = os.path.join(T, "phi3v-f32.gguf")
subprocess.run([V, "convert", "--model", f"{FX}/vision/phi3v", "--out", p3_path, "--type", "f32"], check=True,
               capture_output=True, timeout=120)
p3_good = open(p3_path, "rb").read()


def p3_value(key):
    """Offset of a metadata value's type (u32), then the value, in the good Phi-3-V GGUF."""
    k = struct.pack("<Q", len(key)) + key.encode()
    i = p3_good.find(k)
    assert i >= 0, key
    return i + len(k)


def p3_case(name, offset, data, mention):
    b = bytearray(p3_good)
    b[offset:offset + len(data)] = data
    path = write(f"phi3v-{name.replace(' ', '_')}.gguf", bytes(b))
    case(f"phi3v gguf: {name}", ["-m", path, "-p", "hi"], MODEL, mention)


p3_case("num_crops 0", p3_value("vlmchat.phi3v.num_crops") + 4, struct.pack("<I", 0), "num_crops")
p3_case("layer_idx past the stored blocks", p3_value("vlmchat.phi3v.layer_idx") + 4, struct.pack("<i", 9),
        "layer_idx")
p3_case("layer_idx as u32", p3_value("vlmchat.phi3v.layer_idx"), struct.pack("<I", 4), "GGUF type")
p3_case("negative image_std", p3_value("vlmchat.phi3v.image_std") + 4 + 4 + 8, struct.pack("<f", -0.5), "image_std")
p3_case("no hidden_act", p3_value("vlmchat.phi3v.hidden_act") - 4, b"acx", "hidden_act")
p3_case("unknown activation", p3_value("vlmchat.phi3v.hidden_act") + 4 + 8, b"quick_gelx", "quick_gelx")
p3_case("block_count past the tensors", p3_value("vlmchat.phi3v.block_count") + 4, struct.pack("<I", 7),
        "encoder.layers")
p3_case("no sub_GN", p3_good.find(b"v.sub_GN"), b"v.sub_GX", "sub_GN")
case("phi3v gguf: with --mmproj", ["-m", p3_path, "--mmproj", f"{FX}/vision/smolvlm_gguf/mmproj-smolvlm-f32.gguf",
                                   "-p", "hi"], USAGE, "--mmproj")
case("mmproj: given as the model", ["-m", f"{FX}/vision/smolvlm_gguf/mmproj-smolvlm-f32.gguf", "-p", "hi"], MODEL,
     "--mmproj")
case("mmproj: missing file", ["-m", mm_text, "--mmproj", os.path.join(T, "none.gguf"), "-p", "hi"], MODEL,
     "none.gguf")
case("mmproj: with a model directory", ["-m", f"{FX}/vision/smolvlm", "--mmproj", mm_text, "-p", "hi"], USAGE,
     "--mmproj")
two = os.path.join(T, "two_mmproj")
os.makedirs(two)
shutil.copy(mm_text, two)
for n in ("mmproj-a.gguf", "mmproj-b.gguf"):
    shutil.copy(f"{FX}/vision/smolvlm_gguf/mmproj-smolvlm-f32.gguf", os.path.join(two, n))
case("mmproj: two beside the model", ["-m", os.path.join(two, "smolvlm-f32.gguf"), "-p", "hi"], USAGE,
     "several mmproj")

# ---- safetensors / HF directories ----------------------------------------------------------------------------
model = f"{FX}/models/llama"


def hf_dir(name, replace=None, drop=(), st=None):
    d = os.path.join(T, name)
    shutil.copytree(model, d)
    for f in drop:
        os.remove(os.path.join(d, f))
    for f, data in (replace or {}).items():
        with open(os.path.join(d, f), "wb") as fh:
            fh.write(data)
    if st is not None:
        with open(os.path.join(d, "model.safetensors"), "wb") as fh:
            fh.write(st)
    return d


def st_file(header, data=b""):
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


stgood = open(f"{model}/model.safetensors", "rb").read()
hlen = struct.unpack("<Q", stgood[:8])[0]
header = json.loads(stgood[8:8 + hlen])
body = stgood[8 + hlen:]


def st_case(name, data, mention):
    d = hf_dir(name.replace(" ", "_"), st=data)
    case(f"safetensors: {name}", ["-m", d, "-p", "hi"], MODEL, mention)


st_case("header length past the end", struct.pack("<Q", 1 << 40) + stgood[8:], "header length")
st_case("zero header length", struct.pack("<Q", 0) + stgood[8:], "header length")
st_case("header not JSON", struct.pack("<Q", 5) + b"{nope" + body, "JSON")
st_case("header not an object", struct.pack("<Q", 2) + b"[]" + body, "JSON")
h2 = json.loads(json.dumps(header)); k = next(k for k in h2 if k != "__metadata__"); h2[k]["dtype"] = "Q9"
st_case("unknown dtype", st_file(h2, body), "dtype")
h2 = json.loads(json.dumps(header)); h2[k]["shape"] = [-1, 4]
st_case("negative dimension", st_file(h2, body), "shape")
h2 = json.loads(json.dumps(header)); h2[k]["data_offsets"] = [10, 2]
st_case("reversed offsets", st_file(h2, body), "offsets")
h2 = json.loads(json.dumps(header)); h2[k]["data_offsets"] = [0, len(body) + 100]
st_case("offsets past the data", st_file(h2, body), "offsets")
h2 = json.loads(json.dumps(header)); h2[k]["shape"] = [3, 3]
st_case("size does not match shape", st_file(h2, body), "bytes")
h2 = json.loads(json.dumps(header)); names = [n for n in h2 if n != "__metadata__"]
h2[names[1]]["data_offsets"] = [h2[names[0]]["data_offsets"][0], h2[names[0]]["data_offsets"][0] + (h2[names[1]]["data_offsets"][1] - h2[names[1]]["data_offsets"][0])]
st_case("overlapping tensors", st_file(h2, body), "overlap")
h2 = json.loads(json.dumps(header)); del h2["model.norm.weight"]
st_case("missing tensor", st_file(h2, body), "model.norm.weight")
d = hf_dir("missing_tokenizer", drop=["tokenizer.json"])
case("missing tokenizer.json", ["-m", d, "-p", "hi"], MODEL, "tokenizer.json")
d = hf_dir("missing_config", drop=["config.json"])
case("missing config.json", ["-m", d, "-p", "hi"], MODEL, "config.json")
d = hf_dir("missing_weights", drop=["model.safetensors"])
case("missing weights", ["-m", d, "-p", "hi"], MODEL, "model.safetensors")
shard = os.path.join(T, "bad_shard")
shutil.copytree(f"{FX}/models/phi3", shard)
idx = json.load(open(f"{shard}/model.safetensors.index.json"))
first = next(iter(idx["weight_map"]))
idx["weight_map"][first] = "../../etc/passwd"
json.dump(idx, open(f"{shard}/model.safetensors.index.json", "w"))
case("shard name with a path", ["-m", shard, "-p", "hi"], MODEL, "shard name")
shard2 = os.path.join(T, "missing_shard")
shutil.copytree(f"{FX}/models/phi3", shard2)
os.remove(f"{shard2}/model-00002-of-00003.safetensors")
case("missing shard", ["-m", shard2, "-p", "hi"], MODEL, "model-00002-of-00003.safetensors")

def json_file_case(filename, name, change, mention):
    """The fixture model with one of its JSON files changed by change(document)."""
    doc = json.load(open(f"{model}/{filename}"))
    change(doc)
    d = hf_dir(filename.split(".")[0] + "_" + name.replace(" ", "_"), replace={filename: json.dumps(doc).encode()})
    case(f"{filename}: {name}", ["-m", d, "-p", "hi"], MODEL, mention)


def cfg_case(name, change, mention):
    json_file_case("config.json", name, change, mention)


cfg_case("unknown model_type", lambda c: c.update(model_type="gpt_neox"), "model_type")
cfg_case("missing hidden_size", lambda c: c.pop("hidden_size"), "config")
cfg_case("heads do not divide", lambda c: c.update(num_key_value_heads=3), "heads")
cfg_case("negative layers", lambda c: c.update(num_hidden_layers=-2), "config")
cfg_case("absurd size", lambda c: c.update(hidden_size=1 << 30), "implausibly large")
cfg_case("unsupported rope", lambda c: c.update(rope_parameters={"rope_type": "yarn", "rope_theta": 1e4}), "yarn")
cfg_case("unsupported activation", lambda c: c.update(hidden_act="relu"), "hidden_act")
cfg_case("shape mismatch", lambda c: c.update(intermediate_size=128), "shape")
# MLX 4-bit checkpoints: quantization settings and the weight/scales/biases triples
mlx = f"{FX}/vision/smolvlm_mlx4"


def mlx_case(name, cfg_change=None, header_change=None, mention=""):
    d = os.path.join(T, "mlx_" + name.replace(" ", "_"))
    shutil.copytree(mlx, d)
    if cfg_change:
        cfg = json.load(open(f"{d}/config.json"))
        cfg_change(cfg)
        json.dump(cfg, open(f"{d}/config.json", "w"))
    if header_change:
        raw = open(f"{d}/model.safetensors", "rb").read()
        n = struct.unpack("<Q", raw[:8])[0]
        h = json.loads(raw[8:8 + n])
        header_change(h)
        open(f"{d}/model.safetensors", "wb").write(st_file(h, raw[8 + n:]))
    case(f"mlx: {name}", ["-m", d, "-p", "hi"], MODEL, mention)


mlx_case("8-bit", lambda c: c["quantization"].update(bits=8), mention="8-bit")
mlx_case("group size 48", lambda c: c["quantization"].update(group_size=48), mention="group size 48")
mlx_case("group size disagrees", lambda c: c["quantization"].update(group_size=64), mention="group size 64")
mlx_case("bits not a number", lambda c: c["quantization"].update(bits="four"), mention="bits")
mlx_case("other quant_method", lambda c: (c.pop("quantization"), c.update(quantization_config={"quant_method": "gptq"})),
         mention="gptq")
mlx_case("missing biases", header_change=lambda h: h.pop("lm_head.biases"), mention="lm_head.scales")
mlx_case("not quantized", lambda c: c.pop("quantization"), mention="U32")
d = hf_dir("cfg_not_json", replace={"config.json": b"{\"model_type\": "})
case("config.json: not JSON", ["-m", d, "-p", "hi"], MODEL, "config.json")

def tok_case(name, change, mention):
    json_file_case("tokenizer.json", name, change, mention)


tok_case("unigram model", lambda t: t["model"].update(type="Unigram"), "Unigram")
tok_case("merge of a missing piece", lambda t: t["model"]["merges"].insert(0, ["zzz", "qqq"]), "merge")
tok_case("unsupported normalizer", lambda t: t.update(normalizer={"type": "NFKC"}), "NFKC")
tok_case("unsupported pre-tokenizer", lambda t: t.update(pre_tokenizer={"type": "BertPreTokenizer"}), "BertPreTokenizer")
tok_case("bad regex", lambda t: t.update(pre_tokenizer={"type": "Split", "pattern": {"Regex": "(("}, "behavior": "Isolated"}), "regex")
tok_case("vocabulary ids out of range", lambda t: t["model"]["vocab"].update({"zz": -5}), "id")
d = hf_dir("tok_not_json", replace={"tokenizer.json": b"[1, 2"})
case("tokenizer.json: not JSON", ["-m", d, "-p", "hi"], MODEL, "tokenizer.json")

# NaN weights: the norm of the final layer made NaN
nan_hdr = json.loads(json.dumps(header))
off = nan_hdr["model.norm.weight"]["data_offsets"][0]
nan_body = bytearray(body)
nan_body[off:off + 2] = struct.pack("<e", float("nan"))
d = hf_dir("nan_weights", st=st_file(nan_hdr, bytes(nan_body)))
case("NaN weights", ["-m", d, "-p", "hi", "-n", "3"], MODEL, "NaN")

# ---- images ------------------------------------------------------------------------------------------------
jpg = open(f"{FX}/images/photo.jpg", "rb").read()
png = open(f"{FX}/images/rgb.png", "rb").read()


def img_case(name, data, mention=None):
    path = write("img_" + name.replace(" ", "_"), data)
    case(f"image: {name}", ["--image", path, "-p", "hi"], INPUT, mention or path)


img_case("empty", b"")
img_case("text", b"this is not an image\n", "not a JPEG or PNG")
img_case("truncated JPEG", jpg[:len(jpg) // 2])
img_case("truncated PNG", png[:len(png) // 2])
img_case("JPEG header only", jpg[:30])
import zlib


def with_ihdr(data, w, h):
    """PNG with new IHDR dimensions and a correct checksum, so the size check is what refuses it."""
    b = bytearray(data)
    b[16:24] = struct.pack(">II", w, h)
    b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])) & 0xffffffff)
    return bytes(b)


bomb = with_ihdr(png, 100000, 100000)
img_case("PNG bomb dimensions", bytes(bomb), "over the limit")
jb = bytearray(jpg)
i = next(i for i in range(2, len(jb) - 9) if jb[i] == 0xFF and jb[i + 1] in (0xC0, 0xC2))
jb[i + 5:i + 9] = b"\x80\x00\x80\x00"   # 32768 x 32768: within libjpeg's range, over ours
img_case("JPEG bomb dimensions", bytes(jb), "over the limit")
img_case("PNG zero size", with_ihdr(png, 0, 0))
crc = bytearray(png); crc[29] ^= 0xFF
img_case("PNG bad checksum", bytes(crc))
case("image: missing file", ["--image", os.path.join(T, "nope.png"), "-p", "hi"], INPUT, "nope.png")
case("image: a directory", ["--image", T, "-p", "hi"], INPUT, "not a regular file")

# ---- prompts and input -------------------------------------------------------------------------------------
case("prompt: invalid UTF-8", ["-p", b"bad \xff\xfe"], INPUT, "UTF-8")
case("prompt: longer than the context", ["-m", model, "--ctx", "16", "-p", "word " * 200], INPUT, "context")
case("stdin: NUL byte", ["-m", model], INPUT, "NUL", stdin=b"hello\x00world\n")
case("stdin: empty", ["-m", model], INPUT, "empty")
case("stdin: invalid UTF-8 line", ["-m", model], INPUT, "UTF-8", stdin=b"caf\xc3\n")
case("eval: malformed line", ["eval", write("bad.jsonl", b"{\"question\": 5}\n")], INPUT, "bad.jsonl")
case("eval: missing file", ["eval", os.path.join(T, "none.jsonl")], INPUT, "none.jsonl")

# ---- chat templates -----------------------------------------------------------------------------------------
msgs = write("msgs.json", b'[{"role": "user", "content": "hi"}]')
for tname, text, mention in [
        ("unclosed tag", b"{% for m in messages %}{{ m.content }}", "endfor"),
        ("unclosed expression", b"{{ messages[0 }}", "unexpected"),
        ("unknown tag", b"{% include 'x.jinja' %}", "unknown tag"),
        ("unknown filter", b"{{ messages | frobnicate }}", "frobnicate"),
        ("unterminated string", b"{{ 'abc }}", "unexpected char"),
        ("unclosed comment", b"{# never closed", "comment"),
        ("break outside a loop", b"{% break %}", "outside loop"),
        ("deep nesting", b"{{ " + b"(" * 5000 + b"1" + b")" * 5000 + b" }}", "nested too deep"),
        ("raise_exception", b"{{ raise_exception('Conversation roles must alternate') }}", "roles must alternate"),
        ("type error", b"{{ messages[0].content + 1 }}", "concatenate"),
        ("undefined attribute use", b"{{ nothing.here }}", "'nothing' is undefined"),
        ("range too big", b"{% for i in range(10**9) %}{% endfor %}", "Range too big"),
        ("runaway recursion", b"{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursion"),
        ("invalid UTF-8 is data", b"\xff{{ 1 +* 2 }}", "unexpected")]:
    case(f"template: {tname}", ["template", write(f"t_{len(cases)}.jinja", text), "--messages", msgs], INPUT, mention)
case("template: missing file", ["template", os.path.join(T, "none.jinja")], INPUT, "none.jinja")
case("template: messages not an array", ["template", write("ok.jinja", b"x"), "--messages", write("obj.json", b"{}")],
     INPUT, "array")
case("template: messages not JSON", ["template", write("ok2.jinja", b"x"), "--messages", write("bad.json", b"[")],
     INPUT, "bad.json")
case("template: bad --var", ["template", write("ok3.jinja", b"x"), "--var", "x={"], USAGE, "--var")
bad_tpl = os.path.join(T, "badtpl")
shutil.copytree(f"{FX}/models/phi3", bad_tpl)
with open(os.path.join(bad_tpl, "chat_template.jinja"), "w") as f:
    f.write("{% if messages %}no end")
case("model: chat template syntax error", ["-m", bad_tpl, "-p", "hi"], MODEL, "chat template")
case("--messages: not a message", ["-m", model, "--messages", write("m1.json", b'[{"content": "x"}]')], INPUT, "role")
case("--messages: bad part", ["-m", model, "--messages", write("m2.json", b'[{"role": "user", "content": [{"text": "x"}]}]')],
     INPUT, "type")
case("--messages: remote image", ["-m", f"{FX}/vision/smolvlm", "--messages",
     write("m3.json", b'[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]')],
     INPUT, "remote")
case("--messages: with --prompt", ["-m", model, "--messages", msgs, "-p", "hi"], USAGE, "--messages")

# ---- command line ------------------------------------------------------------------------------------------
case("usage: unknown option", ["--frobnicate"], USAGE, "--frobnicate")
case("usage: missing value", ["--max-tokens"], USAGE, "--max-tokens")
case("usage: bad number", ["-n", "12abc"], USAGE, "-n expects an integer")
case("usage: bad temperature", ["--temp", "nan"], USAGE, "--temp")
case("usage: bad quant type", ["--quant", "q3_x", "-p", "hi"], USAGE, "q3_x")
case("usage: bad preview", ["--preview", "hologram"], USAGE, "--preview")
case("usage: bad memory size", ["--mem-limit", "lots"], USAGE, "--mem-limit")
case("usage: too many images", sum((["--image", "x.png"] for _ in range(17)), []), USAGE, "images")
case("memory: budget far too small", ["--mem-limit", "1M", "-p", "hi"], NOMEM, "budget")

# ---- run --------------------------------------------------------------------------------------------------
passed = failed = 0
for name, args, code, mention, stdin in cases:
    p = subprocess.run([V.encode()] + [a if isinstance(a, bytes) else a.encode() for a in args], input=stdin,
                       capture_output=True, timeout=120)
    err = p.stderr.decode("utf-8", "replace")
    lines = err.splitlines()
    problems = []
    if p.returncode != code:
        problems.append(f"exit {p.returncode}, want {code}")
    if len(lines) != 1 or not lines[0].startswith("vlmchat: "):
        problems.append(f"stderr is not one 'vlmchat: ' line: {err[:300]!r}")
    elif mention not in lines[0]:
        problems.append(f"message does not mention {mention!r}: {lines[0][:300]!r}")
    if "Sanitizer" in err or "runtime error" in err or p.returncode < 0:
        problems.append("crashed")
    if problems:
        failed += 1
        print(f"FAIL: {name}: " + "; ".join(problems))
    else:
        passed += 1
shutil.rmtree(T)
print(f"malformed input cases: {len(cases)}")
print(f"test_malformed: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
