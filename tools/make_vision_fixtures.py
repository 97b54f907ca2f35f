#!/usr/bin/env python3
"""Reference fixtures for vlmchat's vision models: `python3 tools/make_vision_fixtures.py OUTDIR`.

Needs tests/fixtures (tokenizers and images from the other fixture scripts). Writes OUTDIR/vision/<model>/:
a tiny random model saved with save_pretrained together with its processor (PIL image processor), and
reference.json + reference.bin: for each case the processor's input ids and pixel values, greedy generate()
ids and first-step logits. Also OUTDIR/vision/token_counts.json: the reference processors' image-token
counts for real model configurations and common image sizes.
"""
import io
import json
import math
import os
import sys

import numpy as np
import torch
from PIL import Image
from transformers import (CLIPVisionConfig, LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextProcessor,
                          MistralConfig, PreTrainedTokenizerFast)
from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil

OUT = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "fixtures_out", "vision")
FIX = "tests/fixtures"

LLAVA_MISTRAL_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<<SYS>>\\n' + message['content'][0]['text']"
    " + '\\n<</SYS>>\\n\\n' }}{% elif message['role'] == 'user' %}{{ '[INST] ' }}{% for content in message['content'] "
    "| selectattr('type', 'equalto', 'image') %}{{ '<image>\\n' }}{% endfor %}{% for content in message['content'] | "
    "selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}{{' [/INST]' }}{% elif message['role'] "
    "== 'assistant' %}{{ ' ' + message['content'][0]['text'] + '</s> '}}{% endif %}{% endfor %}")


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name or "layer_norm" in name or "layrnorm" in name):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name or "position_embedding" in name:
                p.copy_(torch.randn(p.shape, generator=g) * (1.0 if "embed_tokens" in name else 0.5))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / math.sqrt(fan_in)))


class Blob:
    def __init__(self):
        self.buf = io.BytesIO()

    def put(self, arr):
        off = self.buf.tell()
        data = np.ascontiguousarray(arr).tobytes()
        self.buf.write(data)
        return [off, len(data)]


def record_cases(kind, d, model, proc, image_token_id, eos, second_image, nest_images, extra=None):
    """Runs the processor and greedy generate() on three prompts (landscape, EXIF-rotated portrait, two images)
    and writes reference.json + reference.bin into d. nest_images: Idefics3-style [[images]] batches.
    extra(inputs) adds model-specific fields to a case."""
    from PIL import ImageOps
    blob = Blob()
    cases = []
    for name, img_files, question in (
            ("landscape", ["photo.jpg"], "What is in the picture?"),
            ("portrait", ["orient6.jpg"], "Describe it."),
            ("two_images", ["photo.jpg", second_image], "Compare the two images.")):
        images = [ImageOps.exif_transpose(Image.open(f"{FIX}/images/{f}")).convert("RGB") for f in img_files]
        conv = [{"role": "user", "content": [{"type": "image"} for _ in images] + [{"type": "text", "text": question}]}]
        prompt = proc.apply_chat_template(conv, add_generation_prompt=True)
        inputs = proc(images=[images] if nest_images else images, text=prompt, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=20, min_new_tokens=20, do_sample=False, eos_token_id=eos,
                                 pad_token_id=eos[0], return_dict_in_generate=True, output_logits=True)
        ids = inputs["input_ids"][0].tolist()
        gen = out.sequences[0, len(ids):].tolist()
        pv = inputs["pixel_values"].numpy().astype("<f4")
        margins = [float(torch.topk(l[0], 2).values[0] - torch.topk(l[0], 2).values[1]) for l in out.logits]
        case = {"name": name, "images": img_files, "question": question, "prompt_text": prompt,
                "input_ids": ids, "n_image_tokens": ids.count(image_token_id)}
        case.update(extra(inputs) if extra else {})
        case.update({"pixel_values_shape": list(pv.shape), "pixel_values": blob.put(pv), "generated_ids": gen,
                     "first_logits": [round(float(x), 6) for x in out.logits[0][0]], "min_margin": min(margins)})
        cases.append(case)
        print(kind, name, "tokens", len(ids), "image tokens", ids.count(image_token_id), "pv", pv.shape,
              "gen", gen[:8], "margin %.4f" % min(margins), flush=True)
    open(os.path.join(d, "reference.bin"), "wb").write(blob.buf.getvalue())
    json.dump({"model": kind, "image_token_id": image_token_id, "cases": cases},
              open(os.path.join(d, "reference.json"), "w"), ensure_ascii=False)


def llava_next():
    d = os.path.join(OUT, "llava_next")
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{FIX}/tokenizers/sp_legacy/tokenizer.json", bos_token="<s>",
                                  eos_token="</s>", unk_token="<unk>")
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    image_token_id = tok.convert_tokens_to_ids("<image>")
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                              image_size=56, patch_size=14, projection_dim=32, hidden_act="quick_gelu",
                              layer_norm_eps=1e-5)
    text = MistralConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         sliding_window=None, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2, rope_theta=1e6)
    pinpoints = [[56, 112], [112, 56], [112, 112], [168, 56], [56, 168]]
    cfg = LlavaNextConfig(vision_config=vision, text_config=text, image_grid_pinpoints=pinpoints,
                          vision_feature_layer=-2, vision_feature_select_strategy="default",
                          image_token_index=image_token_id, projector_hidden_act="gelu",
                          multimodal_projector_bias=True, tie_word_embeddings=False)
    cfg._attn_implementation = "eager"
    model = LlavaNextForConditionalGeneration(cfg).eval()
    randomize(model, 11)
    ip = LlavaNextImageProcessorPil(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56},
                                    image_grid_pinpoints=pinpoints)
    proc = LlavaNextProcessor(image_processor=ip, tokenizer=tok, patch_size=14,
                              vision_feature_select_strategy="default", chat_template=LLAVA_MISTRAL_TEMPLATE,
                              num_additional_image_tokens=1)
    model.generation_config.eos_token_id = [2]
    model.save_pretrained(d)
    proc.save_pretrained(d)
    record_cases("llava_next", d, model, proc, image_token_id, [2], "palette.png", False,
                 lambda inputs: {"image_sizes": inputs["image_sizes"].tolist()})


IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == "
    "'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}"
    "{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")


def idefics3_tokenizer():
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{FIX}/tokenizers/bytelevel_smollm/tokenizer.json",
                                  bos_token="<|im_start|>", eos_token="<end_of_utterance>", unk_token="<|endoftext|>",
                                  pad_token="<|endoftext|>")
    extra = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
    extra += [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tok.add_special_tokens({"additional_special_tokens": extra})
    return tok


def smolvlm(kind):
    """SmolVLM (Idefics3 architecture) or SmolVLM2 (model_type smolvlm), with their PIL image processors."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor, LlamaConfig
    from transformers.models.idefics3.configuration_idefics3 import Idefics3VisionConfig
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
    d = os.path.join(OUT, kind)
    tok = idefics3_tokenizer()
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=56,
                  patch_size=14, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    text = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-5,
                       tie_word_embeddings=False, bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.convert_tokens_to_ids("<end_of_utterance>"))
    image_token_id = tok.convert_tokens_to_ids("<image>")
    ip_kw = dict(size={"longest_edge": 224}, max_image_size={"longest_edge": 56})
    if kind == "idefics3":
        cfg = Idefics3Config(vision_config=Idefics3VisionConfig(**vision), text_config=text, scale_factor=2,
                             image_token_id=image_token_id, tie_word_embeddings=False)
        cfg._attn_implementation = "eager"
        model = Idefics3ForConditionalGeneration(cfg).eval()
        proc = Idefics3Processor(image_processor=Idefics3ImageProcessorPil(**ip_kw), tokenizer=tok, image_seq_len=4,
                                 chat_template=IDEFICS3_TEMPLATE)
    else:
        import transformers.models.smolvlm.processing_smolvlm as psm
        psm.num2words = getattr(psm, "num2words", None) or (lambda n: str(n))   # only videos use it
        from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMProcessor
        from transformers.models.smolvlm.configuration_smolvlm import SmolVLMVisionConfig
        from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil
        from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor
        cfg = SmolVLMConfig(vision_config=SmolVLMVisionConfig(**vision), text_config=text, scale_factor=2,
                            image_token_id=image_token_id, tie_word_embeddings=False)
        cfg._attn_implementation = "eager"
        model = SmolVLMForConditionalGeneration(cfg).eval()
        proc = SmolVLMProcessor(image_processor=SmolVLMImageProcessorPil(**ip_kw), tokenizer=tok,
                                video_processor=SmolVLMVideoProcessor(), image_seq_len=4,
                                chat_template=IDEFICS3_TEMPLATE)
    randomize(model, 21)
    eos = [tok.convert_tokens_to_ids("<end_of_utterance>")]
    model.generation_config.eos_token_id = eos
    model.save_pretrained(d)
    proc.save_pretrained(d)
    record_cases(kind, d, model, proc, image_token_id, eos, "bw.png", True)


def token_counts():
    """Image-token counts of the reference processors for real configurations."""
    counts = {}
    tok = PreTrainedTokenizerFast(tokenizer_file=f"{FIX}/tokenizers/sp_legacy/tokenizer.json")
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    ip = LlavaNextImageProcessorPil(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336},
                                    image_grid_pinpoints=[[336, 672], [672, 336], [672, 672], [1008, 336],
                                                          [336, 1008]])
    proc = LlavaNextProcessor(image_processor=ip, tokenizer=tok, patch_size=14, vision_feature_select_strategy="default",
                              num_additional_image_tokens=1)
    sizes = [(1024, 768), (768, 1024), (640, 480), (1920, 1080), (336, 336), (500, 500), (100, 1000)]
    counts["llava_next_mistral_7b"] = {f"{w}x{h}": proc._get_number_of_features(h, w, 336, 336) - 1 for w, h in sizes}
    # SmolVLM geometries: (size longest_edge, max_image_size, image_seq_len) of the released checkpoints
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
    for name, longest, tile, seq in (("smolvlm_instruct", 1536, 384, 81), ("smolvlm_256m", 2048, 512, 64)):
        ipp = Idefics3ImageProcessorPil(size={"longest_edge": longest}, max_image_size={"longest_edge": tile})
        counts[name] = {}
        for w, h in sizes:
            out = ipp(Image.new("RGB", (w, h)), return_row_col_info=True)
            rows, cols = out["rows"][0][0], out["cols"][0][0]
            counts[name][f"{w}x{h}"] = (rows * cols + 1) * seq
        counts[name]["_geometry"] = [longest, tile, seq]
    json.dump(counts, open(os.path.join(OUT, "token_counts.json"), "w"), indent=1)
    print(counts)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    llava_next()
    smolvlm("idefics3")
    try:
        smolvlm("smolvlm")
    except Exception as e:   # keep the other fixtures if SmolVLM2's processor cannot be built here
        print("smolvlm (v2) skipped:", type(e).__name__, e)
    token_counts()
