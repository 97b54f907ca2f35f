#!/usr/bin/env python3
"""Trains vlmchat's demo model: a small vision-language model in the SmolVLM (Idefics3) architecture, so it runs
through the same code path as real SmolVLM checkpoints, trained to hold a multi-turn, multi-image conversation.

    python3 tools/train_demo.py OUTDIR [--total-seconds S]     # on a GPU; trains for a fixed wall-clock budget
    python3 tools/train_demo.py --show-data N                  # prints N generated conversations (numpy + PIL only)

Data is procedural: 64x64 scenes (one to four coloured shapes, big or small, left/right/top/bottom; a number of one
to three seven-segment digits; a short word in a 5x7 pixel font) and conversations of 1-5 turns over 1-3 images:
first questions, follow-ups with pronouns ("What color is it?", "What about the other one?"), references to earlier
images by order ("in the first image"), comparisons across images, yes/no questions, counting, reading, and
answers that say a thing is not there. Everything is seeded, so a run reproduces the same data and, on the same
hardware and library versions, the same model.

The run is time-boxed: it trains until --total-seconds minus what evaluation and writing need, then
  OUTDIR/demo/            the model (bf16 safetensors), tokenizer, chat template and processor config
  OUTDIR/eval/            held-out conversations (eval.jsonl, PNG images) and reference.json: transformers' greedy
                          ids, turn by turn, for a few held-out conversations (the fidelity test)
  OUTDIR/model.tar, OUTDIR/eval.tar   the same, packed (the model split into parts of at most 15 MiB)
and prints the held-out accuracy measured with transformers (the model's own answers fed back, turn by turn) per
category (first question, follow-up, cross-image) and per skill, before and after rounding the weights to bf16.
"""
import argparse
import json
import math
import os
import random
import sys
import time

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64
COLORS = {"red": (220, 30, 30), "green": (30, 160, 40), "blue": (30, 60, 220), "yellow": (235, 200, 20),
          "purple": (140, 40, 180), "orange": (250, 130, 0)}
COLOR_NAMES = list(COLORS)
SHAPES = ["circle", "square", "triangle", "star"]
NUM = ["none", "one", "two", "three", "four", "five"]
ORD = ["first", "second", "third"]
WORDS = ["cat", "dog", "sun", "box", "car", "hat", "cup", "map", "fish", "bird", "tree", "moon", "ship", "book",
         "lamp", "kite"]
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
GLYPHS = {
    "a": ".###.|#...#|#...#|#####|#...#|#...#|#...#", "b": "####.|#...#|#...#|####.|#...#|#...#|####.",
    "c": ".###.|#...#|#....|#....|#....|#...#|.###.", "d": "####.|#...#|#...#|#...#|#...#|#...#|####.",
    "e": "#####|#....|#....|####.|#....|#....|#####", "f": "#####|#....|#....|####.|#....|#....|#....",
    "g": ".###.|#...#|#....|#.###|#...#|#...#|.###.", "h": "#...#|#...#|#...#|#####|#...#|#...#|#...#",
    "i": ".###.|..#..|..#..|..#..|..#..|..#..|.###.", "k": "#...#|#..#.|#.#..|##...|#.#..|#..#.|#...#",
    "l": "#....|#....|#....|#....|#....|#....|#####", "m": "#...#|##.##|#.#.#|#.#.#|#...#|#...#|#...#",
    "n": "#...#|##..#|#.#.#|#..##|#...#|#...#|#...#", "o": ".###.|#...#|#...#|#...#|#...#|#...#|.###.",
    "p": "####.|#...#|#...#|####.|#....|#....|#....", "r": "####.|#...#|#...#|####.|#.#..|#..#.|#...#",
    "s": ".####|#....|#....|.###.|....#|....#|####.", "t": "#####|..#..|..#..|..#..|..#..|..#..|..#..",
    "u": "#...#|#...#|#...#|#...#|#...#|#...#|.###.", "x": "#...#|#...#|.#.#.|..#..|.#.#.|#...#|#...#"}


def pick(rng, seq):
    return seq[int(rng.integers(len(seq)))]


def art(word):
    return ("an " if word[0] in "aeiou" else "a ") + word


# ---------------------------------------------------------------------------------------------------- scenes

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


