#!/usr/bin/env python3
"""Reference fixtures for vlmchat's text core, made with HF tokenizers/transformers.

Runs on the device machine (CPU is enough): `python3 tools/make_text_fixtures.py OUTDIR`.
Writes, under OUTDIR:
  tokenizers/<name>/tokenizer.json (+ tokenizer_config.json)   four tokenizers of the kinds
        vlmchat supports (SentencePiece-style BPE with byte fallback, in the normalizer form and
        the Metaspace form; GPT-2 byte-level BPE, SmolLM2-style and Llama-3-style regex split)
  tokenizer_vectors.json     encode/decode results of the `tokenizers` library on a varied text set
  models/<name>/             tiny random Llama / Mistral / Phi-3 (longrope) models, save_pretrained
  models/<name>/reference.json   chat-templated prompt ids, greedy ids from generate(), logits
The models get random weights rounded to their storage dtype, so that a float32 forward pass
over the stored weights is exactly the model transformers ran.
"""
import json
import math
import os
import sys

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Phi3Config,
                          Phi3ForCausalLM, PreTrainedTokenizerFast)

OUT = sys.argv[1] if len(sys.argv) > 1 else "fixtures_out"

CORPUS = """The quick brown fox jumps over the lazy dog. A red circle sits left of a blue square.
How many triangles are there? There are three triangles and two circles in the picture.
What is the capital of France? Paris is the capital of France, and Berlin is the capital of Germany.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 3.14159 -17 1,000,000 and 12:30.
I'm sure you're right; we'll see. They've gone, it's late, don't worry, she'd know.
Code: for (int i = 0; i < 10; i++) { sum += i; } return sum; def f(x): return x * 2
Café, naïve, résumé, Ünïcödé, façade, jalapeño, smörgåsbord, São Paulo.
中文字符测试，你好世界。日本語のテキスト。한국어 텍스트. Привет, мир! Γειά σου κόσμε.
Emoji: 😀 👍 🎉 ❤️ 🐱 and a family 👨‍👩‍👧 in the image.
Describe the image in one sentence. The image shows a green triangle above a yellow star.
Tabs\tand  double  spaces,   triple spaces, and newlines
between lines.
Please answer briefly. Yes. No. Maybe. The answer is 7.
A small language model answers questions about shapes, colours, counts and positions.
Once upon a time there was a tiny model that wanted to see the world through pictures.
"""

TEST_TEXTS = [
    "Hello world",
    "What is the capital of France?",
    "  leading spaces",
    "trailing spaces   ",
    "tabs\tand\nnewlines\n\nand\r\nwindows lines",
    "digits 1234567 and 3.14159 and 1,000,000",
    "emoji 😀👍🏽 family 👨‍👩‍👧 flags 🇫🇷",
    "中文字符测试，你好世界",
    "Ünïcödé café naïve e\u0301 combining",
    "special <|im_start|> inside <|im_end|> text",
    "<s> and </s> tokens <unk>",
    "<|user|>\nHi<|end|>\n<|assistant|>\n",
    "don't I'll we're THEY'VE it's",
    "code: for (int i=0;i<10;i++) {x+=i;}",
    "",
    " ",
    "\n",
    "   \n\n   ",
    "rare bytes: ʘ ÿ ǅ ☃ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "a" * 50,
    "The quick brown fox jumps over the lazy dog. " * 3,
    "mixed123abc456 x2y3 99bottles",
    "punctuation!!! ??? ... --- ''' \"quoted\"",
]


def corpus_lines():
    lines = [l for l in CORPUS.split("\n") if l]
    return lines * 20


def trained_bpe(normalizer, pre_tokenizer, vocab_size, alphabet=None, specials=()):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False, special_tokens=list(specials),
                                  initial_alphabet=alphabet or [])
    tok.train_from_iterator(corpus_lines(), trainer)
    return tok


def model_vocab_merges(tok):
    m = json.loads(tok.to_str())["model"]
    merges = [tuple(x) if isinstance(x, list) else tuple(x.split(" ", 1)) for x in m["merges"]]
    return m["vocab"], merges


SP_SPECIALS = ["<unk>", "<s>", "</s>"]
PHI3_ADDED = ["<|endoftext|>", "<|assistant|>", "<|placeholder1|>", "<|end|>", "<|system|>", "<|user|>"]


