#!/usr/bin/env python3
"""Text GGUF + mmproj GGUF pairs of the tiny vision fixtures, made by llama.cpp's own converters.

    python3 tools/convert_mmproj_fixtures.py LLAMACPP_DIR OUTDIR [STEP...]

LLAMACPP_DIR is a llama.cpp source tree (convert_hf_to_gguf.py, conversion/, gguf-py/,
tools/mtmd/legacy-models/), never committed. Needs torch, transformers, safetensors, numpy (the device
machine has them). Runs the converters in this one process (runpy) and writes OUTDIR/<name>/:

  smolvlm, idefics3: convert_hf_to_gguf.py --mmproj --outtype f32 (mmproj.gguf) and the text model with
      --outtype f32 (text.gguf). The fixture config gets text_config.architectures = ["VLlama3ForCausalLM"],
      as the released SmolVLM checkpoints have it.
  llava_next: the legacy LLaVA-1.6 route of docs/multimodal/llava.md: the checkpoint in the llava-hf Hub layout
      (vision_tower.vision_model.*), llava_surgery_v2.py -C, llava.clip as vit/pytorch_model.bin with a
      CLIP vision config.json like cmp-nct's config_vit.json, convert_image_encoder_to_gguf.py
      --clip-model-is-vision: mmproj-f32.gguf (--use-f32), mmproj-f16.gguf (default), mmproj-fl.gguf (--use-f32,
      the config carrying vision_feature_layer -2, so the file has clip.vision.feature_layer); the text model
      through convert_hf_to_gguf.py with text_config.architectures = ["MistralForCausalLM"] (step llava_text).
      The legacy converter always stores the patch embedding and the projector matrices in F16, so a
      transformers reference is also recorded on exactly those weights (reference_f32file.*), and one with
      every 2-D vision matrix rounded as the default F16 file stores it (reference_f16file.*).

Two shims, both in this process. transformers 5's CLIPVisionModel is the tower itself (its state dict has
embeddings.*, encoder.*, no .vision_model), while the legacy encoder script reads transformers 4's shape
(model.vision_model.encoder.layers, state-dict keys vision_model.*): CLIPVisionModel.from_pretrained is replaced
on the class object (an earlier version rebound the name transformers.CLIPVisionModel; in that run the script
still got transformers' plain model, cause not established) by one that loads transformers' model and hands over a module holding it under .vision_model,
after checking that its state dict is llava.clip's tensors, same names and values (else, fallback, those tensors
as a module tree; the log says which one ran). And the tiny tokenizers' pre-tokenizer hashes are not in
get_vocab_base_pre's table, so an unknown hash returns the name the real model's tokenizer gets ("smollm" for
SmolVLM); known hashes are untouched. Nothing else in the converters is changed.
Status (transformers 5.17 on the device): all steps ran and are committed: tests/fixtures/vision/{smolvlm,
idefics3}_gguf; llava_next: tests/fixtures/vision/llava_next_mmproj/mmproj-model-{f32,f16,f32-feature-layer}.gguf
(the shim's transformers path: "CLIPVisionModel under .vision_model"), references llava_next_f16proj
(reference_f32file, byte-identical on a rerun) and llava_next_f16tower (reference_f16file). The LLaVA text GGUF
(step llava_text, not run by default) is not token-exact for the tiny fixture tokenizer (llama.cpp's
LlamaHfVocab turns a BPE tokenizer.json into SentencePiece scores; " picture" splits differently from HF), so
test_vision pairs the llama.cpp mmproj files with the text GGUF vlmchat writes.
Extra arguments name the steps to run (smolvlm idefics3 llava_next llava_references llava_text); default all but
llava_text.
"""
import json
import os
import runpy
import shutil
import sys
import traceback

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

LL = os.path.abspath(sys.argv[1])
OUT = os.path.abspath(sys.argv[2])
W = "/tmp/mmproj_work"
FIXV = "tests/fixtures/vision"
sys.path.insert(0, LL)
sys.path.insert(1, os.path.join(LL, "gguf-py"))
os.environ["NO_LOCAL_GGUF"] = "1"

