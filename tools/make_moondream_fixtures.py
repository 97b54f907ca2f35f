#!/usr/bin/env python3
"""Reference fixtures for vlmchat's Moondream2 (revision 2025-06-21) family.

    python3 tools/make_moondream_fixtures.py --ref REF --out OUTDIR

REF is a checkout of github.com/vikhyat/moondream at 44146f1 (the code of HF revision 2025-06-21) holding
moondream/torch/*.py; it is imported, never copied here. The reference is that code, run on the CPU in float32,
on the PIL resize path (HAS_VIPS forced off), with a tiny random configuration that keeps what the code hard-codes
(378-pixel crops, 14-pixel patches, 27 vision layers since the code views the patch grid by enc_n_layers, text
head size 64 for the 32-dimension rotary, max_context 2048). The tokenizer is tests/fixtures' bytelevel_smollm
(<|endoftext|> = 0, like moondream/starmie-v1), patched in for Tokenizer.from_pretrained; the prompt templates are
passed through config.json's "config" (MoondreamConfig.from_dict reads them) so the vocabulary can stay small.
Run-time patches, all outside the reference code: prepare_crops in float32 (it hard-codes bfloat16) and recording
of its crops, text_encoder and lm_head wrapped to record ids and logits.

Writes OUTDIR/moondream/: config.json, model.safetensors (bf16; the float32 model was rounded to bf16 values
first, so both are the same numbers), tokenizer.json, the 640x480 test image (PNG), crops_<case>.png (the uint8 crops stacked
vertically) and reference.json + reference.bin (image embeddings, global-crop encoder output, first logits).
"""
import argparse
import io
import json
import math
import os
import shutil
import struct
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageDraw

T0 = time.time()


def log(*a):
    print("[%6.1fs]" % (time.time() - T0), *a, flush=True)


ap = argparse.ArgumentParser()
ap.add_argument("--ref", required=True)
ap.add_argument("--fix", default="tests/fixtures")
ap.add_argument("--out", required=True)
args = ap.parse_args()
OUT = os.path.join(args.out, "moondream")
os.makedirs(OUT, exist_ok=True)
TOK = os.path.join(args.fix, "tokenizers/bytelevel_smollm/tokenizer.json")
torch.set_num_threads(max(1, min(16, os.cpu_count() or 1)))
torch.manual_seed(0)

sys.path.insert(0, args.ref)
from tokenizers import Tokenizer  # noqa: E402

import moondream.torch.image_crops as IC  # noqa: E402
import moondream.torch.moondream as M  # noqa: E402


class LocalTokenizer:
    """Stands in for tokenizers.Tokenizer in the reference module: from_pretrained reads the local file."""
    @staticmethod
    def from_pretrained(name, *a, **k):
        return Tokenizer.from_file(TOK)


M.Tokenizer = LocalTokenizer
from moondream.torch.config import MoondreamConfig, TokenizerConfig  # noqa: E402

IC.HAS_VIPS = False   # the PIL fallback (LANCZOS), reproducible bit for bit
IC.Image = Image
log("reference imported from", args.ref, "torch", torch.__version__)

# ---- run-time patches (recorders and float32 crops) ----
REC = {"crops": None, "tiling": None, "ids": [], "logits": [], "global": None, "region": []}


def prepare_crops_f32(image, config, device):
    np_image = np.array(image.convert("RGB"))
    oc = IC.overlap_crop_image(np_image, max_crops=config.max_crops, overlap_margin=config.overlap_margin)
    REC["crops"], REC["tiling"] = oc["crops"].copy(), tuple(int(t) for t in oc["tiling"])
    all_crops = np.transpose(oc["crops"], (0, 3, 1, 2))
    all_crops = torch.from_numpy(all_crops).to(device=device, dtype=torch.float32).div_(255.0).sub_(0.5).div_(0.5)
    return all_crops, oc["tiling"]


M.prepare_crops = prepare_crops_f32
_te, _lm, _proj = M.text_encoder, M.lm_head, M.MoondreamModel._vis_proj


def text_encoder_rec(ids, w):
    REC["ids"].append([int(i) for i in ids.reshape(-1).tolist()])
    return _te(ids, w)


def lm_head_rec(hidden, w):
    out = _lm(hidden, w)
    REC["logits"].append(out[0].detach().float().clone())
    return out


def vis_proj_rec(self, g, r):
    REC["global"] = g.detach().float().clone()
    return _proj(self, g, r)