def sentencepiece_bpe(metaspace):
    """Llama/Mistral/Phi-3 style: <unk> <s> </s>, then <0x00>..<0xFF>, then merged pieces."""
    if metaspace:
        norm, pre = None, pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    else:
        norm, pre = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]), None
    base = trained_bpe(normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]), None, 420)
    trained_vocab, merges = model_vocab_merges(base)
    vocab = {s: i for i, s in enumerate(SP_SPECIALS)}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for piece, _ in sorted(trained_vocab.items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    if norm is not None:
        tok.normalizer = norm
    if pre is not None:
        tok.pre_tokenizer = pre
    dec = [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
    if not metaspace:
        dec.append(decoders.Strip(" ", 1, 0))
        tok.decoder = decoders.Sequence(dec)
    else:
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SP_SPECIALS])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    return tok


def bytelevel_bpe(llama3_regex):
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    if llama3_regex:
        pat = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
        pre = pre_tokenizers.Sequence([
            pre_tokenizers.Split(pattern=__import__("tokenizers").Regex(pat), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    else:
        pre = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                       pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True,
                                                                use_regex=True)])
    tok = trained_bpe(None, pre, 560, alphabet=pre_tokenizers.ByteLevel.alphabet(), specials=specials)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


CHATML_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
                   "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                   "{% endif %}")
MISTRAL_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
                    "{{ message['content'] + eos_token }}{% endif %}{% endfor %}")
PHI3_TEMPLATE = ("{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content'] + "
                 "'<|end|>\n' }}{% endfor %}{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}"
                 "{{- '<|assistant|>\n' -}}{% endif %}")


def fast_tokenizer(tok, **kw):
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kw)