import conversion.base as cb  # noqa: E402

PRE = {"name": None}
_orig_pre = cb.TextModel.get_vocab_base_pre


def _pre(self, tokenizer):
    try:
        return _orig_pre(self, tokenizer)
    except NotImplementedError:
        print("pre-tokenizer hash unknown (tiny tokenizer): using", PRE["name"], flush=True)
        return PRE["name"]


cb.TextModel.get_vocab_base_pre = _pre
results = {}


def run(label, script, args):
    print(f"==== {label}: {os.path.basename(script)} {' '.join(args)}", flush=True)
    old = sys.argv
    sys.argv = [script] + args
    try:
        runpy.run_path(script, run_name="__main__")
        results[label] = "ok"
    except SystemExit as e:
        results[label] = "ok" if e.code in (None, 0) else f"exit {e.code}"
    except Exception:
        traceback.print_exc()
        results[label] = "error"
    finally:
        sys.argv = old
    print(f"==== {label}: {results[label]}", flush=True)


def copy_fixture(name, dst):
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(os.path.join(FIXV, name), dst)
    for f in ("reference.json", "reference.bin"):
        os.remove(os.path.join(dst, f))


def set_text_arch(d, arch):
    p = os.path.join(d, "config.json")
    cfg = json.load(open(p))
    cfg["text_config"]["architectures"] = [arch]
    json.dump(cfg, open(p, "w"), indent=2)


CONVERT = os.path.join(LL, "convert_hf_to_gguf.py")
LEGACY = os.path.join(LL, "tools", "mtmd", "legacy-models")


def smolvlm(name):
    d = os.path.join(W, name)
    o = os.path.join(OUT, name)
    os.makedirs(o, exist_ok=True)
    copy_fixture(name, d)
    run(f"{name} mmproj", CONVERT, [d, "--mmproj", "--outtype", "f32", "--outfile", os.path.join(o, "mmproj.gguf")])
    set_text_arch(d, "VLlama3ForCausalLM")
    PRE["name"] = "smollm"
    run(f"{name} text", CONVERT, [d, "--outtype", "f32", "--outfile", os.path.join(o, "text.gguf")])


def module_tree(sd):
    """A module tree holding sd under its dotted names (a ModuleList where the next part is an index): the shape
    the legacy script reads (state_dict() and vision_model.encoder.layers), nothing else."""
    root = torch.nn.Module()
    for name, t in sd.items():
        parts = name.split(".")
        m = root
        for i, p in enumerate(parts[:-1]):
            if isinstance(m, torch.nn.ModuleList):
                while len(m) <= int(p):
                    m.append(torch.nn.Module())
                m = m[int(p)]
            else:
                if p not in m._modules:
                    m.add_module(p, torch.nn.ModuleList() if parts[i + 1].isdigit() else torch.nn.Module())
                m = m._modules[p]
        if t.is_floating_point():
            m.register_parameter(parts[-1], torch.nn.Parameter(t.clone(), requires_grad=False))
        else:
            m.register_buffer(parts[-1], t.clone())
    return root