M.text_encoder, M.lm_head, M.MoondreamModel._vis_proj = text_encoder_rec, lm_head_rec, vis_proj_rec
_dc, _ds = M.decode_coordinate, M.decode_size


def decode_coordinate_rec(hidden, w):
    out = _dc(hidden, w)
    REC["region"].append(("coord", out.detach().float().reshape(-1).clone()))
    return out


def decode_size_rec(hidden, w):
    out = _ds(hidden, w)
    REC["region"].append(("size", out.detach().float().reshape(-1).clone()))
    return out


M.decode_coordinate, M.decode_size = decode_coordinate_rec, decode_size_rec

# ---- the tiny configuration ----
VOCAB = 576
TEMPLATES = {
    "caption": {"short": [1, 501, 2, 502, 3], "normal": [1, 501, 2, 503, 3], "long": [1, 501, 2, 504, 3]},
    "query": {"prefix": [1, 505, 2], "suffix": [3]},
    "detect": {"prefix": [1, 506, 507, 2], "suffix": [3]},
    "point": {"prefix": [1, 508, 2], "suffix": [3]},
}
CONFIG = {
    "text": {"dim": 128, "ff_dim": 256, "n_layers": 2, "vocab_size": VOCAB, "max_context": 2048, "n_heads": 2,
             "n_kv_heads": 2, "prefix_attn": 730},
    "vision": {"enc_dim": 32, "enc_patch_size": 14, "enc_n_layers": 27, "enc_ff_dim": 64, "enc_n_heads": 2,
               "proj_out_dim": 128, "crop_size": 378, "in_channels": 3, "max_crops": 12, "overlap_margin": 4,
               "proj_inner_dim": 128},
    "region": {"dim": 128, "coord_feat_dim": 64, "coord_out_dim": 256, "size_feat_dim": 64, "size_out_dim": 512,
               "inner_dim": 128},
    "tokenizer": {"templates": TEMPLATES},
}
cfg = MoondreamConfig.from_dict(CONFIG)
model = M.MoondreamModel(cfg, dtype=torch.float32, setup_caches=False).eval()



