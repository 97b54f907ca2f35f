#!/usr/bin/env python3
"""Trains vlmchat's demo model: a small vision-language model in the SmolVLM (Idefics3) architecture, so it runs
through the same code path as real SmolVLM checkpoints.

    python3 tools/train_demo.py OUTDIR [--steps N]

Data is procedural: 64x64 scenes with coloured shapes (colour, shape, count, left/right position) and large
seven-segment digits, each with a question and a short answer, plus short captions. Writes
  OUTDIR/demo/        the model (bf16 safetensors), tokenizer, chat template and processor config
  OUTDIR/eval/        held-out scenes (PNG) and eval.jsonl {image, question, answers}
  OUTDIR/examples/    a few scenes for examples/
  OUTDIR/demo/reference.json   transformers' greedy ids for a few held-out questions (fidelity test)
and prints the held-out accuracy measured with transformers, before and after rounding to bf16.
"""
import argparse
import json
import math
import os
import random
import time

import numpy as np
import torch
from PIL import Image, ImageDraw
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor, LlamaConfig,
                          PreTrainedTokenizerFast)
from transformers.models.idefics3.configuration_idefics3 import Idefics3VisionConfig
from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

SIZE = 64
COLORS = {"red": (220, 30, 30), "green": (30, 160, 40), "blue": (30, 60, 220), "yellow": (235, 200, 20),
          "purple": (140, 40, 180), "orange": (250, 130, 0)}
SHAPES = ["circle", "square", "triangle", "star"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four"]
TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == "
    "'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}"
    "{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
IMAGE_SEQ_LEN = 16
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<fake_token_around_image>", "<image>", "<end_of_utterance>",
            "<global-img>"]
SEGMENTS = {0: "abcdef", 1: "bc", 2: "abged", 3: "abgcd", 4: "fgbc", 5: "afgcd", 6: "afgedc", 7: "abc",
            8: "abcdefg", 9: "abcdfg"}


def draw_shape(d, shape, cx, cy, r, color):
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=color)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=color)
    else:
        pts = []
        for k in range(10):
            rr = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        d.polygon(pts, fill=color)


