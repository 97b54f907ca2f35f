#!/usr/bin/env python3
"""Randomized differential sweep against transformers: `python3 tools/make_sweep.py OUTDIR [N_PER_FAMILY]`.

Run from the repository root where torch and transformers are installed (CPU is enough). For each of the six
families (llama, mistral, phi3, llava_next, idefics3, smolvlm) it samples N random tiny configurations (default 40,
plus a few deliberately invalid ones), builds each model the way a user's checkpoint would be read -- config.json
written as a file, weights in model.safetensors, tokenizer and chat template copied from the committed fixture,
processor_config.json from the processor's save_pretrained -- loads it with from_pretrained, renders the
conversation with apply_chat_template(tokenize=True) and runs greedy generate().

Nothing large is committed: the weights and images come from a tiny PRNG that tests/sweep_build.c implements
identically (see `splitmix` and `tensor_values` below), so OUTDIR/sweep/<family>.json holds per case only the
config files, the tensor list (name, shape, seed, scale, offset), the image specs (width, height, seed), the
messages, and the references: input ids, greedy ids with their top-1/top-2 margins, and the first step's logits
(float32 little-endian, base64). A configuration transformers rejects is recorded with status "rejected".
"""
import base64
import copy
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
import traceback

import numpy as np

OUT = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "sweep_out", "sweep")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 40
FIX = "tests/fixtures"
NEW_TOKENS = 8
GAMMA = 0x9E3779B97F4A7C15
M64 = (1 << 64) - 1

# ---- the PRNG shared with C (tests/sweep_build.c) ------------------------------------------------------------


def splitmix(seed, n):
    """The first n outputs of splitmix64 from state `seed`: output i uses state seed + (i+1)*GAMMA."""
    with np.errstate(over="ignore"):
        z = np.uint64(seed & M64) + (np.arange(1, n + 1, dtype=np.uint64) * np.uint64(GAMMA))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def tensor_values(shape, seed, scale, offset):
    """float32(offset + scale * (2u - 1)), u = ((z >> 40) + 0.5) / 2^24, all in double."""
    n = int(np.prod(shape)) if len(shape) else 1
    u = ((splitmix(seed, n) >> np.uint64(40)).astype(np.float64) + 0.5) * (2.0 ** -24)
    return (offset + scale * (2.0 * u - 1.0)).astype(np.float32).reshape(shape)


def image_pixels(w, h, seed):
    """H x W x 3 uint8: per channel a triangle wave in x and y with a phase, plus 4 bits of noise."""
    z = splitmix(seed, 3 + w * h * 3)
    head = [int(v) for v in z[:3]]
    kx = np.array([1 + (v % 5) for v in head], dtype=np.int64)
    ky = np.array([1 + ((v >> 8) % 5) for v in head], dtype=np.int64)
    ph = np.array([(v >> 16) % 512 for v in head], dtype=np.int64)
    y, x = np.mgrid[0:h, 0:w]
    t = (x[..., None] * kx + y[..., None] * ky + ph) % 512
    tri = np.where(t < 256, t, 511 - t)
    noise = (z[3:] >> np.uint64(60)).astype(np.int64).reshape(h, w, 3)
    return np.clip(tri + noise, 0, 255).astype(np.uint8)


def init_rule(name, shape):
    """(scale, offset) of a tensor from its name and shape: unit-scale activations, clear greedy margins."""
    if len(shape) == 1 and ("norm" in name or "layernorm" in name or "layrnorm" in name):
        return 0.2, 1.0
    if len(shape) == 1:
        return 0.2, 0.0
    if "embed_tokens" in name:
        return 1.7, 0.0
    if "position_embedding" in name:
        return 0.8, 0.0
    fan_in = int(np.prod(shape[1:]))
    return 2.6 / math.sqrt(fan_in), 0.0


# ---- conversations ----------------------------------------------------------------------------------------------

