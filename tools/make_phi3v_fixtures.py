#!/usr/bin/env python3
"""Reference fixtures for vlmchat's Phi-3-V family: `python3 tools/make_phi3v_fixtures.py OUTDIR`.

The reference is the published Phi-3.5-vision remote code (configuration_phi3_v.py, modeling_phi3_v.py,
processing_phi3_v.py; see ../shared/reference/phi-3.5-vision.md for the commits), which is third-party code and never
committed: put the three files in a folder and name it with PHI3V_REF (default: this script's folder). This script
patches their text at run time so that they import and run under transformers 5.x:
  - the relative import of the configuration becomes a plain one;
  - the hard-coded CLIP ViT-L/14-336 tower config is replaced by config.json's `vision_config` when there is one (tiny
    test towers; real checkpoints have none), and the `C == 1024` width assert by `C == image_dim_out`;
  - `_tied_weights_keys` becomes a dict; `Phi3VImageProcessor.__call__` goes straight to `preprocess`;
  - documentation decorators that transformers no longer has become no-ops (they only write docstrings).
Generation is a plain greedy loop over full forward passes without a cache (use_cache=False), so none of the 4.x
cache API is needed; prompts never cross original_max_position_embeddings during generation, where a cached and an
uncached run would choose rotary factors differently.

Writes OUTDIR/vision/<model>/ for tiny random Phi-3-V models (bf16 safetensors under the real checkpoints' names,
config.json, preprocessor_config.json, tokenizer files from tests/fixtures/tokenizers/sp_phi3), and
reference.json + reference.bin: per case the messages, the rendered prompt, the processor's input ids (image
positions as the processor writes them: -k for image k), image sizes and token counts, pixel values per real crop
(every STRIDE-th value and every row's sum; padding crops are asserted to be zero), first logits and greedy ids.
phi3v_mlx4 is phi3v quantized in mlx-community's layout (every Linear and Embedding, 4-bit groups of 64, fp16
elsewhere), referenced on the dequantized weights. OUTDIR/vision/phi3v_token_counts.json has the processor's token
counts for real image sizes at num_crops 4 and 16.
"""
import copy
import io
import json
import math
import os
import re
import shutil
import sys
import traceback
import types

import numpy as np
import torch
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.environ.get("PHI3V_REF", HERE)
OUT = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "fixtures_out", "vision")
STRIDE = 211          # pixel samples: every STRIDE-th value of a crop (3 x 336 x 336)
N_GEN = 10            # greedy tokens per case


def find_root():
    d = os.path.abspath(os.getcwd())
    for _ in range(6):
        if os.path.isdir(os.path.join(d, "tests", "fixtures", "tokenizers", "sp_phi3")):
            return d
        d = os.path.dirname(d)
    raise SystemExit("run inside the vlmchat tree (tests/fixtures/tokenizers/sp_phi3 not found)")


ROOT = os.environ.get("VLMCHAT_ROOT") or find_root()
FIX = os.path.join(ROOT, "tests", "fixtures")
TOK_DIR = os.path.join(FIX, "tokenizers", "sp_phi3")

# ---- loading the published code, patched for transformers 5 ----

TOWER = {}   # the vision_config of the model being built (fallback if the config object drops the field)


def patch(src, pattern, repl, what):
    new, n = re.subn(pattern, lambda m: repl, src, count=1)
    if n != 1:
        raise SystemExit(f"patch '{what}' did not apply")
    print("  patched:", what, flush=True)
    return new


def load_module(name, path, src, extra=None):
    mod = types.ModuleType(name)
    mod.__file__ = path
    if extra:
        mod.__dict__.update(extra)
    sys.modules[name] = mod
    exec(compile(src, path, "exec"), mod.__dict__)
    return mod


def doc_stubs():
    import transformers.utils as tu
    for name in ("add_start_docstrings", "add_start_docstrings_to_model_forward"):
        if not hasattr(tu, name):
            setattr(tu, name, lambda *a, **k: (lambda f: f))
            print("  stub:", name)
    for name in ("replace_return_docstrings", "add_code_sample_docstrings"):
        if not hasattr(tu, name):
            setattr(tu, name, lambda *a, **k: (lambda f: f))
            print("  stub:", name)
    if not hasattr(tu, "is_flash_attn_greater_or_equal_2_10"):
        tu.is_flash_attn_greater_or_equal_2_10 = lambda: False
        print("  stub: is_flash_attn_greater_or_equal_2_10")