def draw_digit(d, digit, color, x0, y0, w, h, t):
    segs = {"a": [x0, y0, x0 + w, y0 + t], "d": [x0, y0 + h - t, x0 + w, y0 + h],
            "g": [x0, y0 + h // 2 - t // 2, x0 + w, y0 + h // 2 + t // 2],
            "f": [x0, y0, x0 + t, y0 + h // 2], "b": [x0 + w - t, y0, x0 + w, y0 + h // 2],
            "e": [x0, y0 + h // 2, x0 + t, y0 + h], "c": [x0 + w - t, y0 + h // 2, x0 + w, y0 + h]}
    for k in SEGMENTS[digit]:
        d.rectangle(segs[k], fill=color)


def draw_word(d, word, color, x0, y0, s):
    for i, ch in enumerate(word):
        for row, bits in enumerate(GLYPHS[ch].split("|")):
            for col, b in enumerate(bits):
                if b == "#":
                    x, y = x0 + i * 6 * s + col * s, y0 + row * s
                    d.rectangle([x, y, x + s - 1, y + s - 1], fill=color)


def place(rng, n, r, min_dx=0):
    """n non-overlapping centres for shapes of radius r (x centres at least min_dx apart)."""
    for _ in range(500):
        pts = [(int(rng.integers(r + 2, SIZE - r - 2)), int(rng.integers(r + 2, SIZE - r - 2))) for _ in range(n)]
        if all((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 > (2 * r + 3) ** 2 and abs(a[0] - b[0]) >= min_dx
               for i, a in enumerate(pts) for b in pts[i + 1:]):
            return pts
    return None


def obj(shape, color, size, x, y, r):
    return {"shape": shape, "color": color, "size": size, "x": x, "y": y, "r": r}


def side_range(rng, r, first):
    """A centre coordinate well away from the middle: the first half or the second."""
    return int(rng.integers(r + 2, 27)) if first else int(rng.integers(38, SIZE - r - 2))


def make_scene(rng):
    """A scene as metadata (drawn by render_scene)."""
    kind = pick(rng, ["single"] * 26 + ["pair"] * 28 + ["group"] * 14 + ["mixed"] * 10 + ["digits"] * 14 +
                ["word"] * 8)
    if kind == "single":
        size = pick(rng, ["big", "small"])
        r = int(rng.integers(11, 16)) if size == "big" else int(rng.integers(5, 8))
        x, y = side_range(rng, r, rng.random() < 0.5), side_range(rng, r, rng.random() < 0.5)
        return {"kind": "shapes", "layout": "single",
                "objs": [obj(pick(rng, SHAPES), pick(rng, COLOR_NAMES), size, x, y, r)]}
    if kind == "pair":
        s = [str(v) for v in rng.choice(SHAPES, 2, replace=False)]
        c = [str(v) for v in rng.choice(COLOR_NAMES, 2, replace=False)]
        sizes = [pick(rng, ["big", "small"]) for _ in range(2)]
        rs = [int(rng.integers(10, 13)) if z == "big" else int(rng.integers(5, 8)) for z in sizes]
        horizontal = rng.random() < 0.6
        objs = []
        for k in range(2):
            r = rs[k]
            a = int(rng.integers(r + 2, 31 - r)) if k == 0 else int(rng.integers(34 + r, SIZE - r - 2))
            b = int(rng.integers(r + 2, SIZE - r - 2))
            x, y = (a, b) if horizontal else (b, a)
            objs.append(obj(s[k], c[k], sizes[k], x, y, r))
        return {"kind": "shapes", "layout": "pair_h" if horizontal else "pair_v", "objs": objs}
    if kind == "group":
        n = int(rng.integers(2, 5))
        shape, color, r = pick(rng, SHAPES), pick(rng, COLOR_NAMES), int(rng.integers(6, 8))
        pts = place(rng, n, r)
        while pts is None:
            pts = place(rng, n, r)
        return {"kind": "shapes", "layout": "group", "objs": [obj(shape, color, "small", x, y, r) for x, y in pts]}
    if kind == "mixed":
        s = [str(v) for v in rng.choice(SHAPES, 3, replace=False)]
        c = [str(v) for v in rng.choice(COLOR_NAMES, 3, replace=False)]
        r = int(rng.integers(6, 8))
        pts = place(rng, 3, r, min_dx=6)
        while pts is None:
            pts = place(rng, 3, r, min_dx=6)
        objs = sorted((obj(s[k], c[k], "small", x, y, r) for k, (x, y) in enumerate(pts)), key=lambda o: o["x"])
        return {"kind": "shapes", "layout": "mixed", "objs": objs}
    color = pick(rng, COLOR_NAMES)
    if kind == "digits":
        n = pick(rng, [1, 1, 1, 2, 2, 2, 3, 3])
        digits = [int(rng.integers(0 if n == 1 else 1, 10))] + [int(rng.integers(0, 10)) for _ in range(n - 1)]
        if n == 1:
            w, h, t, gap = int(rng.integers(18, 27)), int(rng.integers(30, 43)), int(rng.integers(4, 7)), 0
        elif n == 2:
            w, h, t, gap = int(rng.integers(14, 19)), int(rng.integers(24, 35)), int(rng.integers(3, 6)), int(rng.integers(4, 7))
        else:
            w, h, t, gap = int(rng.integers(11, 15)), int(rng.integers(20, 29)), int(rng.integers(3, 5)), int(rng.integers(3, 6))
        total = n * w + (n - 1) * gap
        x0, y0 = int(rng.integers(2, SIZE - total - 1)), int(rng.integers(2, SIZE - h - 1))
        return {"kind": "digits", "text": "".join(map(str, digits)), "color": color,
                "geom": [x0, y0, w, h, t, gap]}
    word = pick(rng, WORDS)
    width = 12 * len(word) - 2
    x0, y0 = int(rng.integers(3, SIZE - width - 2)), int(rng.integers(3, SIZE - 14 - 2))
    return {"kind": "word", "text": word, "color": color, "geom": [x0, y0]}


def render_scene(sc, seed):
    rng = np.random.default_rng(seed)
    base = rng.integers(200, 256, 3)
    img = Image.fromarray(np.clip(base[None, None, :] + rng.normal(0, 4, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8),
                          "RGB")
    d = ImageDraw.Draw(img)
    if sc["kind"] == "shapes":
        for o in sc["objs"]:
            draw_shape(d, o["shape"], o["x"], o["y"], o["r"], COLORS[o["color"]])
    elif sc["kind"] == "digits":
        x0, y0, w, h, t, gap = sc["geom"]
        for i, ch in enumerate(sc["text"]):
            draw_digit(d, int(ch), COLORS[sc["color"]], x0 + i * (w + gap), y0, w, h, t)
    else:
        x0, y0 = sc["geom"]
        draw_word(d, sc["text"], COLORS[sc["color"]], x0, y0, 2)
    return img


# ---------------------------------------------------------------------------------------------------- answers

def objs_of(sc):
    return sc["objs"] if sc["kind"] == "shapes" else []


def describe(sc):
    if sc["kind"] == "digits":
        return f"the number {sc['text']} in {sc['color']}"
    if sc["kind"] == "word":
        return f"the word {sc['text']} in {sc['color']}"
    o = sc["objs"]
    if sc["layout"] == "group":
        return f"{NUM[len(o)]} {o[0]['color']} {o[0]['shape']}s"
    parts = [art(f"{x['color']} {x['shape']}") for x in o]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def position(sc, i):
    """Where object i is: left/right or top/bottom in a pair, a corner for a single shape; None otherwise."""
    o = sc["objs"][i]
    if sc["layout"] == "pair_h":
        return "left" if i == 0 else "right"
    if sc["layout"] == "pair_v":
        return "top" if i == 0 else "bottom"
    if sc["layout"] == "single":
        return ("top " if o["y"] < 32 else "bottom ") + ("left" if o["x"] < 32 else "right")
    return None


def attr(sc, i, a):
    o = sc["objs"][i]
    return position(sc, i) if a == "where" else o[a]


def find(sc, shape=None, color=None):
    return [i for i, o in enumerate(objs_of(sc)) if (shape is None or o["shape"] == shape) and
            (color is None or o["color"] == color)]


def count_word(n):
    return NUM[n]


def where_text(ref):
    return f" in the {ref} image" if ref else ""


def ask(qt, p, sc, ref):
    """(question, answer, focus) for question type qt with parameters p on scene sc; ref names the image by order
    ('' for the image under discussion). None where the question does not apply. focus: what a pronoun refers to
    next: ('obj', i), ('group',), ('text',), ('count', key) or None."""
    w = where_text(ref)
    the_image = f"the {ref} image" if ref else "the image"
    objs = objs_of(sc)
    if qt == "count":
        return f"How many shapes are there{w}?", count_word(len(objs)), ("group",) if sc.get("layout") == "group" else None
    if qt == "count_color":
        return f"How many {p['color']} shapes are there{w}?", count_word(len(find(sc, color=p["color"]))), ("count", "color")
    if qt == "count_shape":
        return f"How many {p['shape']}s are there{w}?", count_word(len(find(sc, shape=p["shape"]))), ("count", "shape")
    if qt == "color_of":
        hits = find(sc, shape=p["shape"])
        if not hits:
            return f"What color is the {p['shape']}{w}?", f"there is no {p['shape']}", None
        if len(hits) > 1:
            return None
        return f"What color is the {p['shape']}{w}?", objs[hits[0]]["color"], ("obj", hits[0])
    if qt == "shape_of":
        hits = find(sc, color=p["color"])
        if not hits:
            return f"What shape is the {p['color']} one{w}?", f"there is no {p['color']} shape", None
        if len(hits) > 1:
            return None
        return f"What shape is the {p['color']} one{w}?", objs[hits[0]]["shape"], ("obj", hits[0])
    if qt == "size_of":
        hits = find(sc, shape=p["shape"])
        if not hits:
            return f"Is the {p['shape']}{w} big or small?", f"there is no {p['shape']}", None
        if len(hits) > 1:
            return None
        return f"Is the {p['shape']}{w} big or small?", objs[hits[0]]["size"], ("obj", hits[0])
    if qt == "where":
        hits = find(sc, shape=p["shape"], color=p["color"])
        q = f"Where is the {p['color']} {p['shape']}{w}?"
        if not hits:
            return q, f"there is no {p['color']} {p['shape']}", None
        pos = position(sc, hits[0])
        return (q, pos, ("obj", hits[0])) if pos else None
    if qt == "side_of":
        hits = find(sc, shape=p["shape"])
        if sc.get("layout") not in ("pair_h", "pair_v", "single") or len(hits) != 1:
            return None
        axis = p["axis"]
        if sc["layout"] == "pair_h" and axis != "lr" or sc["layout"] == "pair_v" and axis != "tb":
            return None
        o = objs[hits[0]]
        if axis == "lr":
            return (f"Is the {p['shape']}{w} on the left or the right?", "left" if o["x"] < 32 else "right",
                    ("obj", hits[0]))
        return f"Is the {p['shape']}{w} at the top or the bottom?", "top" if o["y"] < 32 else "bottom", ("obj", hits[0])
    if qt == "exists":
        q = f"Is there {art(p['color'] + ' ' + p['shape'])}{w}?"
        return q, "yes" if find(sc, p["shape"], p["color"]) else "no", None
    if qt == "is_color":
        hits = find(sc, shape=p["shape"])
        q = f"Is the {p['shape']}{w} {p['color']}?"
        if not hits:
            return q, f"there is no {p['shape']}", None
        if len(hits) > 1:
            return None
        return q, "yes" if objs[hits[0]]["color"] == p["color"] else "no", ("obj", hits[0])
    if qt == "describe":
        q = f"Describe {the_image}." if p["v"] == 0 else f"What is in {the_image}?"
        focus = (("text",) if sc["kind"] != "shapes" else ("group",) if sc["layout"] == "group" else
                 ("obj", 0) if sc["layout"] == "single" else None)
        return q, describe(sc), focus
    if qt in ("side_color", "side_shape"):
        lay = sc.get("layout")
        if lay not in ("pair_h", "pair_v") or (p["side"] in ("left", "right")) != (lay == "pair_h"):
            return None
        i = 0 if p["side"] in ("left", "top") else 1
        loc = f"on the {p['side']}" if p["side"] in ("left", "right") else f"at the {p['side']}"
        if qt == "side_color":
            return f"What color is the shape {loc}{w}?", objs[i]["color"], ("obj", i)
        return f"What shape is {loc}{w}?", objs[i]["shape"], ("obj", i)
    if qt == "bigger":
        if sc.get("layout") not in ("pair_h", "pair_v") or objs[0]["size"] == objs[1]["size"]:
            return None
        i = 0 if objs[0]["size"] == "big" else 1
        return f"Which shape is bigger{w}?", f"the {objs[i]['color']} {objs[i]['shape']}", ("obj", i)
    if qt == "color_all":
        if sc.get("layout") != "group":
            return None
        return f"What color are the shapes{w}?", objs[0]["color"], ("group",)
    if qt == "single_color":
        if sc.get("layout") != "single":
            return None
        return f"What color is the shape{w}?", objs[0]["color"], ("obj", 0)
    if qt == "single_shape":
        if sc.get("layout") != "single":
            return None
        return (f"What shape is in the {ref} image?" if ref else "What shape is this?"), objs[0]["shape"], ("obj", 0)
    if qt == "read":
        q = f"What number is shown{w}?" if p["v"] == 0 else f"What number is written{w}?"
        return (q, sc["text"], ("text",)) if sc["kind"] == "digits" else (q, "there is no number", None)
    if qt == "read_word":
        q = f"What word is written{w}?" if p["v"] == 0 else f"What does the word{w} say?"
        return (q, sc["text"], ("text",)) if sc["kind"] == "word" else (q, "there is no word", None)
    if qt == "text_color":
        thing = "number" if p["v"] == 0 else "word"
        q = f"What color is the {thing}{w}?"
        if sc["kind"] == ("digits" if thing == "number" else "word"):
            return q, sc["color"], ("text",)
        return q, f"there is no {thing}", None
    if qt == "ndigits":
        if sc["kind"] != "digits":
            return None
        return f"How many digits are there{w}?", count_word(len(sc["text"])), ("text",)
    if qt == "is_number":
        if sc["kind"] != "digits":
            return None
        return f"Is the number{w} {p['value']}?", "yes" if p["value"] == sc["text"] else "no", ("text",)
    raise ValueError(qt)


def fresh_params(rng, sc):
    """A question type and parameters that suit scene sc (usually about what is there, sometimes not)."""
    objs = objs_of(sc)
    present = rng.random() < 0.8
    o = pick(rng, objs) if objs else None
    shape = o["shape"] if o and present else pick(rng, SHAPES)
    color = o["color"] if o and present else pick(rng, COLOR_NAMES)
    if sc["kind"] == "digits":
        opts = [("read", {"v": int(rng.integers(2))})] * 5 + [("text_color", {"v": 0})] * 2 + [("ndigits", {})] * 2
        val = sc["text"] if rng.random() < 0.5 else str(int(sc["text"]) + pick(rng, [-10, -1, 1, 2, 10, 100]))
        opts += [("is_number", {"value": val.lstrip("-") or "0"})] * 2 + [("describe", {"v": int(rng.integers(2))})]
        opts += [("color_of", {"shape": pick(rng, SHAPES)}), ("read_word", {"v": 0}), ("count", {})]
    elif sc["kind"] == "word":
        opts = [("read_word", {"v": int(rng.integers(2))})] * 5 + [("text_color", {"v": 1})] * 2
        opts += [("describe", {"v": int(rng.integers(2))}), ("color_of", {"shape": pick(rng, SHAPES)}),
                 ("read", {"v": 0}), ("exists", {"shape": pick(rng, SHAPES), "color": color})]
    else:
        side = pick(rng, ["left", "right"] if sc["layout"] == "pair_h" else ["top", "bottom"])
        axis = "lr" if sc["layout"] == "pair_h" else "tb" if sc["layout"] == "pair_v" else pick(rng, ["lr", "tb"])
        opts = [("count", {})] * 2 + [("count_color", {"color": color}), ("count_shape", {"shape": shape})]
        opts += [("color_of", {"shape": shape})] * 3 + [("shape_of", {"color": color})] * 3
        opts += [("size_of", {"shape": shape})] * 2 + [("where", {"shape": shape, "color": color})] * 2
        opts += [("side_of", {"shape": shape, "axis": axis})] * 2
        opts += [("exists", {"shape": shape, "color": color if rng.random() < 0.6 else pick(rng, COLOR_NAMES)})] * 2
        opts += [("is_color", {"shape": shape, "color": color if rng.random() < 0.5 else pick(rng, COLOR_NAMES)})]
        opts += [("describe", {"v": int(rng.integers(2))})] * 3 + [("side_color", {"side": side})] * 2
        opts += [("side_shape", {"side": side})] * 2 + [("bigger", {})] * 2 + [("color_all", {})] * 3
        opts += [("single_color", {})] * 2 + [("single_shape", {})] * 2 + [("read", {"v": 0}), ("read_word", {"v": 0})]
    return pick(rng, opts)


def fresh(rng, sc, ref):
    for _ in range(100):
        qt, p = fresh_params(rng, sc)
        r = ask(qt, p, sc, ref)
        if r:
            return r, (qt, p)
    raise RuntimeError("no question fits the scene")


def pronoun(rng, sc, focus, last_attr):
    """A follow-up about what the conversation points at: (question, answer, new focus, attribute) or None."""
    if focus is None:
        return None
    opts = []
    if focus[0] == "obj":
        i = focus[1]
        lay = sc["layout"]
        for a, qs in (("color", ["What color is it?", "And its colour?", "What colour is it?", "And its color?"]),
                      ("shape", ["What shape is it?", "And its shape?"]),
                      ("size", ["Is it big or small?", "And its size?"]),
                      ("where", ["Where is it?"])):
            if a != last_attr and attr(sc, i, a) is not None:
                opts.append((pick(rng, qs), attr(sc, i, a), ("obj", i), a))
        if lay in ("pair_h", "single") and last_attr != "where":
            opts.append(("Is it on the left or the right?", "left" if sc["objs"][i]["x"] < 32 else "right", ("obj", i),
                         "where"))
        if lay in ("pair_v", "single") and last_attr != "where":
            opts.append(("Is it at the top or the bottom?", "top" if sc["objs"][i]["y"] < 32 else "bottom", ("obj", i),
                         "where"))
        if last_attr in ("color", "shape", "size", "where") and lay in ("pair_h", "pair_v"):
            j = 1 - i
            if attr(sc, j, last_attr) is not None:
                q = pick(rng, ["What about the other one?", "And the other one?", "What about the other shape?"])
                opts += [(q, attr(sc, j, last_attr), ("obj", j), last_attr)] * 3
        if last_attr in ("color", "size", "where") and lay in ("pair_h", "pair_v", "mixed"):
            s = pick(rng, SHAPES)
            hits = find(sc, shape=s)
            q = pick(rng, [f"What about the {s}?", f"And the {s}?"])
            if not hits:
                opts.append((q, f"there is no {s}", None, last_attr))
            elif hits[0] != i and attr(sc, hits[0], last_attr) is not None:
                opts += [(q, attr(sc, hits[0], last_attr), ("obj", hits[0]), last_attr)] * 2
        if last_attr in ("shape", "size", "where") and lay in ("pair_h", "pair_v", "mixed"):
            c = pick(rng, COLOR_NAMES)
            hits = find(sc, color=c)
            q = pick(rng, [f"What about the {c} one?", f"And the {c} one?"])
            if not hits:
                opts.append((q, f"there is no {c} shape", None, last_attr))
            elif hits[0] != i and attr(sc, hits[0], last_attr) is not None:
                opts += [(q, attr(sc, hits[0], last_attr), ("obj", hits[0]), last_attr)] * 2
    elif focus[0] == "group":
        o = sc["objs"]
        if last_attr != "color":
            opts.append((pick(rng, ["What color are they?", "And their colour?"]), o[0]["color"], focus, "color"))
        if last_attr != "count":
            opts.append(("How many are there?", count_word(len(o)), focus, "count"))
        if last_attr != "shape":
            opts.append(("What shape are they?", o[0]["shape"] + "s", focus, "shape"))
    elif focus[0] == "text":
        if last_attr != "color":
            opts.append((pick(rng, ["What color is it?", "And its colour?"]), sc["color"], focus, "color"))
        if sc["kind"] == "digits" and last_attr != "count":
            opts.append(("How many digits does it have?", count_word(len(sc["text"])), focus, "count"))
        if sc["kind"] == "word" and last_attr != "count":
            opts.append(("How many letters does it have?", count_word(len(sc["text"])), focus, "count"))
        if sc["kind"] == "word" and last_attr != "read":
            v = sc["text"] if rng.random() < 0.5 else pick(rng, WORDS)
            opts.append((f"Does it say {v}?", "yes" if v == sc["text"] else "no", focus, "read"))
    elif focus[0] == "count":
        if focus[1] == "color":
            c = pick(rng, COLOR_NAMES)
            opts.append((pick(rng, [f"And {c} ones?", f"What about {c} ones?"]), count_word(len(find(sc, color=c))),
                         focus, "count"))
        else:
            s = pick(rng, SHAPES)
            opts.append((pick(rng, [f"And {s}s?", f"What about {s}s?"]), count_word(len(find(sc, shape=s))), focus,
                         "count"))
    return pick(rng, opts) if opts else None


def last_attr_of(qt):
    return {"color_of": "color", "single_color": "color", "side_color": "color", "is_color": "color",
            "text_color": "color", "color_all": "color", "shape_of": "shape", "single_shape": "shape",
            "side_shape": "shape", "size_of": "size", "bigger": "size", "where": "where", "side_of": "where",
            "count": "count", "count_color": "count", "count_shape": "count", "ndigits": "count",
            "read": "read", "read_word": "read", "is_number": "read"}.get(qt)


def ref_name(rng, i, n):
    return "last" if i == n - 1 and n >= 2 and rng.random() < 0.3 else ORD[i]


def compare(rng, scenes):
    """A question comparing the images shown so far: (question, answer) or None."""
    n = len(scenes)
    if n == 2:
        i, j = 0, 1
        pair = "both images"
    else:
        i, j = sorted(int(v) for v in rng.choice(n, 2, replace=False))
        pair = f"the {ORD[i]} and the {ORD[j]} image"
    kind = pick(rng, ["same", "more", "which", "which", "text"])
    a, b = scenes[i], scenes[j]
    if kind == "same" and a["kind"] == b["kind"] == "shapes":
        q = (f"Do both images have the same number of shapes?" if n == 2 else
             f"Do {pair} have the same number of shapes?")
        return q, "yes" if len(a["objs"]) == len(b["objs"]) else "no"
    if kind == "more" and a["kind"] == b["kind"] == "shapes" and len(a["objs"]) != len(b["objs"]):
        q = ("Which image has more shapes?" if n == 2 else
             f"Which has more shapes, the {ORD[i]} or the {ORD[j]} image?")
        return q, f"the {ORD[i] if len(a['objs']) > len(b['objs']) else ORD[j]} one"
    if kind == "which":
        cands = [(o["color"], o["shape"]) for sc in scenes for o in objs_of(sc)]
        if rng.random() < 0.25 or not cands:
            cands = [(pick(rng, COLOR_NAMES), pick(rng, SHAPES))]
        c, s = pick(rng, cands)
        has = [k for k, sc in enumerate(scenes) if find(sc, shape=s, color=c)]
        q = f"Which image has {art(c + ' ' + s)}?"
        if not has:
            return q, "neither" if n == 2 else "none of them"
        if len(has) == 1:
            return q, f"the {ORD[has[0]]} one"
        if n == 2:
            return q, "both"
        return None
    if kind == "text":
        thing = pick(rng, ["digits", "word"])
        has = [k for k, sc in enumerate(scenes) if sc["kind"] == thing]
        if len(has) == 1:
            return ("Which image has a number?" if thing == "digits" else "Which image has a word?"), f"the {ORD[has[0]]} one"
    return None


def conversation(rng, scene_pool, pool_rng_pick):
    """A conversation over images drawn from the pool: list of turns {images: [pool ids], question, answer,
    category, skill}."""
    n_img = pick(rng, [1, 1, 1, 2, 2, 2, 2, 3, 3, 3])
    n_turns = max(n_img, int(rng.integers(1, 6)))
    imgs = [pool_rng_pick() for _ in range(n_img)]
    together = n_img > 1 and rng.random() < 0.3
    if together or n_img == 1:
        attach = [0] * n_img
    else:
        attach = [0] + sorted(int(v) for v in rng.choice(np.arange(1, n_turns), n_img - 1, replace=False))
    shown, turns = [], []
    cur, focus, last_attr, last_q = 0, None, None, None
    for t in range(n_turns):
        new = [k for k in range(n_img) if attach[k] == t]
        shown += new
        scenes = [scene_pool[imgs[k]] for k in shown]
        cat = "first" if t == 0 else "follow-up"
        res = None
        if new and not (t == 0 and len(new) > 1):
            cur = new[-1]                   # a question right after attaching an image is about it
            (q, a, focus), last_q = fresh(rng, scenes[cur], "")
            last_attr, skill = last_attr_of(last_q[0]), last_q[0]
        else:
            mode = pick(rng, ["cross", "cross", "cross", "pronoun", "pronoun", "fresh"] if len(shown) > 1 else
                        ["pronoun", "pronoun", "fresh"])
            if t == 0:
                mode = "cross"
            if mode == "fresh" and cur != len(shown) - 1:
                mode = "cross"                  # "the image" is the latest one; earlier ones are named
            if mode == "pronoun":
                res = pronoun(rng, scenes[cur], focus, last_attr)
                if res:
                    q, a, focus, last_attr = res
                    skill, last_q = "pronoun", None     # "the other image" re-asks only a question just asked
                else:
                    mode = "cross" if len(shown) > 1 else "fresh"
            if mode == "cross":
                cat = "first" if t == 0 else "cross-image"
                r = rng.random()
                if r < 0.3 and (cmp := compare(rng, scenes)):
                    q, a = cmp
                    focus, last_attr, skill, last_q = None, None, "compare", None
                elif r < 0.5 and last_q and len(shown) == 2 and t > 0:
                    other = 1 - cur
                    res2 = ask(last_q[0], last_q[1], scenes[other], "")
                    if res2:
                        q = pick(rng, ["What about the other image?", "And in the other image?"])
                        _, a, focus = res2
                        cur, skill = other, last_q[0]
                    else:
                        mode = "cross-ref"
                else:
                    mode = "cross-ref"
                if mode == "cross-ref":
                    k = int(rng.integers(len(shown)))
                    if last_q and rng.random() < 0.3 and t > 0 and k != cur and (res2 := ask(last_q[0], last_q[1], scenes[k], "")):
                        q = f"And in the {ref_name(rng, k, len(shown))} image?"
                        _, a, focus = res2
                    else:
                        (q, a, focus), last_q = fresh(rng, scenes[k], ref_name(rng, k, len(shown)))
                    cur, last_attr, skill = k, last_attr_of(last_q[0]), last_q[0]
            elif mode == "fresh":
                (q, a, focus), last_q = fresh(rng, scenes[cur], "")
                last_attr, skill = last_attr_of(last_q[0]), last_q[0]
        turns.append({"images": [imgs[k] for k in new], "question": q, "answer": a, "category": cat, "skill": skill})
    return turns


def make_pool(n, seed):
    rng = np.random.default_rng(seed)
    return [make_scene(rng) for _ in range(n)]


def make_conversations(n, seed, pool):
    rng = np.random.default_rng(seed)
    return [conversation(rng, pool, lambda: int(rng.integers(len(pool)))) for _ in range(n)]


def render_images(args):
    scenes, seed0 = args
    return np.stack([np.asarray(render_scene(sc, seed0 + k)) for k, sc in enumerate(scenes)])


def pool_job(args):
    """Worker: a chunk of the training scenes (seeded by chunk), drawn."""
    n, seed = args
    scenes = make_pool(n, seed)
    return scenes, render_images((scenes, seed * 10000))


_POOL = None


def conv_job(args):
    """Worker: a chunk of training conversations over the pool (set before the workers fork)."""
    n, seed = args
    return make_conversations(n, seed, _POOL)


# ---------------------------------------------------------------------------------------------------- text

def image_prompt():
    return "<fake_token_around_image><global-img>" + "<image>" * IMAGE_SEQ_LEN + "<fake_token_around_image>"


def hf_messages(turns, answers):
    """The conversation as chat messages (images before the text of their user message), with the given answers
    for the assistant turns (len(answers) may be one less than len(turns): the last turn is then to be answered)."""
    msgs = []
    for k, t in enumerate(turns):
        msgs.append({"role": "user", "content": [{"type": "image"} for _ in t["images"]] +
                     [{"type": "text", "text": t["question"]}]})
        if k < len(answers):
            msgs.append({"role": "assistant", "content": [{"type": "text", "text": answers[k]}]})
    return msgs


def render(msgs, gen):
    """The chat template, in Python (checked against transformers' rendering at start)."""
    s = "<|im_start|>"
    for m in msgs:
        c = m["content"]
        s += m["role"].capitalize() + (":" if c[0]["type"] == "image" else ": ")
        for part in c:
            s += part["text"] if part["type"] == "text" else "<image>"
        s += "<end_of_utterance>\n"
    return s + ("Assistant:" if gen else "")


def expand(text):
    return text.replace("<image>", image_prompt())


def normalize(s):
    """As vlmchat eval's normalization: lowercase, punctuation to spaces, articles dropped, number words to digits."""
    s = "".join(" " if (c.isascii() and not c.isalnum() and not c.isspace() and c != "'") else c.lower() for c in s)
    s = s.replace("'", "")
    words = []
    for wd in s.split():
        if wd in ("a", "an", "the"):
            continue
        nums = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
        words.append(str(nums.index(wd)) if wd in nums else wd)
    return " ".join(words)


def show_data(n):
    pool = make_pool(200, 11)
    convs = make_conversations(n, 12, pool)
    for c in convs:
        for t in c:
            print(f"  [{t['category']:11s} {t['skill']:12s}] {'<img>' * len(t['images'])} {t['question']!r} -> {t['answer']!r}")
        print()
    cats = {}
    for c in make_conversations(3000, 13, pool):
        for t in c:
            cats[t["category"]] = cats.get(t["category"], 0) + 1
            cats["skill:" + t["skill"]] = cats.get("skill:" + t["skill"], 0) + 1
    print(json.dumps(cats, indent=0))
    render_images((pool[:20], 0))


# ---------------------------------------------------------------------------------------------------- training

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out", nargs="?")
    ap.add_argument("--total-seconds", type=float, default=510, help="wall-clock budget of the whole run")
    ap.add_argument("--reserve-seconds", type=float, default=100, help="kept for evaluation and writing")
    ap.add_argument("--pool", type=int, default=200000, help="training images")
    ap.add_argument("--conversations", type=int, default=300000)
    ap.add_argument("--eval-conversations", type=int, default=360)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--show-data", type=int, default=0)
    ap.add_argument("--pack", help="where the packed results and the log go (default: OUTDIR)")
    args = ap.parse_args()
    if args.show_data:
        show_data(args.show_data)
        return
    t0 = time.time()
    deadline = t0 + args.total_seconds
    work = args.out
    dest = args.pack or work
    os.makedirs(work, exist_ok=True)
    os.makedirs(dest, exist_ok=True)
    log_file = open(os.path.join(dest, "train.log"), "a")

    def log(*a):
        s = f"[{time.time() - t0:6.1f}s] " + " ".join(str(x) for x in a)
        print(s, flush=True)
        log_file.write(s + "\n")
        log_file.flush()

    import multiprocessing as mp
    global _POOL

    # ---- data (numpy/PIL in worker processes, before CUDA is touched)
    chunk = 5000
    n_workers = max(1, min(15, (os.cpu_count() or 2) - 1))
    with mp.get_context("fork").Pool(n_workers) as workers:
        parts = workers.map(pool_job, [(min(chunk, args.pool - i), 1000 + i // chunk) for i in range(0, args.pool, chunk)])
    pool = [sc for p, _ in parts for sc in p]
    images = np.concatenate([im for _, im in parts])
    del parts
    log(f"scenes {len(pool)} rendered {images.shape}")
    _POOL = pool
    with mp.get_context("fork").Pool(n_workers) as workers:
        parts = workers.map(conv_job, [(min(chunk, args.conversations - i), 5000 + i // chunk)
                                       for i in range(0, args.conversations, chunk)])
    convs = [c for p in parts for c in p]
    eval_pool = make_pool(400, 99)
    eval_images = render_images((eval_pool, 50_000_000))
    eval_convs = make_conversations(args.eval_conversations, 98, eval_pool)
    log(f"conversations {len(convs)} ({sum(len(c) for c in convs)} turns), held out {len(eval_convs)}")

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor, LlamaConfig,
                              PreTrainedTokenizerFast)
    from transformers.models.idefics3.configuration_idefics3 import Idefics3VisionConfig
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True

    # ---- tokenizer
    texts = [render(hf_messages(c, [t["answer"] for t in c]), False) for c in convs[:100000]]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=900, show_progress=False, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(texts, trainer)
    del texts
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|im_start|>", eos_token="<end_of_utterance>",
                                  unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    eos = tok.convert_tokens_to_ids("<end_of_utterance>")
    pad = tok.pad_token_id
    img_tok = tok.convert_tokens_to_ids("<image>")
    pattern = np.array(tok(image_prompt(), add_special_tokens=False)["input_ids"], dtype=np.int64)
    ip = Idefics3ImageProcessorPil(size={"longest_edge": SIZE}, max_image_size={"longest_edge": SIZE},
                                   do_image_splitting=False)
    proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=IMAGE_SEQ_LEN, chat_template=TEMPLATE)
    log(f"vocab {len(tok)}, image prompt {len(pattern)} tokens")

    def encode(texts, width=None):
        """Token ids of rendered conversations, each <image> expanded as the processor does (the text is tokenized
        with one <image> token per image, then expanded: special tokens split the text either way). Returns a
        padded int64 array and the lengths."""
        enc = tok(texts, add_special_tokens=True)["input_ids"]
        n0 = np.array([len(e) for e in enc])
        flat = np.fromiter((t for e in enc for t in e), dtype=np.int64, count=int(n0.sum()))
        rep = np.where(flat == img_tok, len(pattern), 1)
        out = np.repeat(flat, rep)
        starts = np.repeat(np.cumsum(rep) - rep, rep)
        offs = np.arange(len(out)) - starts
        is_img = np.repeat(flat == img_tok, rep)
        out[is_img] = pattern[offs[is_img]]
        row_of_tok = np.repeat(np.arange(len(enc)), n0)
        new_len = np.bincount(row_of_tok, weights=rep, minlength=len(enc)).astype(np.int64)
        W = width or int(new_len.max())
        ids = np.full((len(enc), W), pad, dtype=np.int64)
        rows = np.repeat(np.arange(len(enc)), new_len)
        cols = np.arange(len(out)) - np.repeat(np.cumsum(new_len) - new_len, new_len)
        ok = cols < W
        ids[rows[ok], cols[ok]] = out[ok]
        return ids, new_len

    # ---- the training layout must be exactly what the processor builds: the rendering, the image expansion and
    # the pixels, checked on multi-turn, multi-image conversations
    use_proc_render = False
    for c in [c for c in eval_convs if sum(len(t["images"]) for t in c) >= 2][:30]:
        for k in range(len(c)):
            msgs = hf_messages(c[:k + 1], [t["answer"] for t in c[:k]])
            theirs, mine = proc.apply_chat_template(msgs, add_generation_prompt=True), render(msgs, True)
            if theirs != mine and not use_proc_render:
                log(f"WARNING: rendering differs:\n{theirs!r}\n{mine!r}")
                use_proc_render = True
    layout_ok = True
    for c in [c for c in eval_convs if sum(len(t["images"]) for t in c) >= 2 and len(c) >= 2][:5]:
        msgs = hf_messages(c, [t["answer"] for t in c[:-1]])
        ims = [Image.fromarray(eval_images[i]) for t in c for i in t["images"]]
        text = proc.apply_chat_template(msgs, add_generation_prompt=True)
        ref = proc(images=[ims], text=text, return_tensors="pt")
        mine, n_mine = encode([text])
        if ref["input_ids"][0].tolist() != mine[0, :n_mine[0]].tolist():
            log(f"WARNING: ids differ from the processor:\n{ref['input_ids'][0].tolist()}\n{mine[0].tolist()}")
            layout_ok = False
        px = (torch.from_numpy(np.stack([eval_images[i] for t in c for i in t["images"]])).permute(0, 3, 1, 2).float()
              * (1 / 255) - 0.5) / 0.5
        if not torch.allclose(ref["pixel_values"][0].float(), px, atol=1e-6):
            log("WARNING: the pixel pipeline differs from the processor")
            layout_ok = False
    log(f"layout checked against the processor: {'same' if layout_ok else 'DIFFERENT'}")

    def prompt_text(msgs, gen):
        return proc.apply_chat_template(msgs, add_generation_prompt=gen) if use_proc_render else render(msgs, gen)

    # ---- encode the training conversations; labels: the answer tokens (from after each "Assistant:" through its
    # <end_of_utterance>)
    L_MAX = 384
    t_enc = time.time()
    full = []
    for c in convs:
        full.append(prompt_text(hf_messages(c, [t["answer"] for t in c]), False))
        if use_proc_render and time.time() - t_enc > 60:
            break
    convs = convs[:len(full)]
    ids_np, lens = encode(full, L_MAX)
    del full
    a_ids = tok("Assistant:", add_special_tokens=False)["input_ids"]
    K = len(a_ids)
    match = np.ones((len(ids_np), L_MAX - K + 1), dtype=np.bool_)
    for j, a in enumerate(a_ids):
        match &= ids_np[:, j:L_MAX - K + 1 + j] == a
    start = np.zeros_like(ids_np, dtype=np.bool_)
    start[:, K:] = match[:, :L_MAX - K]
    ar = np.broadcast_to(np.arange(L_MAX), ids_np.shape)
    last_start = np.maximum.accumulate(np.where(start, ar, -1), axis=1)
    is_eos = ids_np == eos
    last_eos_before = np.full_like(ids_np, -1)
    last_eos_before[:, 1:] = np.maximum.accumulate(np.where(is_eos, ar, -1), axis=1)[:, :-1]
    lab_np = (last_start >= 0) & (last_start > last_eos_before) & (ar < lens[:, None])
    n_turns = np.array([len(c) for c in convs])
    keep = (lens <= L_MAX) & (start.sum(1) == n_turns)
    bad = 0
    for n in range(min(300, len(convs))):
        got = tok.decode(ids_np[n][lab_np[n]].tolist())
        want = "".join(" " + t["answer"] + "<end_of_utterance>" for t in convs[n])
        if keep[n] and got != want:
            bad += 1
            if bad < 4:
                log(f"label mismatch: {got!r} vs {want!r}")
    if bad:
        log(f"WARNING: {bad} of 300 conversations with answers that do not line up with their labels")
    idx_keep = np.nonzero(keep)[0]
    max_img = 3
    conv_imgs = np.full((len(convs), max_img), -1, dtype=np.int64)
    for n, c in enumerate(convs):
        flat = [i for t in c for i in t["images"]]
        conv_imgs[n, :len(flat)] = flat
    log(f"encoded {len(idx_keep)} conversations (dropped {len(convs) - len(idx_keep)}), mean length "
        f"{lens[keep].mean():.0f}, max {lens[keep].max()}, {time.time() - t_enc:.0f}s")

    # ---- model
    vision = Idefics3VisionConfig(hidden_size=256, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=4,
                                  image_size=SIZE, patch_size=8, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    text_cfg = LlamaConfig(vocab_size=len(tok), hidden_size=384, intermediate_size=1024, num_hidden_layers=6,
                           num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=1024,
                           rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                           eos_token_id=eos)
    cfg = Idefics3Config(vision_config=vision, text_config=text_cfg, scale_factor=2,
                         image_token_id=tok.convert_tokens_to_ids("<image>"), tie_word_embeddings=True)
    cfg._attn_implementation = "sdpa"
    model = Idefics3ForConditionalGeneration(cfg).to(device)
    log(f"model {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")

    g_ids = torch.from_numpy(ids_np).to(device)
    g_lab = torch.from_numpy(lab_np).to(device)
    g_lens = torch.from_numpy(lens).to(device)
    g_imgs = torch.from_numpy(conv_imgs).to(device)
    g_pool = torch.from_numpy(images).to(device)
    g_keep = torch.from_numpy(idx_keep).to(device)

    def pixels(u8):
        return ((u8.permute(0, 3, 1, 2).float() * (1 / 255) - 0.5) / 0.5)[:, None]

    # ---- greedy decoding, batched, by full forward passes (the model's own answers fed back turn by turn)
    def greedy(texts, pix_list, max_new=24):
        ids0, lens0 = encode(texts)
        seqs = [ids0[b, :lens0[b]].tolist() for b in range(len(texts))]
        out = [[] for _ in texts]
        done = [False] * len(texts)
        pix = pixels(torch.from_numpy(np.concatenate(pix_list)).to(device)) if pix_list else None
        for _ in range(max_new):
            L = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), L), pad, dtype=torch.long)
            att = torch.zeros((len(seqs), L), dtype=torch.long)
            for b, s in enumerate(seqs):
                ids[b, :len(s)] = torch.tensor(s)
                att[b, :len(s)] = 1
            with torch.no_grad():
                logits = model(input_ids=ids.to(device), attention_mask=att.to(device), pixel_values=pix).logits
            last = torch.tensor([len(s) - 1 for s in seqs], device=device)
            nxt = logits[torch.arange(len(seqs), device=device), last].argmax(-1).tolist()
            for b, t in enumerate(nxt):
                if not done[b]:
                    out[b].append(t)
                    seqs[b].append(t)
                    done[b] = t == eos
            if all(done):
                break
        return out

    def run_eval(conv_list, imgs_u8, limit=None):
        """Per-turn answers with the model's own earlier answers in the history."""
        conv_list = conv_list[:limit] if limit else conv_list
        model.eval()
        answers = [[] for _ in conv_list]
        for t in range(5):
            todo = [n for n, c in enumerate(conv_list) if len(c) > t]
            for s in range(0, len(todo), 128):
                part = todo[s:s + 128]
                prompts, pix = [], []
                for n in part:
                    c = conv_list[n]
                    prompts.append(prompt_text(hf_messages(c[:t + 1], answers[n]), True))
                    pix.append(imgs_u8[[i for tt in c[:t + 1] for i in tt["images"]]])
                for n, g in zip(part, greedy(prompts, pix)):
                    answers[n].append(tok.decode(g, skip_special_tokens=True).lstrip(" "))
        model.train()
        stats = {}
        for c, a in zip(conv_list, answers):
            for t, got in zip(c, a):
                ok = normalize(got) == normalize(t["answer"])
                for key in (t["category"], "skill:" + t["skill"], "all"):
                    h, n = stats.get(key, (0, 0))
                    stats[key] = (h + ok, n + 1)
        return answers, stats

    def fmt(stats):
        keys = ["all", "first", "follow-up", "cross-image"] + sorted(k for k in stats if k.startswith("skill:"))
        return "  ".join(f"{k} {stats[k][0] / stats[k][1]:.3f} ({stats[k][1]})" for k in keys if k in stats)

    # ---- train for the time that is left
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98), fused=True)
    train_end = deadline - args.reserve_seconds
    t_train = time.time()
    budget = train_end - t_train
    log(f"training for {budget:.0f}s")
    warm, step, next_log, next_eval = 300, 0, 0.0, t_train + 100
    gen = torch.Generator(device=device)
    gen.manual_seed(3)
    params = list(model.parameters())
    snapshot = [p.detach().clone() for p in params]
    snap_step, lr_scale, restarts, warm_from = 0, 1.0, 0, 0
    model.train()
    while True:
        now = time.time()
        frac = (now - t_train) / budget
        if frac >= 1:
            break
        # warm-up at the start and again after a restart (Adam's moments are then new: its first steps are ~lr)
        lr = (lr_scale * args.lr * min(1.0, (step - warm_from + 1) / warm) *
              (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac))))
        for gp in opt.param_groups:
            gp["lr"] = lr
        pick_idx = g_keep[torch.randint(0, len(g_keep), (args.batch,), device=device, generator=gen)]
        L = int(g_lens[pick_idx].max())
        ids = g_ids[pick_idx, :L].long()
        lab = torch.where(g_lab[pick_idx, :L], ids, torch.full_like(ids, -100))
        att = (torch.arange(L, device=device)[None, :] < g_lens[pick_idx][:, None]).long()
        im = g_imgs[pick_idx].reshape(-1)
        pix = pixels(g_pool[im[im >= 0]])
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            out = model(input_ids=ids, attention_mask=att, pixel_values=pix)
        logits = out.logits.float()
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                 lab[:, 1:].reshape(-1), ignore_index=-100)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if not bool(torch.isfinite(loss.detach()) & torch.isfinite(gnorm)):     # one host sync a step
            # the first GPU run of this script diverged to NaN after ~1000 steps at lr 1e-3: go back to the last
            # good weights, forget the optimizer's moments and continue at a lower learning rate
            opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                for p_, s_ in zip(model.parameters(), snapshot):
                    p_.copy_(s_)
            opt.state.clear()
            lr_scale *= 0.6
            restarts += 1
            warm_from = step
            log(f"step {step}: non-finite loss or gradient; back to the weights of step {snap_step}, "
                f"learning rate x{lr_scale:.2f}")
            continue
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if step % 200 == 0:
            # a snapshot only of finite weights (a restore must never bring back NaN)
            with torch.no_grad():
                if bool(torch.stack([torch.isfinite(p_).all() for p_ in params]).all()):
                    for p_, s_ in zip(params, snapshot):
                        s_.copy_(p_)
                    snap_step = step
                else:
                    log(f"step {step}: non-finite weights, not snapshotted (last snapshot: step {snap_step})")
        if now - t_train >= next_log:
            log(f"step {step} loss {loss.item():.4f} lr {lr:.2e}")
            next_log += 20
        if now >= next_eval and now < train_end - 60:
            _, st = run_eval(eval_convs, eval_images, limit=120)
            log(f"step {step} quick held-out (120 conversations): {fmt(st)}")
            next_eval = now + 100
    log(f"trained {step} steps, {step * args.batch} conversations, {restarts} restarts after non-finite steps")

    # ---- the model, rounded to bf16, written first (what follows is measurement)
    model = model.float().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    out_dir = os.path.join(work, "demo")
    model.generation_config.eos_token_id = [eos]
    model.generation_config.do_sample = False
    model.to(torch.bfloat16).save_pretrained(out_dir)
    proc.save_pretrained(out_dir)
    model.float()
    pack(work, "demo", dest, "model")
    log("model written")

    # ---- held-out set: conversations as messages (paths relative to eval.jsonl), expected answers per turn
    def user_msg(t):
        return {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"images/e{i:03d}.png"}}
                                            for i in t["images"]] + [{"type": "text", "text": t["question"]}]}

    eval_dir = os.path.join(work, "eval")
    os.makedirs(os.path.join(eval_dir, "images"), exist_ok=True)
    used = sorted({i for c in eval_convs for t in c for i in t["images"]})
    for i in used:
        Image.fromarray(eval_images[i]).save(os.path.join(eval_dir, f"images/e{i:03d}.png"))
    with open(os.path.join(eval_dir, "eval.jsonl"), "w") as f:
        for n, c in enumerate(eval_convs):
            msgs = []
            for t in c:
                msgs.append(user_msg(t))
                msgs.append({"role": "assistant", "content": t["answer"], "answers": [t["answer"]],
                             "category": t["category"], "skill": t["skill"]})
            f.write(json.dumps({"id": n, "messages": msgs}) + "\n")
    pack(work, "eval", dest, "eval")
    log(f"held-out set written: {len(eval_convs)} conversations, {len(used)} images")

    # ---- accuracy with transformers (bf16-rounded weights, fp32 compute), the model's own answers fed back
    try:
        answers, st = run_eval(eval_convs, eval_images)
        log(f"held-out accuracy (bf16 weights): {fmt(st)}")
        with open(os.path.join(dest, "hf_answers.json"), "w") as f:
            json.dump({"answers": answers, "stats": {k: list(v) for k, v in st.items()}}, f)
    except Exception as e:                                   # keep what was written; say what failed
        import traceback
        log("evaluation failed: " + traceback.format_exc())
        answers = None

    # ---- fidelity references: transformers' generate() on the CPU, turn by turn, for a few conversations (the
    # history holds generate()'s own answers); messages in the eval file's format
    try:
        model.cpu()
        refs, agree, total = [], 0, 0
        chosen = [n for n, c in enumerate(eval_convs) if len(c) >= 3 and sum(len(t["images"]) for t in c) >= 2][:6]
        chosen += [n for n, c in enumerate(eval_convs) if len(c) == 1][:2]
        for n in chosen:
            c = eval_convs[n]
            hist, oai = [], []
            for k in range(len(c)):
                msgs = hf_messages(c[:k + 1], hist)
                oai.append(user_msg(c[k]))
                ims = [Image.fromarray(eval_images[i]) for t in c[:k + 1] for i in t["images"]]
                text = proc.apply_chat_template(msgs, add_generation_prompt=True)
                inputs = proc(images=[ims], text=text, return_tensors="pt")
                with torch.no_grad():
                    outg = model.generate(**inputs, max_new_tokens=24, do_sample=False, eos_token_id=eos,
                                          pad_token_id=eos)
                g = outg[0, inputs["input_ids"].shape[1]:].tolist()
                ans = tok.decode(g, skip_special_tokens=True).lstrip(" ")
                if answers is not None:
                    agree += ans == answers[n][k]
                total += 1
                refs.append({"conversation": n, "turn": k, "messages": list(oai), "answer": ans,
                             "input_ids": inputs["input_ids"][0].tolist(), "generated_ids": g})
                hist.append(ans)
                oai.append({"role": "assistant", "content": ans})
            if time.time() > deadline + 25:
                break
        json.dump({"cases": refs}, open(os.path.join(dest, "reference.json"), "w"))
        log(f"references written: {len(refs)} turns; generate() agrees with the batched greedy eval on "
            f"{agree}/{total}")
    except Exception:
        import traceback
        log("references failed: " + traceback.format_exc())
    log("done")


def pack(work, sub, dest, name):
    """dest/name.tar of work/sub (split into name.tar.partN of at most 15 MiB when larger)."""
    import tarfile
    path = os.path.join(dest, name + ".tar")
    with tarfile.open(path, "w") as tf:
        tf.add(os.path.join(work, sub), arcname=sub)
    size, limit = os.path.getsize(path), 15 << 20
    if size > limit:
        with open(path, "rb") as f:
            k = 0
            while chunk := f.read(limit):
                with open(f"{path}.part{k}", "wb") as g:
                    g.write(chunk)
                k += 1
        os.remove(path)


if __name__ == "__main__":
    sys.exit(main())
