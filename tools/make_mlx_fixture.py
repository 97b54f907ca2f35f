#!/usr/bin/env python3
"""An MLX 4-bit copy of the tiny SmolVLM fixture: `python3 tools/make_mlx_fixture.py OUTDIR` (run from the repo root,
after make_vision_fixtures.py has written tests/fixtures/vision/smolvlm).

Writes OUTDIR/vision/smolvlm_mlx4/ in the layout MLX checkpoints use:
- every nn.Linear and the token embedding whose input width is a multiple of the group size is stored as
  "X.weight" (uint32 words, eight 4-bit values each, the first in the lowest bits), "X.scales" and "X.biases"
  (float16, one per group of GROUP values): w = scale * q + bias;
- convolutions channels-last ([out, kh, kw, in]), as MLX stores them;
- config.json gains "quantization": {"group_size": GROUP, "bits": 4}.
The reference is transformers' SmolVLM with those dequantized weights (computed in float32), run on the same
cases as the float fixture (reference.json + reference.bin, written by make_vision_fixtures.record_cases).
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_vision_fixtures as mvf  # noqa: E402

GROUP = 32
SRC = "tests/fixtures/vision/smolvlm"


def quantize(w):
    """Affine 4-bit per group of GROUP along the input dimension; returns packed words, scales, biases and the
    dequantized float32 weight the reference runs with."""
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
    return words, scales, biases, deq


def main():
    from transformers import AutoProcessor, SmolVLMForConditionalGeneration
    import transformers.models.smolvlm.processing_smolvlm as psm
    psm.num2words = getattr(psm, "num2words", None) or (lambda n: str(n))   # only videos use it
    out = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "fixtures_out", "vision", "smolvlm_mlx4")
    os.makedirs(out, exist_ok=True)
    model = SmolVLMForConditionalGeneration.from_pretrained(SRC, attn_implementation="eager").eval()
    proc = AutoProcessor.from_pretrained(SRC)
    tensors = load_file(os.path.join(SRC, "model.safetensors"))
    stored, quantized = {}, []
    with torch.no_grad():
        for name, mod in model.named_modules():
            key = name + ".weight"
            is_linear = isinstance(mod, torch.nn.Linear)
            is_tok_embed = isinstance(mod, torch.nn.Embedding) and name.endswith("embed_tokens")
            if not (is_linear or is_tok_embed) or key not in tensors or mod.weight.shape[1] % GROUP:
                continue
            words, scales, biases, deq = quantize(mod.weight)
            mod.weight.copy_(deq)
            stored[key] = words.to(torch.uint32)
            stored[name + ".scales"] = scales
            stored[name + ".biases"] = biases
            quantized.append(name)
    for key, t in tensors.items():
        if key in stored:
            continue
        stored[key] = t.permute(0, 2, 3, 1).contiguous() if t.dim() == 4 else t
    print("quantized", len(quantized), "matrices:", quantized)
    save_file(stored, os.path.join(out, "model.safetensors"), metadata={"format": "mlx"})
    cfg = json.load(open(os.path.join(SRC, "config.json")))
    cfg["quantization"] = {"group_size": GROUP, "bits": 4}
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    for f in ("chat_template.jinja", "generation_config.json", "processor_config.json", "tokenizer.json",
              "tokenizer_config.json"):
        shutil.copy(os.path.join(SRC, f), out)
    tok = proc.tokenizer
    eos = [tok.convert_tokens_to_ids("<end_of_utterance>")]
    mvf.record_cases("smolvlm_mlx4", out, model, proc, cfg["image_token_id"], eos, "bw.png", True)


if __name__ == "__main__":
    main()
