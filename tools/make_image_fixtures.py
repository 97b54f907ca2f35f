#!/usr/bin/env python3
"""Reference fixtures for vlmchat's image input: `python3 tools/make_image_fixtures.py OUTDIR`.

Writes OUTDIR/images/*.jpg|*.png (small generated test images of every kind the decoder handles) and
OUTDIR/images/reference.json + reference.bin: for each file the RGB pixels transformers' load_image gives
(EXIF orientation applied, converted to RGB), and for a source image PIL's resize with every filter, plus
transformers' rescale+normalize of one resized image.
"""
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageDraw
from transformers.image_transforms import normalize, rescale
from transformers.image_utils import load_image

OUT = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "fixtures_out", "images")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(1234)


def photo(w=97, h=71):
    """Smooth gradients, hard edges and noise: exercises both filter lobes and clipping."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h) + 64], -1)
    img += rng.normal(0, 12, img.shape)
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)
    d.ellipse([10, 8, 40, 38], fill=(255, 20, 20))
    d.rectangle([55, 30, 90, 65], fill=(10, 10, 250))
    d.line([0, 70, 96, 0], fill=(255, 255, 255), width=3)
    return im


def png16(path, arr, color):
    """16-bit PNG writer (PIL cannot write 16-bit RGB)."""
    h, w = arr.shape[:2]
    ctype = 2 if color else 0
    raw = b"".join(b"\0" + arr[i].astype(">u2").tobytes() for i in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xffffffff)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(path, "wb").write(png)


def make_images():
    im = photo()
    files = {}

    def save(name, image, **kw):
        path = os.path.join(OUT, name)
        image.save(path, **kw)
        files[name] = path

    save("photo.jpg", im, quality=90)
    save("progressive.jpg", im, quality=85, progressive=True)
    save("gray.jpg", im.convert("L"), quality=90)
    save("cmyk.jpg", im.convert("CMYK"), quality=95)
    small = photo(23, 17)
    for o in (2, 3, 6, 8):
        exif = Image.Exif()
        exif[0x0112] = o
        save(f"orient{o}.jpg", small, quality=95, exif=exif)
    save("rgb.png", im)
    rgba = im.convert("RGBA")
    a = np.array(rgba)
    a[..., 3] = np.linspace(0, 255, a.shape[1]).astype(np.uint8)[None, :]
    save("rgba.png", Image.fromarray(a, "RGBA"))
    la = np.stack([np.array(im.convert("L")), a[..., 3]], -1)
    save("la.png", Image.fromarray(la, "LA"))
    pal = im.convert("P", palette=Image.ADAPTIVE, colors=16)
    save("palette.png", pal, transparency=3)
    save("bw.png", im.convert("1"))
    g16 = (np.array(im.convert("L")).astype(np.uint16) * 257)
    png16(os.path.join(OUT, "gray16.png"), g16, False)
    files["gray16.png"] = os.path.join(OUT, "gray16.png")
    png16(os.path.join(OUT, "rgb16.png"), np.array(im).astype(np.uint16) * 257 + 3, True)
    files["rgb16.png"] = os.path.join(OUT, "rgb16.png")
    return files


def main():
    files = make_images()
    blob = io.BytesIO()
    ref = {"decoded": {}, "resized": [], "normalized": None}

    def put(arr):
        off = blob.tell()
        data = np.ascontiguousarray(arr).tobytes()
        blob.write(data)
        return [off, len(data)]

    for name, path in sorted(files.items()):
        try:
            rgb = np.array(load_image(path))
            ref["decoded"][name] = {"width": rgb.shape[1], "height": rgb.shape[0], "data": put(rgb),
                                    "mode": Image.open(path).mode}
            print(name, Image.open(path).mode, rgb.shape, flush=True)
        except Exception as e:  # record what the reference cannot read
            ref["decoded"][name] = {"error": str(e)}
            print(name, "error", e)
    src = np.array(load_image(files["photo.jpg"]))
    pil = Image.fromarray(src)
    cases = [("bicubic", 3, 200, 150), ("bicubic", 3, 40, 30), ("bicubic", 3, 97, 30), ("bicubic", 3, 30, 71),
             ("lanczos", 1, 50, 64), ("bilinear", 2, 13, 17), ("nearest", 0, 150, 20), ("box", 4, 33, 33),
             ("hamming", 5, 120, 90), ("bicubic", 3, 336, 336)]
    for label, code, w, h in cases:
        out = np.array(pil.resize((w, h), resample=code))
        ref["resized"].append({"filter": label, "resample": code, "width": w, "height": h, "data": put(out)})
    small = np.array(pil.resize((40, 30), resample=3))
    mean, std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    x = normalize(rescale(small, 1 / 255), mean=mean, std=std)
    x = np.transpose(x, (2, 0, 1)).astype("<f4")
    ref["normalized"] = {"width": 40, "height": 30, "scale": 1 / 255, "mean": mean, "std": std, "data": put(x)}
    open(os.path.join(OUT, "reference.bin"), "wb").write(blob.getvalue())
    json.dump(ref, open(os.path.join(OUT, "reference.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