TEXTS = ["What is the capital of France?", "Count: 1 2 3", "Describe the picture in one sentence.",
         "Tell me a story about a café 😀", "How many triangles are there?", "Yes or no?",
         "A red circle sits left of a blue square. Where is the square?", "Numbers: 42 100 3.14159"]
SYSTEMS = ["You are a helpful assistant.", "Answer briefly."]
ANSWERS = ["Paris.", "4 5 6", "There are three triangles.", "Once upon a time there was a tiny model."]


def text_conversation(rng):
    kind = rng.choice(["user", "system", "multi", "system_multi"])
    conv = []
    if kind.startswith("system"):
        conv.append({"role": "system", "content": rng.choice(SYSTEMS)})
    if kind.endswith("multi"):
        conv += [{"role": "user", "content": rng.choice(TEXTS)}, {"role": "assistant", "content": rng.choice(ANSWERS)}]
    conv.append({"role": "user", "content": rng.choice(TEXTS)})
    return kind, conv


def vision_conversation(rng, n_images, allow_system):
    """Images first in their message (as vlmchat places them); with 2-3 images, sometimes over two user turns."""
    kinds = ["user", "multi"] + (["system"] if allow_system else [])
    kind = rng.choice(kinds)
    conv = []
    if kind == "system":
        conv.append({"role": "system", "content": [{"type": "text", "text": rng.choice(SYSTEMS)}]})
    if kind == "multi" and n_images >= 1:
        first = rng.randint(0, n_images - 1) if n_images > 1 else 0
        conv.append({"role": "user", "content": [{"type": "image"} for _ in range(first)] +
                     [{"type": "text", "text": rng.choice(TEXTS)}]})
        conv.append({"role": "assistant", "content": [{"type": "text", "text": rng.choice(ANSWERS)}]})
        n_images -= first
    # one dict per image: vision_inputs fills each with its own picture
    conv.append({"role": "user", "content": [{"type": "image"} for _ in range(n_images)] +
                 [{"type": "text", "text": rng.choice(TEXTS)}]})
    return kind, conv


# ---- configurations -----------------------------------------------------------------------------------------------