def legacy_clip_vision_model():
    """The legacy encoder script does CLIPVisionModel.from_pretrained(vit) and then reads model.vision_model and
    model.state_dict() (transformers 4's shape: the tower under .vision_model, keys vision_model.*). The patch is
    on the class object itself (its from_pretrained), so it holds however the script's `from transformers import
    CLIPVisionModel` resolves; the model it returns has that shape and is checked to hold exactly llava.clip's
    tensors (same names, same values) before the script sees it."""
    from transformers.models.clip import modeling_clip
    cls = modeling_clip.CLIPVisionModel
    orig = cls.from_pretrained  # bound classmethod

    class Legacy(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.vision_model = inner

    def check(model, want, how):
        got = model.state_dict()
        missing = sorted(k for k in set(want) - set(got) if not k.endswith("position_ids"))
        extra = sorted(k for k in set(got) - set(want) if not k.endswith("position_ids"))
        bad = [k for k in want if k in got and not k.endswith("position_ids") and
               not (want[k].shape == got[k].shape and torch.equal(want[k].float(), got[k].float()))]
        print(f"legacy shim [{how}]: {len(got)} tensors, missing {missing[:4]}, extra {extra[:4]}, "
              f"differing {bad[:4]}", flush=True)
        return not (missing or extra or bad)

    def from_pretrained(d, *a, **kw):
        print("legacy shim: CLIPVisionModel.from_pretrained", d, flush=True)
        want = torch.load(os.path.join(d, "pytorch_model.bin"), map_location="cpu")
        try:
            inner = orig(d, *a, **kw)
        except Exception:
            traceback.print_exc()
            inner = None
        if inner is not None:
            inner.eval()
            if "vision_model" in inner._modules and check(inner, want, "transformers' own, has .vision_model"):
                return inner
            m = Legacy(inner.vision_model if "vision_model" in inner._modules else inner).eval()
            if check(m, want, f"{type(inner).__name__} under .vision_model"):
                return m
        m = module_tree(want).eval()
        if not check(m, want, "llava.clip's tensors as a module tree"):
            raise RuntimeError("legacy shim: no model holding llava.clip's tensors")
        return m

    cls.from_pretrained = staticmethod(from_pretrained)
    import transformers
    print("legacy shim installed on", cls.__module__, cls.__qualname__, "transformers", transformers.__version__,
          "same class via transformers:", transformers.CLIPVisionModel is cls, flush=True)


def llava_next():
    legacy_clip_vision_model()
    d = os.path.join(W, "llava_next")
    o = os.path.join(OUT, "llava_next")
    os.makedirs(o, exist_ok=True)
    copy_fixture("llava_next", d)
    # the Hub layout of llava-hf/llava-v1.6-*-hf (transformers 4 naming): vision_tower.vision_model.*
    st = os.path.join(d, "model.safetensors")
    t = load_file(st)
    t = {("vision_tower.vision_model." + k[len("vision_tower."):] if k.startswith("vision_tower.") else k): v
         for k, v in t.items()}
    save_file(t, st, metadata={"format": "pt"})
    run("llava surgery", os.path.join(LEGACY, "llava_surgery_v2.py"), ["-C", "-m", d])
    cfg = json.load(open(os.path.join(d, "config.json")))
    v = dict(cfg["vision_config"])
    v.update({"architectures": ["CLIPVisionModel"], "model_type": "clip_vision_model",
              "image_grid_pinpoints": cfg["image_grid_pinpoints"], "image_aspect_ratio": "anyres",
              "mm_patch_merge_type": "spatial_unpad", "mm_projector_type": "mlp2x_gelu",
              "image_crop_resolution": v["image_size"], "image_split_resolution": v["image_size"]})
    for variant, extra, args in (("f32", {}, ["--use-f32"]), ("f16", {}, []),
                                 ("fl", {"vision_feature_layer": -2}, ["--use-f32"])):
        vit = os.path.join(W, "vit_" + variant)
        shutil.rmtree(vit, ignore_errors=True)
        os.makedirs(vit)
        shutil.copy(os.path.join(d, "llava.clip"), os.path.join(vit, "pytorch_model.bin"))
        shutil.copy(os.path.join(d, "llava.projector"), vit)
        json.dump({**v, **extra}, open(os.path.join(vit, "config.json"), "w"), indent=2)
        run(f"llava encoder {variant}", os.path.join(LEGACY, "convert_image_encoder_to_gguf.py"),
            ["-m", vit, "--llava-projector", os.path.join(vit, "llava.projector"), "--output-dir", vit,
             "--clip-model-is-vision"] + args)
        for f in os.listdir(vit):
            if f.endswith(".gguf"):
                shutil.copy(os.path.join(vit, f), os.path.join(o, f"mmproj-{variant}.gguf"))


def llava_text():
    """The LLaVA text half through convert_hf_to_gguf.py (not token-exact for the tiny tokenizer: see above)."""
    td = os.path.join(W, "llava_text")
    o = os.path.join(OUT, "llava_next")
    os.makedirs(o, exist_ok=True)
    copy_fixture("llava_next", td)
    set_text_arch(td, "MistralForCausalLM")
    PRE["name"] = "llama-bpe"
    run("llava text", CONVERT, [td, "--outtype", "f32", "--outfile", os.path.join(o, "text.gguf")])


def llava_references():
    """transformers on the weights as the legacy mmproj files store them."""
    sys.argv = ["make_vision_fixtures.py", W]
    sys.path.insert(0, "tools")
    import make_vision_fixtures as mvf
    from transformers import (LlavaNextForConditionalGeneration, LlavaNextProcessor, PreTrainedTokenizerFast)
    from transformers.models.llava_next.image_processing_pil_llava_next import LlavaNextImageProcessorPil
    fx = os.path.join(FIXV, "llava_next")
    cfg = json.load(open(os.path.join(fx, "config.json")))
    tok = PreTrainedTokenizerFast(tokenizer_file="tests/fixtures/tokenizers/sp_legacy/tokenizer.json",
                                  bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    pins = cfg["image_grid_pinpoints"]
    ip = LlavaNextImageProcessorPil(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56},
                                    image_grid_pinpoints=pins)
    proc = LlavaNextProcessor(image_processor=ip, tokenizer=tok, patch_size=14,
                              vision_feature_select_strategy="default", chat_template=mvf.LLAVA_MISTRAL_TEMPLATE,
                              num_additional_image_tokens=1)
    image_token_id = tok.convert_tokens_to_ids("<image>")
    ref0 = json.load(open(os.path.join(fx, "reference.json")))
    for label, rule in (("f32file", lambda n, p: "patch_embedding.weight" in n or
                         ("multi_modal_projector" in n and n.endswith("weight"))),
                        ("f16file", lambda n, p: ("vision_tower" in n and p.dim() >= 2) or
                         ("multi_modal_projector" in n and n.endswith("weight")))):
        model = LlavaNextForConditionalGeneration.from_pretrained(fx, attn_implementation="eager").eval()
        rounded = []
        with torch.no_grad():
            for n, p in model.named_parameters():
                if rule(n, p):
                    p.copy_(p.half().float())
                    rounded.append(n)
        print(label, "rounded to f16:", rounded, flush=True)
        d = os.path.join(W, "ref_" + label)
        os.makedirs(d, exist_ok=True)
        mvf.record_cases("llava_next", d, model, proc, image_token_id, [2], "palette.png", False,
                         lambda inputs: {"image_sizes": inputs["image_sizes"].tolist()})
        got = json.load(open(os.path.join(d, "reference.json")))
        for a, b in zip(ref0["cases"], got["cases"]):
            diff = max(abs(x - y) for x, y in zip(a["first_logits"], b["first_logits"]))
            print(label, a["name"], "max |logit - fixture logit|", diff, "ids same", a["generated_ids"] ==
                  b["generated_ids"], "input ids same", a["input_ids"] == b["input_ids"], flush=True)
        o = os.path.join(OUT, "llava_next")
        shutil.copy(os.path.join(d, "reference.json"), os.path.join(o, f"reference_{label}.json"))
        shutil.copy(os.path.join(d, "reference.bin"), os.path.join(o, f"reference_{label}.bin"))
    results["llava references"] = "ok"


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    steps = {"smolvlm": lambda: smolvlm("smolvlm"), "idefics3": lambda: smolvlm("idefics3"),
             "llava_next": llava_next, "llava_references": llava_references, "llava_text": llava_text}
    for step in [steps[a] for a in sys.argv[3:]] or [v for k, v in steps.items() if k != "llava_text"]:
        try:
            step()
        except Exception:
            traceback.print_exc()
    print("RESULTS", json.dumps(results), flush=True)