def background(rng):
    base = rng.integers(200, 256, 3)
    img = np.clip(base[None, None, :] + rng.normal(0, 4, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(img, "RGB")


def place(rng, n, r):
    """n non-overlapping centres for shapes of radius r."""
    for _ in range(200):
        pts = [(int(rng.integers(r + 2, SIZE - r - 2)), int(rng.integers(r + 2, SIZE - r - 2))) for _ in range(n)]
        if all((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 > (2 * r + 3) ** 2 for i, a in enumerate(pts) for b in pts[i + 1:]):
            return pts
    return None


def draw_digit(d, digit, color, x0, y0, w, h, t):
    s = SEGMENTS[digit]
    segs = {"a": [x0, y0, x0 + w, y0 + t], "d": [x0, y0 + h - t, x0 + w, y0 + h],
            "g": [x0, y0 + h // 2 - t // 2, x0 + w, y0 + h // 2 + t // 2],
            "f": [x0, y0, x0 + t, y0 + h // 2], "b": [x0 + w - t, y0, x0 + w, y0 + h // 2],
            "e": [x0, y0 + h // 2, x0 + t, y0 + h], "c": [x0 + w - t, y0 + h // 2, x0 + w, y0 + h]}
    for k in s:
        d.rectangle(segs[k], fill=color)


def scene(rng):
    """One image with a list of (question, answer) pairs about it."""
    img = background(rng)
    d = ImageDraw.Draw(img)
    kind = rng.choice(["single", "count", "pair", "digit"], p=[0.35, 0.25, 0.25, 0.15])
    colors, qa = list(COLORS), []
    if kind == "single":
        shape, color = rng.choice(SHAPES), rng.choice(colors)
        r = int(rng.integers(10, 16))
        (cx, cy), = place(rng, 1, r)
        draw_shape(d, shape, cx, cy, r, COLORS[color])
        side = "left" if cx < SIZE / 2 else "right"
        qa += [("What color is the shape?", color), ("What shape is this?", shape),
               ("What is in the image?", f"a {color} {shape}"), ("Describe the image.", f"a {color} {shape}"),
               (f"Is the {shape} on the left or the right?", side)]
    elif kind == "count":
        n = int(rng.integers(1, 5))
        shape, color = rng.choice(SHAPES), rng.choice(colors)
        pts = place(rng, n, 7)
        for cx, cy in pts:
            draw_shape(d, shape, cx, cy, 7, COLORS[color])
        plural = shape if n == 1 else shape + "s"
        qa += [("How many shapes are there?", NUMBER_WORDS[n]), (f"How many {shape}s are there?", NUMBER_WORDS[n]),
               ("What color are the shapes?", color),
               ("Describe the image.", f"{NUMBER_WORDS[n]} {color} {plural}")]
    elif kind == "pair":
        s1, s2 = rng.choice(SHAPES, 2, replace=False)
        c1, c2 = rng.choice(colors, 2, replace=False)
        r = int(rng.integers(8, 12))
        y1, y2 = int(rng.integers(r + 2, SIZE - r - 2)), int(rng.integers(r + 2, SIZE - r - 2))
        x1, x2 = int(rng.integers(r + 2, SIZE // 2 - r)), int(rng.integers(SIZE // 2 + r, SIZE - r - 2))
        draw_shape(d, s1, x1, y1, r, COLORS[c1])
        draw_shape(d, s2, x2, y2, r, COLORS[c2])
        qa += [("What color is the shape on the left?", c1), ("What color is the shape on the right?", c2),
               ("What shape is on the left?", s1), ("What shape is on the right?", s2),
               (f"Where is the {c1} {s1}?", "left"), (f"Where is the {c2} {s2}?", "right"),
               ("How many shapes are there?", "two"),
               ("Describe the image.", f"a {c1} {s1} and a {c2} {s2}")]
    else:
        digit = int(rng.integers(0, 10))
        color = rng.choice(colors)
        w, h = int(rng.integers(22, 30)), int(rng.integers(36, 46))
        x0, y0 = int(rng.integers(4, SIZE - w - 4)), int(rng.integers(4, SIZE - h - 4))
        draw_digit(d, digit, COLORS[color], x0, y0, w, h, int(rng.integers(4, 7)))
        qa += [("What number is shown?", str(digit)), ("What digit is this?", str(digit)),
               ("What color is the number?", color)]
    return img, qa


def build_tokenizer(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=700, show_progress=False, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                                   unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    return fast


def image_prompt():
    return "<fake_token_around_image><global-img>" + "<image>" * IMAGE_SEQ_LEN + "<fake_token_around_image>"


def prompt_text(question):
    return f"<|im_start|>User:<image>{question}<end_of_utterance>\nAssistant:"


def encode_example(tok, question, answer):
    """Input ids (image expanded) and the positions of the answer tokens."""
    prompt = prompt_text(question).replace("<image>", image_prompt())
    p_ids = tok(prompt, add_special_tokens=True)["input_ids"]
    a_ids = tok(" " + answer + "<end_of_utterance>", add_special_tokens=False)["input_ids"]
    return p_ids + a_ids, len(p_ids)


def make_dataset(n, seed):
    rng = np.random.default_rng(seed)
    images, items = [], []
    for i in range(n):
        img, qa = scene(rng)
        images.append(np.asarray(img))
        for q, a in qa:
            items.append((i, q, a))
    return np.stack(images), items


def to_pixels(images_u8):
    x = torch.from_numpy(images_u8).permute(0, 3, 1, 2).float()
    return (x * (1 / 255) - 0.5) / 0.5          # rescale + normalize(mean 0.5, std 0.5), as the processor


def build_model(tok):
    vision = Idefics3VisionConfig(hidden_size=128, intermediate_size=512, num_hidden_layers=4, num_attention_heads=4,
                                  image_size=SIZE, patch_size=8, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, rms_norm_eps=1e-5,
                       tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.convert_tokens_to_ids("<end_of_utterance>"))
    cfg = Idefics3Config(vision_config=vision, text_config=text, scale_factor=2,
                         image_token_id=tok.convert_tokens_to_ids("<image>"), tie_word_embeddings=True)
    cfg._attn_implementation = "sdpa"
    return Idefics3ForConditionalGeneration(cfg)


def batches(images, items, tok, bs, rng, device):
    """Random batches; token ids cached per (question, answer), images kept on the device."""
    cache = {}
    for _, q, a in items:
        if (q, a) not in cache:
            cache[(q, a)] = encode_example(tok, q, a)
    gpu_images = torch.from_numpy(images).to(device)
    while True:
        idx = rng.integers(0, len(items), bs)
        seqs, starts, imgs = [], [], []
        for k in idx:
            i, q, a = items[k]
            ids, start = cache[(q, a)]
            seqs.append(ids)
            starts.append(start)
            imgs.append(int(i))
        L = max(len(s) for s in seqs)
        pad = tok.pad_token_id
        input_ids = torch.full((bs, L), pad, dtype=torch.long)
        labels = torch.full((bs, L), -100, dtype=torch.long)
        attn = torch.zeros((bs, L), dtype=torch.long)
        for b, (s, st) in enumerate(zip(seqs, starts)):
            input_ids[b, :len(s)] = torch.tensor(s)
            labels[b, st:len(s)] = torch.tensor(s[st:])
            attn[b, :len(s)] = 1
        pix = (gpu_images[torch.tensor(imgs, device=device)].permute(0, 3, 1, 2).float() * (1 / 255) - 0.5) / 0.5
        yield input_ids, labels, attn, pix[:, None]


def answer(model, tok, proc, image, question, device):
    conv = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    text = proc.apply_chat_template(conv, add_generation_prompt=True)
    inputs = proc(images=[[image]], text=text, return_tensors="pt").to(device)
    eos = tok.convert_tokens_to_ids("<end_of_utterance>")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False, eos_token_id=eos, pad_token_id=eos)
    gen = out[0, inputs["input_ids"].shape[1]:].tolist()
    return tok.decode(gen, skip_special_tokens=True).strip(), inputs["input_ids"][0].tolist(), gen


def evaluate(model, tok, proc, eval_set, device, limit=None):
    model.eval()
    hits = 0
    items = eval_set[:limit] if limit else eval_set
    for img, q, a in items:
        got, _, _ = answer(model, tok, proc, img, q, device)
        hits += got.lower() == a.lower()
    model.train()
    return hits / len(items)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--train-images", type=int, default=60000)
    args = ap.parse_args()
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    t0 = time.time()
    images, items = make_dataset(args.train_images, 1)
    texts = [prompt_text(q) + " " + a + "<end_of_utterance>" for _, q, a in items[:200000]]
    tok = build_tokenizer(texts)
    print(f"data {len(images)} images {len(items)} questions, vocab {len(tok)}, {time.time() - t0:.1f}s", flush=True)
    ip = Idefics3ImageProcessorPil(size={"longest_edge": SIZE}, max_image_size={"longest_edge": SIZE},
                                   do_image_splitting=False)
    proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=IMAGE_SEQ_LEN, chat_template=TEMPLATE)
    # the training layout must be exactly what the processor builds
    probe_img = Image.fromarray(images[0])
    _, ids_proc, _ = None, None, None
    conv = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": items[0][1]}]}]
    ids_proc = proc(images=[[probe_img]], text=proc.apply_chat_template(conv, add_generation_prompt=True))["input_ids"][0]
    ids_mine, start = encode_example(tok, items[0][1], items[0][2])
    assert list(ids_proc) == ids_mine[:start], (list(ids_proc)[:40], ids_mine[:40])
    pv = proc(images=[[probe_img]], text="<image>", return_tensors="pt")["pixel_values"][0, 0]
    assert torch.allclose(pv, to_pixels(images[:1])[0], atol=1e-6), "pixel pipeline differs from the processor"

    model = build_model(tok).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model {n_params / 1e6:.2f}M parameters", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1.5e-3, weight_decay=0.01, betas=(0.9, 0.98))
    warm = 200
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
    rng = np.random.default_rng(2)
    eval_images, eval_items = make_dataset(400, 99)
    eval_set = [(Image.fromarray(eval_images[i]), q, a) for i, q, a in eval_items]
    random.Random(5).shuffle(eval_set)
    model.train()
    gen = batches(images, items, tok, 192, rng, device)
    for step in range(args.steps):
        input_ids, labels, attn, pix = next(gen)
        out = model(input_ids=input_ids.to(device), attention_mask=attn.to(device), labels=labels.to(device),
                    pixel_values=pix.to(device))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if step % 500 == 0 or step == args.steps - 1:
            print(f"step {step} loss {out.loss.item():.4f} lr {sched.get_last_lr()[0]:.2e} {time.time() - t0:.0f}s",
                  flush=True)
    model = model.float().eval()
    acc32 = evaluate(model, tok, proc, eval_set, device, limit=300)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    acc16 = evaluate(model, tok, proc, eval_set, device, limit=300)
    print(f"held-out accuracy fp32 {acc32:.3f} bf16 {acc16:.3f}", flush=True)

    out_dir = os.path.join(args.out, "demo")
    model.generation_config.eos_token_id = [tok.convert_tokens_to_ids("<end_of_utterance>")]
    model.generation_config.do_sample = False
    model.cpu().to(torch.bfloat16).save_pretrained(out_dir)
    proc.save_pretrained(out_dir)
    model = model.float()
    # held-out set for tests: one question per image, images as PNG
    eval_dir = os.path.join(args.out, "eval")
    os.makedirs(os.path.join(eval_dir, "images"), exist_ok=True)
    lines, seen, refs = [], set(), []
    for img, q, a in eval_set:
        key = id(img)
        if key in seen or len(lines) >= 150:
            continue
        seen.add(key)
        name = f"images/scene{len(lines):03d}.png"
        img.save(os.path.join(eval_dir, name))
        lines.append({"image": name, "question": q, "answers": [a]})
        if len(refs) < 6:
            got, ids, gen_ids = answer(model, tok, proc, img, q, "cpu")
            refs.append({"image": name, "question": q, "answer": got, "input_ids": ids, "generated_ids": gen_ids})
    with open(os.path.join(eval_dir, "eval.jsonl"), "w") as f:
        for l in lines:
            f.write(json.dumps(l) + "\n")
    json.dump({"cases": refs}, open(os.path.join(out_dir, "reference.json"), "w"))
    ex_dir = os.path.join(args.out, "examples")
    os.makedirs(ex_dir, exist_ok=True)
    ex_rng = np.random.default_rng(7)
    for k in range(4):
        img, qa = scene(ex_rng)
        img.resize((256, 256), Image.NEAREST).save(os.path.join(ex_dir, f"scene{k + 1}.png"))
    print("done", time.time() - t0, flush=True)


if __name__ == "__main__":
    main()