def rope_variant(rng, family, head_dim, partial, max_pos, small):
    """A rope dict (5.x rope_parameters form), the max_position_embeddings to use and top-level extras."""
    kinds = ["default", "default", "linear", "dynamic", "yarn", "longrope", "llama3"]
    if family == "phi3":
        kinds = ["default", "default", "linear", "dynamic", "yarn", "longrope", "longrope"]
    if small:   # vision prompts are long: no context-dependent ropes
        kinds = ["default", "default", "default", "linear", "yarn", "llama3"]
    kind = rng.choice(kinds)
    theta = rng.choice([10000.0, 500000.0, 1000000.0, 50.0])
    rp = {"rope_type": kind, "rope_theta": theta}
    if partial != 1.0:
        rp["partial_rotary_factor"] = partial
    rdim = int(head_dim * partial)
    top = {}
    if kind == "linear":
        rp["factor"] = rng.choice([2.0, 4.0, 0.5])
    elif kind == "dynamic":
        rp["factor"] = rng.choice([2.0, 4.0])
        max_pos = rng.choice([24, 32, 40])          # prompts cross it: the NTK base grows during generation
    elif kind == "yarn":
        rp["factor"] = rng.choice([2.0, 4.0, 8.0])
        if rng.random() < 0.5:
            rp["beta_fast"], rp["beta_slow"] = rng.choice([(32.0, 1.0), (16.0, 2.0), (8.0, 0.5)])
        if rng.random() < 0.3:
            rp["attention_factor"] = rng.choice([1.0, 1.2])
        if rng.random() < 0.4:
            rp["original_max_position_embeddings"] = rng.choice([16, 64])
        if rng.random() < 0.2:
            rp["mscale"], rp["mscale_all_dim"] = 1.0, 0.5
        if rng.random() < 0.3:
            rp["truncate"] = False
    elif kind == "longrope":
        orig = rng.choice([16, 24, 32])
        max_pos = orig * rng.choice([2, 4])
        rp["short_factor"] = [round(1.0 + 0.05 * i * rng.random(), 4) for i in range(rdim // 2)]
        rp["long_factor"] = [round(1.0 + 1.5 * i * rng.random(), 4) for i in range(rdim // 2)]
        rp["original_max_position_embeddings"] = orig
        if family == "phi3" or rng.random() < 0.5:
            top["original_max_position_embeddings"] = orig
        if rng.random() < 0.3:
            rp["attention_factor"] = 1.1
    elif kind == "llama3":
        orig = rng.choice([8, 16, 32])
        rp.update({"factor": rng.choice([8.0, 4.0]), "low_freq_factor": 1.0, "high_freq_factor": rng.choice([4.0, 2.0]),
                   "original_max_position_embeddings": orig})
    return rp, max_pos, top


def legacy_form(cfg, rng):
    """Older config.json keys: rope_theta at the top level and rope_scaling with "type" (longrope sometimes "su")."""
    c = copy.deepcopy(cfg)
    rp = c.pop("rope_parameters", None)
    if rp is None:
        return c
    c["rope_theta"] = rp.pop("rope_theta", 10000.0)
    if "partial_rotary_factor" in rp:
        c["partial_rotary_factor"] = rp.pop("partial_rotary_factor")
    rt = rp.pop("rope_type", "default")
    if rt != "default":
        if rt == "longrope" and rng.random() < 0.5:
            rt = "su"
        key = "type" if rng.random() < 0.6 else "rope_type"
        c["rope_scaling"] = dict({key: rt}, **rp)
    return c


def text_config(rng, family, vocab, small=False, invalid=None):
    """A decoder config dict as a user's config.json has it (before transformers saw it)."""
    head_dim = rng.choice([12, 16, 24, 80] if not small else [12, 16, 24])
    n_heads = rng.choice([1, 2, 3, 4] if head_dim < 80 else [1, 2])
    ratios = [r for r in (1, 2, 3, 4) if n_heads % r == 0]
    n_kv = n_heads // rng.choice(ratios)
    explicit = family != "phi3" and rng.random() < 0.4
    hidden = rng.choice([48, 64, 96]) if explicit else n_heads * head_dim
    if not explicit and hidden < 24:
        hidden = n_heads * head_dim
    partial = 1.0
    if rng.random() < (0.35 if family == "phi3" else 0.12):
        partial = rng.choice([0.5, 0.75])
    if partial != 1.0 and int(head_dim * partial) % 2:
        partial = 0.5
    max_pos = rng.choice([512, 1024]) if not small else 4096
    rp, max_pos, top = rope_variant(rng, family, head_dim, partial, max_pos, small)
    cfg = {"model_type": family if family in ("llama", "mistral", "phi3") else "llama",
           "vocab_size": vocab + rng.choice([0, 0, 0, 7]), "hidden_size": hidden,
           "intermediate_size": rng.choice([40, 64, 96, 136, 200]), "num_hidden_layers": rng.choice([1, 2, 3]),
           "num_attention_heads": n_heads, "num_key_value_heads": n_kv, "max_position_embeddings": max_pos,
           "rms_norm_eps": rng.choice([1e-5, 1e-6]), "hidden_act": "silu", "rope_parameters": rp,
           "tie_word_embeddings": rng.random() < 0.4}
    cfg.update(top)
    if family != "phi3" and (explicit or rng.random() < 0.3):
        cfg["head_dim"] = head_dim
    if family == "llama" or (small and cfg["model_type"] == "llama"):
        if rng.random() < 0.35:
            cfg["attention_bias"] = True
        if rng.random() < 0.35:
            cfg["mlp_bias"] = True
    if family == "mistral":
        cfg["sliding_window"] = rng.choice([None, 8, 12, 20, 4096])
    if family == "phi3":
        cfg["sliding_window"] = rng.choice([None, None, 10])
    if invalid == "kv":
        cfg["num_attention_heads"], cfg["num_key_value_heads"] = 3, 2
        cfg["hidden_size"] = 3 * head_dim
        cfg.pop("head_dim", None)
    elif invalid == "rope_type":
        cfg["rope_parameters"] = {"rope_type": "fancy", "rope_theta": 10000.0}
    elif invalid == "longrope_len":
        cfg["rope_parameters"] = {"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0],
                                  "long_factor": [1.0], "original_max_position_embeddings": 16}
        cfg["original_max_position_embeddings"] = 16
    elif invalid == "act":
        cfg["hidden_act"] = "relu"
    return cfg


# ---- running transformers -------------------------------------------------------------------------------------

def write_weights(d, seed, extra=None):
    """Replaces the checkpoint's tensors by PRNG values (same names and shapes), plus `extra` {name: shape}
    tensors the saved checkpoint lacked; returns the tensor list."""
    from safetensors import safe_open
    from safetensors.numpy import save_file
    names = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(d, f), "np") as s:
                for k in s.keys():
                    names[k] = list(s.get_slice(k).get_shape())
            os.remove(os.path.join(d, f))
    if os.path.exists(os.path.join(d, "model.safetensors.index.json")):
        os.remove(os.path.join(d, "model.safetensors.index.json"))
    names.update(extra or {})
    tensors, spec = {}, []
    for i, (k, shape) in enumerate(sorted(names.items())):
        sc, off = init_rule(k, shape)
        ts = (seed * 7919 + i * 104729 + 17) & M64
        tensors[k] = tensor_values(shape, ts, sc, off)
        spec.append([k, shape, ts, sc, off])
    save_file(tensors, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    return spec


def b64_floats(t):
    return base64.b64encode(np.ascontiguousarray(t.detach().float().numpy().astype("<f4")).tobytes()).decode()


def run_generate(model, inputs, full_forward):
    import torch
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    model.generation_config.do_sample = False
    if full_forward:   # LongRoPE: see make_text_fixtures.greedy_full_forward
        seq = inputs["input_ids"][0].tolist()
        steps = []
        for _ in range(NEW_TOKENS):
            with torch.no_grad():
                l = model(torch.tensor([seq])).logits[0, -1].float()
            steps.append(l.clone())
            seq.append(int(torch.argmax(l)))
        gen = seq[-NEW_TOKENS:]
    else:
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=None,
                                 pad_token_id=0, return_dict_in_generate=True, output_logits=True)
        gen = out.sequences[0, inputs["input_ids"].shape[1]:].tolist()
        steps = [l[0].float() for l in out.logits]
    margins = [round(float(torch.topk(l, 2).values[0] - torch.topk(l, 2).values[1]), 6) for l in steps]
    return gen, margins, steps[0]


def copy_fixture(src, d):
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), os.path.join(d, f))


TEXT_FIXTURE = {"llama": "models/llama", "mistral": "models/mistral", "phi3": "models/phi3"}


def text_case(family, idx, rng, invalid=None):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, AutoConfig
    fixture = TEXT_FIXTURE[family]
    tok = AutoTokenizer.from_pretrained(os.path.join(FIX, fixture))
    seed = rng.getrandbits(40)
    cfg = text_config(rng, family, len(tok), invalid=invalid)
    if family == "phi3":
        cfg["pad_token_id"] = tok.eos_token_id
    cfg["bos_token_id"], cfg["eos_token_id"] = tok.bos_token_id, tok.eos_token_id
    legacy = rng.random() < 0.3
    kind, conv = text_conversation(rng)
    case = {"name": f"{family}_{idx:03d}", "family": family, "fixture": fixture, "seed": seed, "conv_kind": kind,
            "messages": conv, "legacy_keys": legacy, "invalid": invalid}
    d = tempfile.mkdtemp()
    try:
        config = AutoConfig.for_model(**cfg)
        config._attn_implementation = "eager"
        model = AutoModelForCausalLM.from_config(config)
        model.save_pretrained(d)
        # a tied model whose checkpoint still stores a (different) lm_head: transformers' tie_weights then
        # keeps the stored head
        extra = None
        if cfg.get("tie_word_embeddings") and rng.random() < 0.35:
            extra = {"lm_head.weight": [cfg["vocab_size"], cfg["hidden_size"]]}
            case["extra_head"] = True
        spec = write_weights(d, seed, extra)
        saved = json.load(open(os.path.join(d, "config.json")))
        if legacy:
            saved = legacy_form(saved, rng)
        json.dump(saved, open(os.path.join(d, "config.json"), "w"), indent=1)
        case["config"] = saved
        case["tensors"] = spec
        copy_fixture(os.path.join(FIX, fixture), d)
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
        rp = model.config.rope_parameters if hasattr(model.config, "rope_parameters") else {}
        case["rope_type_seen"] = (rp or {}).get("rope_type")
        enc = tok.apply_chat_template(conv, add_generation_prompt=True, tokenize=True, return_dict=True,
                                      return_tensors="pt")
        ids = enc["input_ids"][0].tolist()
        inputs = {"input_ids": enc["input_ids"], "attention_mask": torch.ones_like(enc["input_ids"])}
        full = (rp or {}).get("rope_type") == "longrope"
        gen, margins, first = run_generate(model, inputs, full)
        case.update({"status": "ok", "method": "full_forward" if full else "generate", "input_ids": ids,
                     "greedy_ids": gen, "margins": margins, "first_logits": b64_floats(first)})
    except Exception as e:
        case.update({"status": "rejected", "error": f"{type(e).__name__}: {str(e)[:300]}"})
        if "config" not in case:
            case["config"] = cfg
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return case


# ---- vision families ------------------------------------------------------------------------------------------

LLAVA_SIZES = [(1, 1), (12, 120), (120, 12), (64, 48), (200, 20), (90, 160), (300, 250), (57, 57), (33, 70)]
IDEFICS_SIZES = [(1, 1), (12, 120), (120, 12), (64, 48), (300, 30), (90, 160), (500, 420), (57, 57), (40, 400)]


def pil_images(specs):
    from PIL import Image
    return [Image.fromarray(image_pixels(w, h, s), "RGB") for w, h, s in specs]


def vision_inputs(proc, conv, images, nest):
    """The canonical path: apply_chat_template(tokenize=True) with the images in the messages; falls back to the
    rendered text + processor call when this transformers cannot take PIL images in messages."""
    filled = copy.deepcopy(conv)
    it = iter(images)
    for m in filled:
        for c in m["content"]:
            if c["type"] == "image":
                c["image"] = next(it)
    try:
        enc = proc.apply_chat_template(filled, add_generation_prompt=True, tokenize=True, return_dict=True,
                                       return_tensors="pt")
        return enc, "apply_chat_template"
    except Exception as e:
        print("   apply_chat_template(tokenize=True) failed:", type(e).__name__, str(e)[:200], flush=True)
        text = proc.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
        return proc(images=[images] if nest else images, text=text, return_tensors="pt"), "processor_call"


def llava_case(idx, rng, invalid=None):
    import torch
    from transformers import (AutoConfig, CLIPVisionConfig, LlavaNextConfig, LlavaNextForConditionalGeneration,
                              LlavaNextProcessor, PreTrainedTokenizerFast)
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil
    fixture = "vision/llava_next"
    tok = PreTrainedTokenizerFast.from_pretrained(os.path.join(FIX, fixture))
    template = open(os.path.join(FIX, fixture, "chat_template.jinja")).read()
    image_token_id = tok.convert_tokens_to_ids("<image>")
    seed = rng.getrandbits(40)
    S = rng.choice([28, 42, 56])
    vh = rng.choice([24, 32, 48])
    vheads = rng.choice([h for h in (2, 3, 4, 6) if vh % h == 0])
    vlayers = rng.choice([2, 3])
    vision = dict(hidden_size=vh, intermediate_size=rng.choice([48, 64]), num_hidden_layers=vlayers,
                  num_attention_heads=vheads, image_size=S, patch_size=14, projection_dim=32,
                  hidden_act=rng.choice(["quick_gelu", "gelu"]), layer_norm_eps=1e-5)
    family_text = rng.choice(["mistral", "llama"])
    tcfg = text_config(rng, family_text, len(tok), small=True)
    tcfg["model_type"] = family_text
    tcfg["bos_token_id"], tcfg["eos_token_id"] = 1, 2
    grids = [[1, 2], [2, 1], [2, 2], [3, 1], [1, 3], [1, 1], [3, 2]]
    pins = [[S * a, S * b] for a, b in rng.sample(grids, rng.randint(1, 5))]
    layer = rng.choice([-1, -2, -2, 0, 1, [-2, -1], [0, -1], [1, -2]])
    strategy = "full" if invalid == "full" else "default"
    top_tie = rng.random() < 0.3
    kw = dict(image_grid_pinpoints=pins, vision_feature_layer=layer, vision_feature_select_strategy=strategy,
              image_token_index=image_token_id, projector_hidden_act="gelu",
              multimodal_projector_bias=rng.random() < 0.7, tie_word_embeddings=top_tie)
    resample = rng.choice([0, 1, 2, 3, 3, 4, 5])
    se = S + rng.choice([0, 0, 6, 20])
    do_pad = rng.random() < 0.7
    n_images = rng.choice([1, 1, 2, 3])
    specs = [list(rng.choice(LLAVA_SIZES)) + [rng.getrandbits(32)] for _ in range(n_images)]
    kind, conv = vision_conversation(rng, n_images, allow_system=True)
    case = {"name": f"llava_next_{idx:03d}", "family": "llava_next", "fixture": fixture, "seed": seed,
            "conv_kind": kind, "messages": conv, "images": specs, "invalid": invalid}
    d = tempfile.mkdtemp()
    try:
        cfg = LlavaNextConfig(vision_config=CLIPVisionConfig(**vision), text_config=AutoConfig.for_model(**tcfg), **kw)
        cfg._attn_implementation = "eager"
        model = LlavaNextForConditionalGeneration(cfg)
        model.save_pretrained(d)
        case["tensors"] = write_weights(d, seed)
        ip = LlavaNextImageProcessorPil(size={"shortest_edge": se}, crop_size={"height": S, "width": S},
                                        image_grid_pinpoints=pins, resample=resample, do_pad=do_pad)
        proc = LlavaNextProcessor(image_processor=ip, tokenizer=tok, patch_size=14,
                                  vision_feature_select_strategy=strategy, chat_template=template,
                                  num_additional_image_tokens=1)
        proc.save_pretrained(d)
        case["config"] = json.load(open(os.path.join(d, "config.json")))
        case["processor_config"] = json.load(open(os.path.join(d, "processor_config.json")))
        copy_fixture(os.path.join(FIX, fixture), d)
        model = LlavaNextForConditionalGeneration.from_pretrained(d, dtype=torch.float32,
                                                                  attn_implementation="eager").eval()
        enc, path = vision_inputs(proc, conv, pil_images(specs), False)
        gen, margins, first = run_generate(model, enc, False)
        ids = enc["input_ids"][0].tolist()
        case.update({"status": "ok", "method": "generate", "path": path, "input_ids": ids,
                     "n_image_tokens": ids.count(image_token_id), "greedy_ids": gen, "margins": margins,
                     "first_logits": b64_floats(first)})
    except Exception as e:
        case.update({"status": "rejected", "error": f"{type(e).__name__}: {str(e)[:300]}"})
        traceback.print_exc(limit=2)
        if "config" not in case and os.path.exists(os.path.join(d, "config.json")):
            case["config"] = json.load(open(os.path.join(d, "config.json")))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return case


def idefics_case(kind, idx, rng, invalid=None):
    import torch
    from transformers import AutoConfig, PreTrainedTokenizerFast
    fixture = f"vision/{kind}"
    tok = PreTrainedTokenizerFast.from_pretrained(os.path.join(FIX, fixture))
    template = open(os.path.join(FIX, fixture, "chat_template.jinja")).read()
    image_token_id = tok.convert_tokens_to_ids("<image>")
    seed = rng.getrandbits(40)
    S, scale = rng.choice([(28, 1), (28, 2), (56, 2), (56, 4), (42, 3), (56, 1)])
    vh = rng.choice([24, 32, 48])
    vheads = rng.choice([h for h in (2, 3, 4, 6) if vh % h == 0])
    vision = dict(hidden_size=vh, intermediate_size=rng.choice([48, 64]), num_hidden_layers=rng.choice([1, 2, 3]),
                  num_attention_heads=vheads, image_size=S, patch_size=14, hidden_act="gelu_pytorch_tanh",
                  layer_norm_eps=1e-6)
    tcfg = text_config(rng, "llama", len(tok), small=True)
    tcfg["bos_token_id"] = tok.bos_token_id
    tcfg["eos_token_id"] = tok.convert_tokens_to_ids("<end_of_utterance>")
    text_tie = rng.random() < 0.5
    tcfg["tie_word_embeddings"] = text_tie
    top_tie = rng.random() < 0.4
    g = S // 14
    seq = (g // scale) ** 2
    longest = rng.choice([S, 2 * S, 3 * S, 4 * S, 5 * S + 10])
    split = rng.random() < 0.75
    do_resize = rng.random() < 0.85
    resample = rng.choice([0, 1, 1, 2, 3, 4, 5])
    do_pad = rng.random() < 0.8
    n_images = rng.choice([1, 1, 2, 3])
    sizes = IDEFICS_SIZES if do_resize else [s for s in IDEFICS_SIZES if max(s) <= 160]
    specs = [list(rng.choice(sizes)) + [rng.getrandbits(32)] for _ in range(n_images)]
    ckind, conv = vision_conversation(rng, n_images, allow_system=False)
    case = {"name": f"{kind}_{idx:03d}", "family": kind, "fixture": fixture, "seed": seed, "conv_kind": ckind,
            "messages": conv, "images": specs, "invalid": invalid}
    d = tempfile.mkdtemp()
    try:
        ip_kw = dict(size={"longest_edge": longest}, max_image_size={"longest_edge": S}, do_image_splitting=split,
                     do_resize=do_resize, resample=resample, do_pad=do_pad)
        if kind == "idefics3":
            from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
            from transformers.models.idefics3.configuration_idefics3 import Idefics3VisionConfig
            from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
            cfg = Idefics3Config(vision_config=Idefics3VisionConfig(**vision), text_config=AutoConfig.for_model(**tcfg),
                                 scale_factor=scale, image_token_id=image_token_id, tie_word_embeddings=top_tie)
            cls = Idefics3ForConditionalGeneration
            proc = Idefics3Processor(image_processor=Idefics3ImageProcessorPil(**ip_kw), tokenizer=tok,
                                     image_seq_len=seq, chat_template=template)
        else:
            import transformers.models.smolvlm.processing_smolvlm as psm
            psm.num2words = getattr(psm, "num2words", None) or (lambda n: str(n))
            from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMProcessor
            from transformers.models.smolvlm.configuration_smolvlm import SmolVLMVisionConfig
            from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil
            from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor
            cfg = SmolVLMConfig(vision_config=SmolVLMVisionConfig(**vision), text_config=AutoConfig.for_model(**tcfg),
                                scale_factor=scale, image_token_id=image_token_id, tie_word_embeddings=top_tie)
            cls = SmolVLMForConditionalGeneration
            proc = SmolVLMProcessor(image_processor=SmolVLMImageProcessorPil(**ip_kw), tokenizer=tok,
                                    video_processor=SmolVLMVideoProcessor(), image_seq_len=seq,
                                    chat_template=template)
        cfg._attn_implementation = "eager"
        model = cls(cfg)
        model.save_pretrained(d)
        case["tensors"] = write_weights(d, seed)
        proc.save_pretrained(d)
        case["config"] = json.load(open(os.path.join(d, "config.json")))
        case["processor_config"] = json.load(open(os.path.join(d, "processor_config.json")))
        copy_fixture(os.path.join(FIX, fixture), d)
        model = cls.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
        case["lm_head_tied"] = model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
        enc, path = vision_inputs(proc, conv, pil_images(specs), True)
        gen, margins, first = run_generate(model, enc, False)
        ids = enc["input_ids"][0].tolist()
        case.update({"status": "ok", "method": "generate", "path": path, "input_ids": ids,
                     "n_image_tokens": ids.count(image_token_id), "greedy_ids": gen, "margins": margins,
                     "first_logits": b64_floats(first)})
    except Exception as e:
        case.update({"status": "rejected", "error": f"{type(e).__name__}: {str(e)[:300]}"})
        traceback.print_exc(limit=2)
        if "config" not in case and os.path.exists(os.path.join(d, "config.json")):
            case["config"] = json.load(open(os.path.join(d, "config.json")))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return case


FAMILIES = ["llama", "mistral", "phi3", "llava_next", "idefics3", "smolvlm"]


def main():
    """Without a third argument: one process per family, in parallel (logs in OUTDIR/sweep/<family>.log)."""
    os.makedirs(OUT, exist_ok=True)
    if len(sys.argv) <= 3:
        import subprocess
        procs = []
        for fam in FAMILIES:
            log = open(os.path.join(OUT, f"{fam}.log"), "w")
            procs.append((fam, subprocess.Popen([sys.executable, "-u", __file__, os.path.dirname(OUT), str(N), fam],
                                                stdout=log, stderr=subprocess.STDOUT)))
        for fam, p in procs:
            print(fam, "exit", p.wait(), flush=True)
        return
    import torch
    torch.set_num_threads(2)
    torch.manual_seed(0)
    deadline = time.time() + float(os.environ.get("SWEEP_SECONDS", "400"))
    families = sys.argv[3].split(",")
    invalid = {"llama": ["kv", "rope_type"], "mistral": ["kv"], "phi3": ["longrope_len", "rope_type"],
               "llava_next": ["full"], "idefics3": [], "smolvlm": []}
    for fam in families:
        rng = random.Random(f"vlmchat-sweep-{fam}")
        cases = []
        t0 = time.time()
        jobs = [None] * N + invalid[fam]
        for i, inv in enumerate(jobs):
            if time.time() > deadline:
                print("deadline reached; stopping", fam, "at", i, flush=True)
                break
            if fam in TEXT_FIXTURE:
                c = text_case(fam, i, rng, inv)
            elif fam == "llava_next":
                c = llava_case(i, rng, inv)
            else:
                c = idefics_case(fam, i, rng, inv)
            cases.append(c)
            print(f"{c['name']:16s} {c['status']:8s} {c.get('conv_kind', ''):12s} ids {len(c.get('input_ids', []))}"
                  f" gen {c.get('greedy_ids', [])[:4]} margin {min(c.get('margins', [0]) or [0]):.4f}"
                  f" {c.get('error', '')[:120]}", flush=True)
        check = {"values": [float(v) for v in tensor_values([6], 12345, 2.5, 1.0)],
                 "pixels": [int(v) for v in image_pixels(3, 2, 99).reshape(-1)]}
        json.dump({"family": fam, "transformers": __import__("transformers").__version__,
                   "new_tokens": NEW_TOKENS, "prng_check": check, "cases": cases},
                  open(os.path.join(OUT, f"{fam}.json"), "w"), ensure_ascii=False, separators=(",", ":"))
        print(fam, len(cases), "cases in %.1f s" % (time.time() - t0), flush=True)


if __name__ == "__main__":
    main()