def init_params(seed, qkv_scale, wte_scale):
    """Every parameter from one seed (the reference leaves wte, pos_emb and the region features uninitialised)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and (".ln" in name or "post_ln" in name) and name.endswith(".weight"):
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
            elif p.dim() == 1:
                v = 0.1 * torch.randn(p.shape, generator=g)
            elif name.endswith("wte"):
                v = wte_scale * torch.randn(p.shape, generator=g)
            elif name.endswith("pos_emb"):
                v = 0.5 * torch.randn(p.shape, generator=g)
            elif name.endswith("_features"):
                v = torch.randn(p.shape, generator=g)
            else:
                s = qkv_scale if name.startswith("text.") and "attn.qkv" in name else 1.5
                v = torch.randn(p.shape, generator=g) * (s / math.sqrt(p.shape[-1]))
            p.copy_(v.to(torch.bfloat16).to(torch.float32))   # bf16 values: the bf16 file holds the same numbers


init_params(18, 1.5, 1.0)
model._setup_caches()   # after the parameters; the caches are buffers, left out of the saved file
log("parameters:", sum(p.numel() for p in model.parameters()))


def save_safetensors(path):
    sd = {"model." + k: v.detach().contiguous() for k, v in model.state_dict().items() if "kv_cache" not in k}
    header, blobs, off = {}, [], 0
    for k in sorted(sd):
        b = sd[k].to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
        header[k] = {"dtype": "BF16", "shape": list(sd[k].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    return sorted(sd)


# ---- images ----
rng = np.random.default_rng(18)


def test_image(w, h):
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, 128 + 100 * np.sin(x / 23.0) * np.cos(y / 31.0)], -1)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    d.ellipse([w * 0.1, h * 0.1, w * 0.4, h * 0.45], fill=(240, 30, 30))
    d.rectangle([w * 0.55, h * 0.5, w * 0.9, h * 0.85], fill=(20, 20, 230))
    d.line([0, h - 1, w - 1, 0], fill=(255, 255, 255), width=max(2, w // 100))
    return im


big = test_image(640, 480)
big.save(os.path.join(OUT, "scene_640x480.png"))
shutil.copy(TOK, os.path.join(OUT, "tokenizer.json"))
IMAGES = [("photo", os.path.join(args.fix, "images/photo.jpg")), ("scene", os.path.join(OUT, "scene_640x480.png"))]


class Blob:
    def __init__(self):
        self.buf = io.BytesIO()

    def put(self, arr):
        off = self.buf.tell()
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        self.buf.write(data)
        return [off, len(data)]


def margin(l):
    t = torch.topk(l, 2).values
    return float(t[0] - t[1])


def encode(pil):
    enc = model.encode_image(pil)   # no settings: the reference reads settings["variant"] unguarded
    return enc


def run_text(kind, enc, fn):
    REC["ids"], REC["logits"] = [], []
    with torch.inference_mode():
        text = fn()
    prompt = REC["ids"][0]
    gen = [r[0] for r in REC["ids"][1:]]
    logits = REC["logits"]
    # steps after the first whose unmasked argmax was the answer token (3): masking it mattered there
    masked = sum(1 for l in logits[1:] if int(torch.argmax(l)) == cfg.tokenizer.answer_id)
    return {"prompt_ids": prompt, "generated_ids": gen, "text": text, "first_logits": logits[0],
            "min_margin": min(margin(l) for l in logits), "answer_masked_steps": masked}


def run_region(kind, enc, obj, n_max):
    REC["ids"], REC["logits"], REC["region"] = [], [], []
    with torch.inference_mode():
        if kind == "detect":
            out = model.detect(enc, obj, settings={"max_objects": n_max})["objects"]
        else:
            out = model.point(enc, obj, settings={"max_objects": n_max})["points"]
    heads = REC["region"]
    half = lambda v: [int(torch.argmax(v[: v.numel() // 2])), int(torch.argmax(v[v.numel() // 2:]))]
    return {"prompt_ids": REC["ids"][0], "objects": out, "first_logits": REC["logits"][0],
            "min_margin": min(margin(l) for l in REC["logits"]),
            "head_bins": [[k, int(torch.argmax(v))] if k == "coord" else [k] + half(v) for k, v in heads],
            "first_coord_logits": heads[0][1] if heads else None}


# ---- tune two output biases so the fixture exercises the stops: the answer token (3) wins some unmasked
# steps (so masking it matters), and end of text (0) ends a detection before max_objects ----
MAX_TOK, MAX_OBJ = 20, 6
lm_b = model.text["lm_head"].bias


def set_bias(i, v):
    with torch.no_grad():
        lm_b[i] = torch.tensor(v).to(torch.bfloat16).float()


def caption_of(enc):
    return run_text("caption", enc, lambda: model.caption(enc, "normal", settings={"temperature": 0,
                                                                                   "max_tokens": MAX_TOK}))


def trial(seed, qkv_scale, wte_scale):
    """A model whose greedy captions vary (not one repeated token), whose answer token would win some masked
    steps, and whose detections end by end of text after 1..MAX_OBJ-1 objects. Returns (score, settings)."""
    init_params(seed, qkv_scale, wte_scale)
    with torch.inference_mode():
        enc = encode(big)
    base0, base3 = float(lm_b[0].detach()), float(lm_b[3].detach())
    b3 = None
    for d3 in [0.0, 1.0, 2.0, 3.0, 4.0]:
        set_bias(3, base3 + d3)
        r = caption_of(enc)
        if r["answer_masked_steps"] > 0:
            b3 = d3
            break
    if b3 is None:
        return (-1, 0), None
    best = ((-1, 0), None)
    for d0 in [x * 0.25 for x in range(0, 40)]:
        set_bias(0, base0 + d0)
        r = caption_of(enc)
        gen = r["generated_ids"]
        d = run_region("detect", enc, "red ball", MAX_OBJ)
        p = run_region("point", enc, "blue box", MAX_OBJ)
        nd, np_ = len(d["objects"]), len(p["objects"])
        distinct_obj = len({json.dumps(o, sort_keys=True) for o in d["objects"]})
        hard = (len(set(gen)) >= 6 and 1 <= nd < MAX_OBJ and 1 <= np_ < MAX_OBJ and distinct_obj >= 2 and
                r["answer_masked_steps"] > 0)
        soft = len(set(gen)) + min(distinct_obj, 3) + (2 if len(gen) >= 4 else 0) + (5 if 1 <= nd < MAX_OBJ else 0)
        score = (1 if hard else 0, soft)
        if score > best[0]:
            best = (score, (seed, qkv_scale, wte_scale, base3 + b3, base0 + d0, gen, nd, np_, distinct_obj))
        if nd == 0:
            break   # more end-of-text bias only ends things sooner
    return best


overall = ((-1, 0), None)
for i in range(24):
    seed, qs, ws = 18 + i, [1.5, 3.0, 5.0][i % 3], [1.0, 0.5][(i // 3) % 2]
    score, st = trial(seed, qs, ws)
    log("trial seed %d qkv %.1f wte %.1f: score %s %s" % (seed, qs, ws, score, st and st[5:]))
    if score > overall[0]:
        overall = (score, st)
    if score[0] == 1:   # every condition met
        break
    if time.time() - T0 > 150:
        log("tuning stopped by the time limit")
        break
seed, qs, ws, v3, v0 = overall[1][:5]
init_params(seed, qs, ws)
set_bias(3, v3)
set_bias(0, v0)
chosen, b0 = {"seed": seed, "qkv_scale": qs, "wte_scale": ws}, {"answer_bias": v3, "eos_bias": v0}
log("chosen", chosen, b0, "score", overall[0])

names = save_safetensors(os.path.join(OUT, "model.safetensors"))
json.dump({"architectures": ["HfMoondream"], "model_type": "moondream1", "config": CONFIG},
          open(os.path.join(OUT, "config.json"), "w"), indent=1)
log("saved", len(names), "tensors")

# ---- cases ----
blob = Blob()
cases = []
for name, path in IMAGES:
    pil = Image.open(path)
    with torch.inference_mode():
        emb = model._run_vision_encoder(pil)
    crops, tiling = REC["crops"], REC["tiling"]
    Image.fromarray(crops.reshape(-1, crops.shape[2], 3)).save(os.path.join(OUT, "crops_%s.png" % name))
    with torch.inference_mode():
        enc = encode(pil)
    case = {"name": name, "image": os.path.basename(path), "size": list(pil.size), "tiling": list(tiling),
            "n_crops": int(crops.shape[0]), "crops_png": "crops_%s.png" % name,
            "embd_shape": list(emb.shape), "embd": blob.put(emb.float().numpy()),
            "global_shape": list(REC["global"].shape), "global": blob.put(REC["global"].numpy()), "tasks": []}
    log(name, pil.size, "tiling", tiling, "crops", crops.shape, "embd", tuple(emb.shape))
    tasks = [("caption", "short", None), ("caption", "normal", None), ("caption", "long", None),
             ("query", None, "What is in the picture?"), ("query", None, "How many shapes are there?"),
             ("detect", None, "red ball"), ("point", None, "blue box")]
    for kind, length, text in tasks:
        st = {"temperature": 0, "max_tokens": MAX_TOK}
        if kind == "caption":
            r = run_text(kind, enc, lambda: model.caption(enc, length, settings=st)["caption"])
        elif kind == "query":
            r = run_text(kind, enc, lambda: model.query(enc, text, settings=st)["answer"])
        else:
            r = run_region(kind, enc, text, MAX_OBJ)
        r["first_logits"] = blob.put(r["first_logits"].numpy())
        if r.get("first_coord_logits") is not None:
            r["first_coord_logits"] = blob.put(r["first_coord_logits"].numpy())
        r.update({"task": kind, "length": length, "text_in": text, "max_tokens": MAX_TOK, "max_objects": MAX_OBJ})
        case["tasks"].append(r)
        log(" ", kind, length or text, "prompt", r["prompt_ids"][:12], "->",
            r.get("generated_ids", r.get("objects")), "margin %.4f" % r["min_margin"])
    cases.append(case)

tiling = {}
for w, h in [(97, 71), (378, 378), (379, 379), (640, 480), (480, 640), (1024, 768), (1920, 1080), (1400, 1400),
             (4000, 3000), (3000, 300), (300, 3000), (500, 2000), (2000, 500), (1200, 390), (800, 800), (391, 2000)]:
    oc = IC.select_tiling(h - 112, w - 112, 266, 12)
    tiling["%dx%d" % (w, h)] = [int(oc[0]), int(oc[1])]
ref = {"commit": "44146f1", "revision": "2025-06-21", "config": CONFIG, "init": chosen, "biases": b0,
       "default_templates": TokenizerConfig().templates,
       "default_tokens": {k: getattr(TokenizerConfig(), k) for k in
                          ("bos_id", "eos_id", "answer_id", "thinking_id", "coord_id", "size_id")},
       "tiling": tiling, "cases": cases}
open(os.path.join(OUT, "reference.bin"), "wb").write(blob.buf.getvalue())
json.dump(ref, open(os.path.join(OUT, "reference.json"), "w"), indent=None)
log("done", sorted(os.listdir(OUT)))