def build_tokenizers():
    toks = {}
    sp = sentencepiece_bpe(metaspace=False)
    toks["sp_legacy"] = fast_tokenizer(sp, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                       chat_template=MISTRAL_TEMPLATE)
    spm = sentencepiece_bpe(metaspace=True)
    toks["sp_metaspace"] = fast_tokenizer(spm, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    phi = sentencepiece_bpe(metaspace=False)
    phi.add_special_tokens([AddedToken("</s>", special=True, normalized=False, rstrip=True)])
    # as in Phi-3's own tokenizer.json: the chat tokens strip whitespace to their right
    phi.add_special_tokens([AddedToken(s, special=True, normalized=False, rstrip=(s != "<|endoftext|>"))
                            for s in PHI3_ADDED])
    toks["sp_phi3"] = fast_tokenizer(phi, bos_token="<s>", eos_token="<|endoftext|>", unk_token="<unk>",
                                     pad_token="<|endoftext|>", chat_template=PHI3_TEMPLATE)
    bl = bytelevel_bpe(llama3_regex=False)
    toks["bytelevel_smollm"] = fast_tokenizer(bl, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                              unk_token="<|endoftext|>", pad_token="<|im_end|>",
                                              chat_template=CHATML_TEMPLATE)
    l3 = bytelevel_bpe(llama3_regex=True)
    toks["bytelevel_llama3"] = fast_tokenizer(l3, bos_token="<|endoftext|>", eos_token="<|im_end|>")
    return toks


def tokenizer_vectors(toks):
    out = {}
    for name, t in toks.items():
        t.save_pretrained(os.path.join(OUT, "tokenizers", name))
        cases = []
        for text in TEST_TEXTS:
            plain = t(text, add_special_tokens=False)["input_ids"]
            special = t(text, add_special_tokens=True)["input_ids"]
            cases.append({"text": text, "ids": plain, "ids_with_special": special,
                          "decoded": t.decode(plain, skip_special_tokens=False),
                          "decoded_skip_special": t.decode(plain, skip_special_tokens=True),
                          "pieces": t.convert_ids_to_tokens(plain)})
        out[name] = cases
    with open(os.path.join(OUT, "tokenizer_vectors.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)


def randomize(model, seed):
    """Weights with unit-scale activations so greedy decoding has clear margins."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / math.sqrt(p.shape[1])))


def round_to(model, dtype):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(dtype).to(torch.float32))


def legacy_config(cfg):
    """The same config with the older rope_theta / rope_scaling keys instead of rope_parameters."""
    c = dict(cfg)
    rp = c.pop("rope_parameters", None)
    if rp is None:
        return c
    rp = dict(rp)
    c["rope_theta"] = rp.pop("rope_theta", 10000.0)
    rt = rp.pop("rope_type", "default")
    if rt != "default":
        rp.pop("original_max_position_embeddings", None)
        c["rope_scaling"] = dict({"type": rt}, **rp)
    return c


CONVERSATIONS = {
    "short": [{"role": "user", "content": "What is the capital of France?"}],
    "multi": [{"role": "user", "content": "Count: 1 2 3"}, {"role": "assistant", "content": "4 5 6"},
              {"role": "user", "content": "Now tell me a story about a café 😀"}],
    "long": [{"role": "user", "content": "Describe the image in one sentence. The image shows a green triangle "
              "above a yellow star, a red circle sits left of a blue square, and there are three triangles "
              "and two circles in the picture. How many shapes are there in total?"}],
}


def greedy_full_forward(model, ids, n_new, eos_ids):
    """Greedy decoding where every step is one transformers forward over the whole sequence, no cache.

    Used for Phi-3 LongRoPE: transformers 5.17's Phi3ForCausalLM.prepare_inputs_for_generation drops the
    cache when the sequence first crosses original_max_position_embeddings, but generate() then feeds only
    the newest token, so every later step runs without any context (checked: its logits equal a lone
    one-token forward). The intended behaviour -- recompute everything under the long factors -- is what a
    full forward gives, so that is the reference for prompts whose generation crosses the boundary."""
    seq = list(ids)
    logits = []
    for _ in range(n_new):
        with torch.no_grad():
            l = model(torch.tensor([seq])).logits[0, -1].float()
        logits.append(l.clone())
        masked = l.clone()
        masked[eos_ids] = float("-inf")
        seq.append(int(torch.argmax(masked)))
    return seq[len(ids):], logits


def make_reference(name, model, tok, convs, n_new, eos_ids, full_forward=False):
    model.eval()
    refs = []
    for cname in convs:
        conv = CONVERSATIONS[cname]
        text = tok.apply_chat_template(conv, add_generation_prompt=True, tokenize=False)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        inp = torch.tensor([ids])
        if full_forward:
            gen, steps = greedy_full_forward(model, ids, n_new, eos_ids)
        else:
            with torch.no_grad():
                out = model.generate(inp, attention_mask=torch.ones_like(inp), max_new_tokens=n_new,
                                     min_new_tokens=n_new, do_sample=False, eos_token_id=eos_ids,
                                     pad_token_id=eos_ids[0], return_dict_in_generate=True, output_logits=True)
            gen = out.sequences[0, len(ids):].tolist()
            steps = [l[0].float() for l in out.logits]
        margins = []
        for l in steps:
            top = torch.topk(l, 2).values
            margins.append(float(top[0] - top[1]))
        refs.append({"conversation": cname, "method": "full_forward" if full_forward else "generate",
                     "messages": conv, "prompt_text": text, "prompt_ids": ids,
                     "generated_ids": gen, "first_logits": [round(float(x), 6) for x in steps[0]],
                     "last_logits": [round(float(x), 6) for x in steps[-1]],
                     "min_margin": min(margins)})
        print(name, cname, "prompt", len(ids), "gen", gen[:12], "min margin %.4f" % min(margins), flush=True)
    return refs


def save_model(name, model, tok, refs, dtype, eos_ids, shard=None):
    d = os.path.join(OUT, "models", name)
    model.generation_config.eos_token_id = eos_ids
    model.generation_config.do_sample = False
    kw = {"max_shard_size": shard} if shard else {}
    model.to(dtype).save_pretrained(d, **kw)
    model.to(torch.float32)
    tok.save_pretrained(d)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(d, "legacy_config.json"), "w") as f:
        json.dump(legacy_config(cfg), f, indent=2)
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump({"model": name, "eos_ids": eos_ids, "cases": refs}, f, ensure_ascii=False)


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    toks = build_tokenizers()
    tokenizer_vectors(toks)
    common = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                  rms_norm_eps=1e-5, attn_implementation="eager")

    t = toks["bytelevel_smollm"]
    eos = [t.convert_tokens_to_ids("<|im_end|>"), t.convert_tokens_to_ids("<|endoftext|>")]
    cfg = LlamaConfig(vocab_size=len(t), num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
                      bos_token_id=t.bos_token_id, eos_token_id=eos[0], **common)
    m = LlamaForCausalLM(cfg)
    randomize(m, 1)
    round_to(m, torch.float16)
    refs = make_reference("llama", m, t, ["short", "multi"], 32, eos)
    save_model("llama", m, t, refs, torch.float16, eos)

    t = toks["sp_legacy"]
    eos = [t.eos_token_id]
    cfg = MistralConfig(vocab_size=len(t), num_key_value_heads=1, max_position_embeddings=512, sliding_window=24,
                        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, rope_theta=1e6, **common)
    m = MistralForCausalLM(cfg)
    randomize(m, 2)
    round_to(m, torch.bfloat16)
    refs = make_reference("mistral", m, t, ["short", "multi"], 32, eos)
    save_model("mistral", m, t, refs, torch.bfloat16, eos)

    t = toks["sp_phi3"]
    eos = [t.convert_tokens_to_ids("<|endoftext|>"), t.convert_tokens_to_ids("<|end|>")]
    hd = 64 // 4
    short = [1.0 + 0.05 * i for i in range(hd // 2)]
    long = [1.0 + 1.5 * i for i in range(hd // 2)]
    rp = {"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": short, "long_factor": long,
          "original_max_position_embeddings": 48}
    try:
        cfg = Phi3Config(vocab_size=len(t), num_key_value_heads=2, max_position_embeddings=192,
                         original_max_position_embeddings=48, rope_parameters=rp, tie_word_embeddings=False,
                         bos_token_id=1, eos_token_id=eos[0], pad_token_id=eos[0], **common)
    except TypeError:
        cfg = Phi3Config(vocab_size=len(t), num_key_value_heads=2, max_position_embeddings=192,
                         original_max_position_embeddings=48, rope_theta=10000.0,
                         rope_scaling={"type": "longrope", "short_factor": short, "long_factor": long},
                         tie_word_embeddings=False, bos_token_id=1, eos_token_id=eos[0], pad_token_id=eos[0],
                         **common)
    m = Phi3ForCausalLM(cfg)
    randomize(m, 3)
    refs = make_reference("phi3", m, t, ["short", "long", "multi"], 40, eos, full_forward=True)
    save_model("phi3", m, t, refs, torch.float32, eos, shard="300KB")


def gguf_references():
    """llama.cpp-shaped GGUF files of two fixture models and transformers' outputs for the weights they store."""
    import numpy as np
    from gguf_llamacpp import convert
    out_dir = os.path.join(OUT, "gguf")
    os.makedirs(out_dir, exist_ok=True)
    refs = {}
    for name, cls, outtype in (("llama", LlamaForCausalLM, "f16"), ("llama", LlamaForCausalLM, "q8_0"),
                               ("phi3", Phi3ForCausalLM, "f16"), ("phi3", Phi3ForCausalLM, "q8_0")):
        model_dir = os.path.join(OUT, "models", name)
        fname = f"{name}-{outtype}.gguf"
        stored = convert(model_dir, os.path.join(out_dir, fname), outtype)
        model = cls.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in stored.items()}
        if model.config.tie_word_embeddings:
            state["lm_head.weight"] = state["model.embed_tokens.weight"]
        missing = model.load_state_dict(state, strict=False)
        assert not [k for k in missing.missing_keys if k != "lm_head.weight"], missing
        ref = json.load(open(os.path.join(model_dir, "reference.json")))
        case = ref["cases"][0]
        ids = case["prompt_ids"]
        gen, steps = greedy_full_forward(model, ids, 16, ref["eos_ids"])
        refs[fname] = {"model": name, "prompt_ids": ids, "generated_ids": gen,
                       "first_logits": [round(float(x), 6) for x in steps[0]]}
        print(fname, "gen", gen[:8], flush=True)
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(refs, f)


if __name__ == "__main__":
    main()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    gguf_references()