def load_published():
    print("published code from", REF, flush=True)
    doc_stubs()
    paths = {n: os.path.join(REF, n + ".py") for n in ("configuration_phi3_v", "modeling_phi3_v", "processing_phi3_v")}
    srcs = {n: open(p).read() for n, p in paths.items()}
    conf = load_module("configuration_phi3_v", paths["configuration_phi3_v"], srcs["configuration_phi3_v"])

    from transformers import CLIPVisionConfig

    def tower_config(config):
        vc = getattr(config, "vision_config", None) or TOWER.get("cfg")
        if not vc:
            return sys.modules["modeling_phi3_v"].CLIP_VIT_LARGE_PATCH14_336_CONFIG
        if not isinstance(vc, dict):
            vc = vc.to_dict()
        keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size",
                "patch_size", "hidden_act", "layer_norm_eps", "num_channels", "projection_dim")
        c = CLIPVisionConfig(**{k: vc[k] for k in keys if k in vc})
        c._attn_implementation = "eager"
        return c

    m = srcs["modeling_phi3_v"]
    m = patch(m, r"from \.configuration_phi3_v import Phi3VConfig", "from configuration_phi3_v import Phi3VConfig",
              "plain import of the configuration")
    m = patch(m, r"clip_config = CLIP_VIT_LARGE_PATCH14_336_CONFIG", "clip_config = _phi3v_tower_config(config)",
              "tower from vision_config")
    m = patch(m, r"L == 24 \* 24 and C == 1024 and N %", "L == 24 * 24 and C == self.image_dim_out and N %",
              "tower width assert")
    m = patch(m, r"_tied_weights_keys = \[\"lm_head.weight\"\]", "_tied_weights_keys = {}", "_tied_weights_keys dict")
    try:
        import transformers.modeling_attn_mask_utils  # noqa: F401
    except ImportError as e:
        raise SystemExit(f"transformers has no modeling_attn_mask_utils: {e}")
    model = load_module("modeling_phi3_v", paths["modeling_phi3_v"], m, {"_phi3v_tower_config": tower_config})

    p = srcs["processing_phi3_v"]
    p = patch(p, r"AutoImageProcessor\.register\(\"Phi3VImageProcessor\", Phi3VImageProcessor\)",
              "try:\n    AutoImageProcessor.register(\"Phi3VImageProcessor\", Phi3VImageProcessor)\n"
              "except Exception as _e:\n    print('  (AutoImageProcessor.register skipped:', _e, ')')",
              "tolerant AutoImageProcessor.register")
    proc = load_module("processing_phi3_v", paths["processing_phi3_v"], p)
    proc.Phi3VImageProcessor.__call__ = lambda self, images, **kw: self.preprocess(images, **kw)
    print("  patched: Phi3VImageProcessor.__call__ -> preprocess", flush=True)
    return conf, model, proc


# ---- tiny models ----

REAL_ROPE_SHORT_HEAD = [1.08, 1.1, 1.13, 1.2, 1.3, 1.5, 1.8, 2.1, 2.6, 3.0, 3.5, 4.1]
AUTO_MAP = {"AutoConfig": "configuration_phi3_v.Phi3VConfig", "AutoModelForCausalLM": "modeling_phi3_v.Phi3VForCausalLM"}


