#!/usr/bin/env python3
"""Writes GGUF files shaped as llama.cpp's convert_hf_to_gguf.py writes them, independently of vlmchat's C
writer, so the tests can check that vlmchat reads llama.cpp's layout (metadata keys, llama q/k row
permutation, Phi-3's fused tensors and rope factor tensors, F32 norms, F16 or Q8_0 matrices).

Used by make_text_fixtures.py on the device: convert(model_dir, out_path, outtype) -> the float32 weights as
the file stores them (dequantized), so a reference forward pass can be run on exactly those weights.
"""
import json
import os
import struct

import numpy as np
from safetensors.numpy import load_file

GGUF_MAGIC = 0x46554747
T_U32, T_I32, T_F32, T_BOOL, T_STRING, T_ARRAY = 4, 5, 6, 7, 8, 9
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER, TOKEN_BYTE = 1, 2, 3, 4, 6


class Writer:
    def __init__(self):
        self.kv = []
        self.tensors = []

    def add(self, key, vtype, value):
        self.kv.append((key, vtype, value))

    def tensor(self, name, array, ggml_type):
        self.tensors.append((name, array, ggml_type))

    @staticmethod
    def _str(s):
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def _value(self, vtype, value):
        if vtype == T_STRING:
            return self._str(value)
        if vtype == T_U32:
            return struct.pack("<I", value)
        if vtype == T_I32:
            return struct.pack("<i", value)
        if vtype == T_F32:
            return struct.pack("<f", value)
        if vtype == T_BOOL:
            return struct.pack("<B", 1 if value else 0)
        etype, items = value
        out = struct.pack("<IQ", etype, len(items))
        return out + b"".join(self._value(etype, v) for v in items)

    def write(self, path, alignment=32):
        head = struct.pack("<IIQQ", GGUF_MAGIC, 3, len(self.tensors), len(self.kv))
        for key, vtype, value in self.kv:
            head += self._str(key) + struct.pack("<I", vtype) + self._value(vtype, value)
        blobs, offset = [], 0
        for name, array, gtype in self.tensors:
            data = encode(array, gtype)
            ne = list(reversed(array.shape))
            head += self._str(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
            head += struct.pack("<IQ", gtype, offset)
            blobs.append(data)
            offset += len(data) + (-len(data)) % alignment
        head += b"\0" * ((-len(head)) % alignment)
        with open(path, "wb") as f:
            f.write(head)
            for data in blobs:
                f.write(data + b"\0" * ((-len(data)) % alignment))


def round_half_away(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def q8_0(array):
    """gguf-py's Q8_0: per 32 values, d = amax/127 as f16, q = round(x/d) half away from zero."""
    blocks = array.astype(np.float32).reshape(-1, 32)
    d = np.abs(blocks).max(axis=1, keepdims=True) / 127
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, 0, 1 / d)
    qs = round_half_away(blocks * inv).astype(np.int8)
    return d.astype(np.float16), qs


def encode(array, gtype):
    if gtype == GGML_F32:
        return array.astype("<f4").tobytes()
    if gtype == GGML_F16:
        return array.astype("<f2").tobytes()
    d, qs = q8_0(array)
    out = np.zeros(len(qs), dtype=[("d", "<f2"), ("qs", "i1", 32)])
    out["d"] = d[:, 0]
    out["qs"] = qs
    return out.tobytes()


def stored(array, gtype):
    """The float32 values a reader gets back from the stored tensor."""
    if gtype == GGML_F32:
        return array.astype(np.float32)
    if gtype == GGML_F16:
        return array.astype(np.float16).astype(np.float32)
    d, qs = q8_0(array)
    return (d.astype(np.float32) * qs.astype(np.float32)).reshape(array.shape)


def permute_qk(w, n_head, n_head_kv):
    """llama.cpp's converter reorders q/k rows so its rope can rotate adjacent pairs."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def load_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for f in files:
        for k, v in load_file(os.path.join(model_dir, f)).items():
            weights[k] = v.astype(np.float32) if v.dtype != np.float32 else v
    return weights


def vocab_metadata(w, model_dir, spm):
    tj = json.load(open(os.path.join(model_dir, "tokenizer.json")))
    tc = json.load(open(os.path.join(model_dir, "tokenizer_config.json")))
    vocab = tj["model"]["vocab"]
    added = {a["id"]: a for a in tj["added_tokens"]}
    n = max(list(vocab.values()) + list(added)) + 1
    tokens, types, scores = [""] * n, [TOKEN_NORMAL] * n, [0.0] * n
    for piece, i in vocab.items():
        tokens[i] = piece
        scores[i] = -float(i)
        if spm and piece.startswith("<0x") and len(piece) == 6:
            types[i], scores[i] = TOKEN_BYTE, 0.0
    for i, a in added.items():
        tokens[i] = a["content"]
        types[i] = TOKEN_CONTROL if a["special"] else TOKEN_USER
        scores[i] = 0.0
    ids = {t: i for i, t in enumerate(tokens)}
    w.add("tokenizer.ggml.model", T_STRING, "llama" if spm else "gpt2")
    w.add("tokenizer.ggml.tokens", T_ARRAY, (T_STRING, tokens))
    w.add("tokenizer.ggml.token_type", T_ARRAY, (T_I32, types))
    if spm:
        w.add("tokenizer.ggml.scores", T_ARRAY, (T_F32, scores))
        w.add("tokenizer.ggml.add_bos_token", T_BOOL, True)
    else:
        w.add("tokenizer.ggml.pre", T_STRING, "smollm")
        merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
        w.add("tokenizer.ggml.merges", T_ARRAY, (T_STRING, merges))
        w.add("tokenizer.ggml.add_bos_token", T_BOOL, False)
    for key, field in (("bos", "bos_token"), ("eos", "eos_token"), ("unknown", "unk_token"), ("padding", "pad_token")):
        if tc.get(field) in ids:
            w.add(f"tokenizer.ggml.{key}_token_id", T_U32, ids[tc[field]])
    tpl = os.path.join(model_dir, "chat_template.jinja")
    if os.path.exists(tpl):
        w.add("tokenizer.chat_template", T_STRING, open(tpl).read())


def convert(model_dir, out_path, outtype):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    hf = load_weights(model_dir)
    arch = "phi3" if cfg["model_type"] == "phi3" else "llama"
    mat_type = {"f16": GGML_F16, "q8_0": GGML_Q8_0}[outtype]
    n_head, n_kv = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    head_dim = cfg["hidden_size"] // n_head
    w = Writer()
    w.add("general.architecture", T_STRING, arch)
    w.add("general.name", T_STRING, os.path.basename(model_dir.rstrip("/")))
    w.add("general.file_type", T_U32, 1 if outtype == "f16" else 7)
    w.add(f"{arch}.context_length", T_U32, cfg["max_position_embeddings"])
    w.add(f"{arch}.embedding_length", T_U32, cfg["hidden_size"])
    w.add(f"{arch}.feed_forward_length", T_U32, cfg["intermediate_size"])
    w.add(f"{arch}.block_count", T_U32, cfg["num_hidden_layers"])
    w.add(f"{arch}.attention.head_count", T_U32, n_head)
    w.add(f"{arch}.attention.head_count_kv", T_U32, n_kv)
    w.add(f"{arch}.attention.layer_norm_rms_epsilon", T_F32, cfg["rms_norm_eps"])
    w.add(f"{arch}.rope.dimension_count", T_U32, head_dim)
    rp = cfg.get("rope_parameters") or {}
    w.add(f"{arch}.rope.freq_base", T_F32, rp.get("rope_theta", cfg.get("rope_theta", 10000.0)))
    if arch == "llama":
        w.add("llama.vocab_size", T_U32, cfg["vocab_size"])
    vocab_metadata(w, model_dir, spm=arch == "phi3")

    stored_weights = {}

    def put(name, array, gtype, hf_name=None):
        w.tensor(name, array, gtype)
        if hf_name:
            stored_weights[hf_name] = stored(array, gtype)

    put("token_embd.weight", hf["model.embed_tokens.weight"], mat_type, "model.embed_tokens.weight")
    put("output_norm.weight", hf["model.norm.weight"], GGML_F32, "model.norm.weight")
    if not cfg.get("tie_word_embeddings", False):
        put("output.weight", hf["lm_head.weight"], mat_type, "lm_head.weight")
    if arch == "phi3":
        orig = cfg["original_max_position_embeddings"]
        w.add("phi3.rope.scaling.original_context_length", T_U32, orig)
        factor = cfg["max_position_embeddings"] / orig
        w.add("phi3.rope.scaling.attn_factor", T_F32,
              float(np.sqrt(1 + np.log(factor) / np.log(orig))) if factor > 1 else 1.0)
        put("rope_factors_long.weight", np.array(rp["long_factor"], dtype=np.float32), GGML_F32)
        put("rope_factors_short.weight", np.array(rp["short_factor"], dtype=np.float32), GGML_F32)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        put(f"blk.{i}.attn_norm.weight", hf[p + "input_layernorm.weight"], GGML_F32, p + "input_layernorm.weight")
        put(f"blk.{i}.ffn_norm.weight", hf[p + "post_attention_layernorm.weight"], GGML_F32,
            p + "post_attention_layernorm.weight")
        put(f"blk.{i}.attn_output.weight", hf[p + "self_attn.o_proj.weight"], mat_type, p + "self_attn.o_proj.weight")
        put(f"blk.{i}.ffn_down.weight", hf[p + "mlp.down_proj.weight"], mat_type, p + "mlp.down_proj.weight")
        if arch == "phi3":
            put(f"blk.{i}.attn_qkv.weight", hf[p + "self_attn.qkv_proj.weight"], mat_type, p + "self_attn.qkv_proj.weight")
            put(f"blk.{i}.ffn_up.weight", hf[p + "mlp.gate_up_proj.weight"], mat_type, p + "mlp.gate_up_proj.weight")
            continue
        q, k = hf[p + "self_attn.q_proj.weight"], hf[p + "self_attn.k_proj.weight"]
        put(f"blk.{i}.attn_q.weight", permute_qk(q, n_head, n_head), mat_type)
        put(f"blk.{i}.attn_k.weight", permute_qk(k, n_head, n_kv), mat_type)
        # quantization works along rows, so permuting rows commutes with it
        stored_weights[p + "self_attn.q_proj.weight"] = stored(q, mat_type)
        stored_weights[p + "self_attn.k_proj.weight"] = stored(k, mat_type)
        for hf_name, gg in (("self_attn.v_proj", "attn_v"), ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up")):
            put(f"blk.{i}.{gg}.weight", hf[p + hf_name + ".weight"], mat_type, p + hf_name + ".weight")
    w.write(out_path)
    return stored_weights