def text_config(hidden, heads, kv, ffn, layers, vocab, rope, orig_max, max_pos, seed):
    head_dim = hidden // heads
    g = np.random.default_rng(seed)
    d = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
             num_attention_heads=heads, num_key_value_heads=kv, hidden_act="silu", max_position_embeddings=max_pos,
             original_max_position_embeddings=orig_max, rms_norm_eps=1e-5, rope_theta=10000.0,
             bos_token_id=1, eos_token_id=2, pad_token_id=679, sliding_window=262144, tie_word_embeddings=False,
             embd_pdrop=0.0, resid_pdrop=0.0, attention_dropout=0.0, initializer_range=0.02, use_cache=True)
    if rope:
        short = [round(float(x), 4) for x in np.sort(1.0 + g.random(head_dim // 2) * 2.0)]
        long_ = [round(float(x), 4) for x in np.sort(1.0 + g.random(head_dim // 2) * 30.0)]
        d["rope_scaling"] = {"type": "su", "short_factor": short, "long_factor": long_}
    else:
        d["rope_scaling"] = None
    return d


MODELS = {
    # Phi-3.5-vision-like: num_crops 4, su rope (short factors; attention factor from 131072/4096), MHA
    "phi3v": dict(text=dict(hidden=64, heads=4, kv=4, ffn=128, layers=2, vocab=704, rope=True, orig_max=4096,
                            max_pos=131072, seed=1),
                  tower=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=3, num_attention_heads=4),
                  num_crops=4, seed=31),
    # Phi-3-vision-128k-like: num_crops 16, su rope whose prompts exceed original_max (long factors), GQA
    "phi3v_crops16": dict(text=dict(hidden=48, heads=3, kv=1, ffn=96, layers=2, vocab=704, rope=True, orig_max=1024,
                                    max_pos=16384, seed=2),
                          tower=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2),
                          num_crops=16, seed=32),
    # num_crops 1; su rope with max_position_embeddings == original (attention factor 1). (A config without
    # rope_scaling does not run under transformers 5, whose config always returns a rope dict.)
    "phi3v_crops1": dict(text=dict(hidden=32, heads=2, kv=2, ffn=64, layers=1, vocab=704, rope=True, orig_max=4096,
                                   max_pos=4096, seed=3),
                         tower=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2),
                         num_crops=1, seed=33),
}


def full_config(spec):
    t = spec["text"]
    d = text_config(t["hidden"], t["heads"], t["kv"], t["ffn"], t["layers"], t["vocab"], t["rope"], t["orig_max"],
                    t["max_pos"], t["seed"])
    tower = dict(spec["tower"], image_size=336, patch_size=14, hidden_act="quick_gelu", layer_norm_eps=1e-5,
                 num_channels=3, projection_dim=spec["tower"]["hidden_size"])
    d.update({
        "model_type": "phi3_v", "architectures": ["Phi3VForCausalLM"], "auto_map": AUTO_MAP,
        "embd_layer": {"embedding_cls": "image", "hd_transform_order": "sub_glb", "projection_cls": "mlp",
                       "use_hd_transform": True, "with_learnable_separator": True},
        "img_processor": {"image_dim_out": tower["hidden_size"], "model_name": "openai/clip-vit-large-patch14-336",
                          "name": "clip_vision_model", "num_img_tokens": 144},
        "vision_config": tower, "torch_dtype": "bfloat16",
    })
    return d


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("_GN"):
                v = torch.randn(p.shape, generator=g)
            elif p.dim() == 1 and ("norm" in name or "layrnorm" in name):
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
            elif p.dim() == 1:
                v = 0.1 * torch.randn(p.shape, generator=g)
            elif "embed_tokens" in name:
                v = torch.randn(p.shape, generator=g)
            elif "position_embedding" in name:
                v = 0.5 * torch.randn(p.shape, generator=g)
            else:
                v = torch.randn(p.shape, generator=g) * (1.5 / math.sqrt(p[0].numel()))
            p.copy_(v.bfloat16().float())   # the checkpoint is bf16: the reference runs on exactly those values


def checkpoint_name(name):
    """The real checkpoints' key: the CLIP tower under img_processor.vision_model. (transformers 5's CLIPVisionModel
    has no vision_model child)."""
    pre = "vision_embed_tokens.img_processor."
    if pre in name and pre + "vision_model." not in name:
        name = name.replace(pre, pre + "vision_model.")
    return name


def build_model(mods, spec):
    d = full_config(spec)
    TOWER["cfg"] = d["vision_config"]
    Phi3VConfig = mods[0].Phi3VConfig
    kw = {k: v for k, v in copy.deepcopy(d).items() if k not in ("model_type", "auto_map", "torch_dtype")}
    try:
        cfg = Phi3VConfig(**kw)
    except ValueError as e:
        print("  Phi3VConfig validation failed under this transformers:", e, "- validating by hand instead")
        Phi3VConfig._rope_scaling_validation = lambda self: None
        cfg = Phi3VConfig(**kw)
    cfg._attn_implementation = "eager"
    if d["rope_scaling"] is not None:
        rs = cfg.rope_scaling
        assert isinstance(rs, dict) and rs.get("type") == "su" and rs["short_factor"] == d["rope_scaling"]["short_factor"], rs
    model = mods[1].Phi3VForCausalLM(cfg).eval()
    randomize(model, spec["seed"])
    # the model is the one described: rope class, tower width, projection
    attn = model.model.layers[0].self_attn
    want = "Phi3SuScaledRotaryEmbedding" if d["rope_scaling"] else "Phi3RotaryEmbedding"
    assert type(attn.rotary_emb).__name__ == want, type(attn.rotary_emb).__name__
    ve = model.model.vision_embed_tokens
    assert ve.image_dim_out == spec["tower"]["hidden_size"] and ve.use_hd_transform and ve.hd_transform_order == "sub_glb"
    assert ve.img_processor.config.hidden_size == spec["tower"]["hidden_size"]
    assert ve.layer_idx == -2 and ve.type_feature == "patch"
    return d, model


def save_model(d, model, name, spec):
    from safetensors.torch import save_file
    out = os.path.join(OUT, name)
    os.makedirs(out, exist_ok=True)
    sd = {checkpoint_name(n): p.detach().to(torch.bfloat16).contiguous() for n, p in model.named_parameters()}
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    json.dump(d, open(os.path.join(out, "config.json"), "w"), indent=2)
    write_side_files(out, spec["num_crops"])
    print(name, "saved", len(sd), "tensors", flush=True)
    return out


def write_side_files(out, num_crops):
    json.dump({"auto_map": {"AutoImageProcessor": "processing_phi3_v.Phi3VImageProcessor",
                            "AutoProcessor": "processing_phi3_v.Phi3VProcessor"},
               "do_convert_rgb": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
               "image_processor_type": "Phi3VImageProcessor", "image_std": [0.26862954, 0.26130258, 0.27577711],
               "num_crops": num_crops, "num_img_tokens": 144, "processor_class": "Phi3VProcessor"},
              open(os.path.join(out, "preprocessor_config.json"), "w"), indent=2)
    json.dump({"_from_model_config": True, "bos_token_id": 1, "eos_token_id": EOS, "pad_token_id": 679},
              open(os.path.join(out, "generation_config.json"), "w"), indent=2)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(os.path.join(TOK_DIR, f), os.path.join(out, f))


# ---- images made here (PNG, so every decoder agrees) ----

def make_images():
    d = os.path.join(OUT, "phi3v_images")
    os.makedirs(d, exist_ok=True)
    y, x = np.mgrid[0:260, 0:150]
    tall = np.stack([(x * 255 // 149), (y * 255 // 259), ((x + y) % 64) * 4], axis=-1)
    tall[100:140, 40:110] = [250, 30, 30]
    Image.fromarray(tall.astype(np.uint8)).save(os.path.join(d, "tall.png"))
    y, x = np.mgrid[0:500, 0:900]
    wide = np.stack([(x // 30) * 8 % 256, (y // 25) * 12 % 256, ((x // 60 + y // 50) % 2) * 200 + 20], axis=-1)
    wide[200:300, 300:600] = [20, 220, 90]
    Image.fromarray(wide.astype(np.uint8)).save(os.path.join(d, "wide.png"))
    y, x = np.mgrid[0:200, 0:900]
    banner = np.stack([(x // 45) * 12 % 256, 255 - (y // 10) * 12 % 256, (x * 7 + y * 3) % 256], axis=-1)
    Image.fromarray(banner.astype(np.uint8)).save(os.path.join(d, "banner.png"))
    Image.fromarray(np.ascontiguousarray(banner.transpose(1, 0, 2)[:, ::-1]).astype(np.uint8)).save(
        os.path.join(d, "tower.png"))
    dot = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 0, 0]],
                    [[10, 20, 30], [200, 200, 200], [90, 10, 160], [0, 128, 255], [255, 255, 255]],
                    [[128, 128, 128], [60, 200, 20], [255, 0, 255], [30, 30, 30], [220, 120, 0]]], dtype=np.uint8)
    Image.fromarray(dot).save(os.path.join(d, "dot.png"))
    print("images written", sorted(os.listdir(d)), flush=True)


def image_path(rel):
    """Case image paths are relative to tests/fixtures; made images live in OUT until committed there."""
    if rel.startswith("vision/phi3v_images/"):
        return os.path.join(OUT, rel[len("vision/"):])
    return os.path.join(FIX, rel)


# ---- cases ----

class Blob:
    def __init__(self):
        self.buf = io.BytesIO()

    def put(self, arr):
        off = self.buf.tell()
        data = np.ascontiguousarray(arr).tobytes()
        self.buf.write(data)
        return [off, len(data)]


def render(template, messages):
    """The chat template with Phi-3-V's placeholders: a message's images first, numbered through the whole
    conversation, each '<|image_k|>\\n', then its text (as the model card writes prompts)."""
    import jinja2
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    k, msgs = 0, []
    for m in messages:
        content = "".join(f"<|image_{k + i + 1}|>\n" for i in range(m["n_images"])) + m["content"]
        k += m["n_images"]
        msgs.append({"role": m["role"], "content": content})
    return env.from_string(template).render(messages=msgs, add_generation_prompt=True)


def user(text, images=()):
    return {"role": "user", "content": text, "images": list(images)}


CASES_A = [
    ("landscape", [user("What is in the picture?", ["images/photo.jpg"])]),
    ("portrait", [user("Describe it.", ["vision/phi3v_images/tall.png"])]),
    ("exif_tiny", [user("Describe it.", ["images/orient6.jpg"])]),
    ("tiny", [user("What colors?", ["vision/phi3v_images/dot.png"])]),
    ("wide", [user("Read the picture.", ["vision/phi3v_images/wide.png"])]),
    ("banner", [user("Read it.", ["vision/phi3v_images/banner.png"])]),
    ("tower", [user("Read it.", ["vision/phi3v_images/tower.png"])]),
    ("two_images", [user("Compare the two images.", ["images/photo.jpg", "images/palette.png"])]),
    ("multi_turn", [user("What is in the picture?", ["images/photo.jpg"]),
                    {"role": "assistant", "content": "A small picture.", "images": []},
                    user("And this one?", ["vision/phi3v_images/tall.png"])]),
    ("text_only", [user("Say something.")]),
]
CASES_B = [
    ("landscape", [user("What is in the picture?", ["images/photo.jpg"])]),
    ("portrait", [user("Describe it.", ["vision/phi3v_images/tall.png"])]),
    ("two_images", [user("Compare the two images.", ["images/photo.jpg", "images/orient6.jpg"])]),
]
CASES_C = [
    ("landscape", [user("What is in the picture?", ["images/photo.jpg"])]),
    ("wide", [user("Read the picture.", ["vision/phi3v_images/wide.png"])]),
    ("tiny", [user("What colors?", ["vision/phi3v_images/dot.png"])]),
    ("two_images", [user("Compare the two images.", ["images/photo.jpg", "vision/phi3v_images/tall.png"])]),
]
CASES_MLX = [c for c in CASES_A if c[0] in ("landscape", "two_images")]


def make_processor(mods, num_crops):
    from transformers import PreTrainedTokenizerFast
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(TOK_DIR, "tokenizer.json"), bos_token="<s>",
                                  eos_token="<|endoftext|>", unk_token="<unk>", pad_token="<|endoftext|>")
    ip = mods[2].Phi3VImageProcessor(num_crops=num_crops)
    ip.num_img_tokens = 144
    try:
        proc = mods[2].Phi3VProcessor(image_processor=ip, tokenizer=tok)
    except Exception as e:     # ProcessorMixin details of this transformers: the published __init__ by hand
        print("  Phi3VProcessor() failed (", e, "): running its __init__ on a bare instance")
        proc = object.__new__(mods[2].Phi3VProcessor)
        mods[2].Phi3VProcessor.__init__(proc, ip, tok)
    assert tok("<|user|>\nHi").input_ids[0] == 1, "the tokenizer must add BOS as the real one does"
    return proc, tok


EOS = [2, 679, 682]   # generation_config.json's eos_token_id


def greedy(model, ids, pv, sizes):
    """N_GEN greedy tokens by full forward passes (no cache), the end-of-sequence ids masked as generate()'s
    min_new_tokens does; returns ids, first-step logits (unmasked), smallest top-2 gap."""
    cur = ids.clone()
    gen, first, margins = [], None, []
    with torch.no_grad():
        for step in range(N_GEN):
            kw = dict(input_ids=cur, use_cache=False, return_dict=True, output_attentions=False,
                      output_hidden_states=False)
            if pv is not None:
                kw.update(pixel_values=pv, image_sizes=sizes)
            logits = model(**kw).logits[0, -1].float()
            if step == 0:
                first = logits.clone()
            logits[EOS] = -float("inf")
            top = torch.topk(logits, 2).values
            margins.append(float(top[0] - top[1]))
            nxt = int(torch.argmax(logits))
            gen.append(nxt)
            cur = torch.cat([cur, torch.tensor([[nxt]], dtype=cur.dtype)], dim=1)
    return gen, first, min(margins)


def record(name, model, proc, tok, cases, d_out, cfg_dict):
    template = open(os.path.join(TOK_DIR, "chat_template.jinja")).read()
    blob = Blob()
    out_cases = []
    for cname, turns in cases:
        msgs = [{"role": t["role"], "content": t["content"], "n_images": len(t["images"])} for t in turns]
        files = [f for t in turns for f in t["images"]]
        images = [ImageOps.exif_transpose(Image.open(image_path(f))).convert("RGB") for f in files]
        prompt = render(template, msgs)
        inputs = proc(prompt, images=images if images else None, return_tensors="pt")
        ids = inputs["input_ids"]
        pv = inputs.get("pixel_values") if images else None
        sizes = inputs.get("image_sizes") if images else None
        case = {"name": cname, "messages": msgs, "images": files, "prompt_text": prompt,
                "input_ids": ids[0].tolist()}
        if images:
            sizes_l = [[int(v) for v in s] for s in (sizes.tolist() if torch.is_tensor(sizes) else sizes)]
            counts = [(h // 336 * w // 336 + 1) * 144 + 1 + (h // 336 + 1) * 12 for h, w in sizes_l]
            flat = case["input_ids"]
            for k in range(len(images)):
                assert flat.count(-(k + 1)) == counts[k], (cname, k, flat.count(-(k + 1)), counts[k])
            case["image_sizes"] = sizes_l
            case["n_image_tokens"] = counts
            assert pv.shape[1] == proc.image_processor.num_crops + 1 and tuple(pv.shape[2:]) == (3, 336, 336)
            crops = []
            for i, (h, w) in enumerate(sizes_l):
                real = 1 + (h // 336) * (w // 336)
                assert torch.all(pv[i, real:] == 0), "padding crops are zeros"
                x = pv[i, :real].float().contiguous()
                samples = x.reshape(real, -1)[:, ::STRIDE].numpy().astype("<f4")
                rows = x.double().sum(dim=3).float().numpy().astype("<f4")       # real x 3 x 336
                crops.append({"n_crops": real, "samples": blob.put(samples), "n_samples": int(samples.shape[1]),
                              "row_sums": blob.put(rows)})
            case["crops"] = crops
            case["pixel_values_shape"] = list(pv.shape)
        gen, first, margin = greedy(model, ids, pv if images else None, sizes if images else None)
        case.update({"generated_ids": gen, "first_logits": [round(float(v), 6) for v in first],
                     "min_margin": margin})
        out_cases.append(case)
        print(f"  {name} {cname}: {ids.shape[1]} ids, image tokens {case.get('n_image_tokens')}, sizes "
              f"{case.get('image_sizes')}, gen {gen}, margin {margin:.4f}", flush=True)
    open(os.path.join(d_out, "reference.bin"), "wb").write(blob.buf.getvalue())
    json.dump({"model": name, "stride": STRIDE, "cases": out_cases}, open(os.path.join(d_out, "reference.json"), "w"),
              ensure_ascii=False)


# ---- MLX 4-bit, as mlx-community converted Phi-3.5-vision ----

GROUP = 64


def quantize(w):
    """mlx.core.quantize (affine, 4 bits, groups of GROUP along the input): packed words, fp16 scales and biases,
    and the dequantized float32 weight."""
    rows, cols = w.shape
    g = w.float().reshape(rows, cols // GROUP, GROUP)
    lo, hi = g.min(dim=2).values, g.max(dim=2).values
    scales = ((hi - lo) / 15).to(torch.float16)
    biases = lo.to(torch.float16)
    s, b = scales.float().unsqueeze(2), biases.float().unsqueeze(2)
    q = torch.where(s > 0, torch.round((g - b) / torch.where(s > 0, s, torch.ones_like(s))), torch.zeros_like(g))
    q = q.clamp(0, 15).to(torch.int64)
    deq = (s * q.float() + b).reshape(rows, cols)
    q = q.reshape(rows, cols // 8, 8)
    words = torch.zeros(rows, cols // 8, dtype=torch.int64)
    for k in range(8):
        words |= q[:, :, k] << (4 * k)
    return words.to(torch.uint32), scales, biases, deq


def make_mlx(d, model, mods, proc, tok):
    from safetensors.torch import save_file
    name = "phi3v_mlx4"
    out = os.path.join(OUT, name)
    os.makedirs(out, exist_ok=True)
    model = copy.deepcopy(model)
    stored, quantized = {}, []
    with torch.no_grad():
        for mname, mod in model.named_modules():
            if not isinstance(mod, (torch.nn.Linear, torch.nn.Embedding)):
                continue
            if mod.weight.shape[1] % GROUP:
                raise SystemExit(f"{mname}: input width {mod.weight.shape[1]} is not a multiple of {GROUP}")
            words, scales, biases, deq = quantize(mod.weight)
            mod.weight.copy_(deq)
            key = checkpoint_name("" + mname)
            stored[key + ".weight"] = words
            stored[key + ".scales"] = scales
            stored[key + ".biases"] = biases
            quantized.append(key)
        for pname, p in model.named_parameters():
            key = checkpoint_name(pname)
            if key in stored:
                continue
            p.copy_(p.to(torch.float16).float())        # MLX keeps the rest in fp16
            t = p.detach().to(torch.float16)
            if t.dim() == 4:
                t = t.permute(0, 2, 3, 1)               # convolutions channels-last (OHWI)
            stored[key] = t.contiguous()
    print(name, "quantized", len(quantized), "modules:", quantized, flush=True)
    assert any("position_embedding" in q for q in quantized) and any("embed_tokens" in q for q in quantized)
    save_file(stored, os.path.join(out, "model.safetensors"), metadata={"format": "mlx"})
    cfg = dict(d)
    cfg["quantization"] = {"group_size": GROUP, "bits": 4}
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    write_side_files(out, 4)
    record(name, model, proc, tok, CASES_MLX, out, cfg)


# ---- token counts for real sizes ----

def token_counts(mods):
    counts = {}
    sizes = [(336, 336), (1024, 768), (768, 1024), (1920, 1080), (1080, 1920), (640, 480), (500, 500), (100, 1000),
             (4000, 300), (1, 1)]
    for n in (4, 16):
        ip = mods[2].Phi3VImageProcessor(num_crops=n)
        table = {}
        for w, h in sizes:
            a = ip.calc_num_image_tokens_from_image_size(w, h)
            b = ip.calc_num_image_tokens(Image.new("RGB", (w, h)))[0]
            assert a == b, (n, w, h, a, b)
            table[f"{w}x{h}"] = int(a)
        counts[f"num_crops_{n}"] = table
    json.dump(counts, open(os.path.join(OUT, "phi3v_token_counts.json"), "w"), indent=1)
    print("token counts", counts, flush=True)


def main():
    torch.set_num_threads(min(16, os.cpu_count() or 1))
    torch.manual_seed(0)
    import transformers
    print("torch", torch.__version__, "transformers", transformers.__version__, flush=True)
    os.makedirs(OUT, exist_ok=True)
    mods = load_published()
    make_images()
    failed = []
    token_counts(mods)
    for name, cases in (("phi3v", CASES_A), ("phi3v_crops16", CASES_B), ("phi3v_crops1", CASES_C)):
        try:
            spec = MODELS[name]
            d, model = build_model(mods, spec)
            out = save_model(d, model, name, spec)
            proc, tok = make_processor(mods, spec["num_crops"])
            record(name, model, proc, tok, cases, out, d)
            if name == "phi3v":
                make_mlx(d, model, mods, proc, tok)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            sys.stdout.flush()
    print("FAILED:" if failed else "all fixtures written", failed, flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
