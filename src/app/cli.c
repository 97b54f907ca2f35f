/* cli.c - see include/app/cli.h */
#define _POSIX_C_SOURCE 200809L
#include "app/cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "tui/preview.h"

const char *vc_cli_usage(void)
{
    return "usage: vlmchat [options]                      answer prompts (from --prompt or stdin lines)\n"
           "       vlmchat convert --model DIR --out FILE.gguf [--type TYPE]\n"
           "       vlmchat eval FILE.jsonl [options]              accuracy, latency and speed on a question set\n"
           "       vlmchat template FILE [--messages M.json] [--tools T.json] [--bos TEXT] [--eos TEXT]\n"
           "                        [--no-generation-prompt] [--var NAME=JSON]   print a chat template's rendering\n"
           "       vlmchat bench [MODEL] [--quant TYPE] [--float-act] [--json]   speed and memory on a random-weight model of real\n"
           "                                                      dimensions: smolvlm-256m (default), smolvlm-2b, phi3-mini,\n"
           "                                                      moondream2, phi3.5-vision; or a model of yours (as --model)\n"
           "\n"
           "model:\n"
           "  -m, --model PATH|NAME   HF model directory, GGUF file, or a name under configs/ (default: demo)\n"
           "      --quant TYPE        quantize float weights at load: q8_0, q4_0, mlx4_g64, f16, bf16\n"
           "      --mmproj FILE       a GGUF model's vision half (llama.cpp mmproj file; default: the one\n"
           "                          *mmproj*.gguf beside the model file)\n"
           "      --no-mmproj         a GGUF text model alone: no mmproj file paired with it\n"
           "      --ctx N             context size in tokens (default: min(model max, 4096))\n"
           "      --template FILE     Jinja chat template to use instead of the model's; or a built-in format:\n"
           "                          chatml, phi3, mistral, llama2, llama3, llava-mistral, idefics3, raw\n"
           "      --threads N         worker threads (default: all CPUs)\n"
           "      --float-act         float activations on quantized weights (default: 8-bit, as llama.cpp):\n"
           "                          slower, logits within 1e-4 of transformers on the dequantized weights\n"
           "      --int8-dot          8-bit activations also for a float vision tower (requantized to Q8_0)\n"
           "prompting:\n"
           "  -p, --prompt TEXT       the prompt; without it, each stdin line is one\n"
           "      --whole-input       all of stdin is one prompt\n"
           "      --system TEXT       system message\n"
           "      --raw               no chat template: the prompt text as is (images at its <image> placeholders)\n"
           "      --messages FILE     the conversation as an OpenAI-style JSON messages array (string or parts\n"
           "                          content, image_url parts as file paths or data: URLs); the model answers it\n"
           "      --tools FILE        JSON array of tool schemas passed to the chat template\n"
           "      --print-prompt      print the rendered prompt of the request and exit\n"
           "  -i, --image FILE        attach an image (JPEG or PNG; repeat for several, in order)\n"
           "generation:\n"
           "  -n, --max-tokens N      most tokens to generate (default 256)\n"
           "      --temp F            temperature; 0 is greedy (default from the model, else 0.7)\n"
           "      --top-k N           keep the N most likely tokens (0: off)\n"
           "      --top-p F           nucleus sampling mass (1: off)\n"
           "      --min-p F           drop tokens below F x the best probability (0: off)\n"
           "      --repeat-penalty F  penalize repeated tokens (1: off)\n"
           "      --seed N            sampling seed (default 0)\n"
           "      --ignore-eos        never stop at end of sequence: exactly --max-tokens tokens\n"
           "output:\n"
           "      --json              one JSON object per prompt: text, tokens, timings, memory\n"
           "      --task TASK         a skill on the one --image (Moondream2): caption (--prompt short, normal\n"
           "                          or long), query (--prompt the question), detect or point (--prompt the\n"
           "                          object); --json gives boxes and points normalized and in pixels\n"
           "      --max-objects N     detect/point: most objects listed (default 50)\n"
           "  -v, --verbose           model and timing details on stderr\n"
           "      --min-accuracy F    eval: exit 1 if the accuracy is below F (0..1)\n"
           "server (OpenAI-compatible HTTP API):\n"
           "      --serve [HOST:]PORT serve /v1/chat/completions, /v1/models, /health, /stats\n"
           "                          (HOST defaults to 127.0.0.1: loopback only)\n"
           "      --api-key KEY       require 'Authorization: Bearer KEY' (default: $VLMCHAT_API_KEY)\n"
           "      --allow-files DIR   accept image paths (file://) under DIR, besides data: URLs\n"
           "      --queue N           requests waiting beyond the running one before 429 (default 8)\n"
           "      --max-body SIZE     request body limit (default 32M)\n"
           "      --max-image-pixels N  width x height limit per image (default 16M)\n"
           "interactive (a terminal and no --prompt):\n"
           "      --preview MODE      image previews: auto, sixel, blocks, none (NO_COLOR: none)\n"
           "      --no-status         no status bar\n"
           "      --mem-limit SIZE    memory budget, e.g. 2G or 512M (default: cgroup limit or available)\n"
           "  -h, --help              this text\n"
           "      --version           version\n"
           "template:\n"
           "      --bos TEXT, --eos TEXT  bos_token and eos_token of the rendering\n"
           "      --no-generation-prompt  add_generation_prompt=false\n"
           "      --var NAME=JSON     one more template variable (repeatable)\n"
           "convert:\n"
           "      --out FILE          GGUF file to write\n"
           "      --type TYPE         f32, f16, bf16, q8_0, q4_0, q5_0, q5_1, q4_k, q5_k, q6_k, or\n"
           "                          llama.cpp's mixes q4_k_m, q5_k_m (default f16)\n";
}

static int parse_int(const char *opt, const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return vc_fail_code(VC_EXIT_USAGE, "%s expects an integer in %ld..%ld, got '%s'", opt, lo, hi, s);
    *out = (int)v;
    return 0;
}

static int parse_float(const char *opt, const char *s, double lo, double hi, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return vc_fail_code(VC_EXIT_USAGE, "%s expects a number in %g..%g, got '%s'", opt, lo, hi, s);
    *out = (float)v;
    return 0;
}

enum {
    OPT_CTX = 256, OPT_TEMPLATE, OPT_THREADS, OPT_WHOLE, OPT_SYSTEM, OPT_RAW, OPT_TEMP, OPT_TOPK, OPT_TOPP,
    OPT_MINP, OPT_REPEAT, OPT_SEED, OPT_IGNORE_EOS, OPT_JSON, OPT_VERSION, OPT_OUT, OPT_TYPE, OPT_QUANT, OPT_MIN_ACC,
    OPT_PREVIEW, OPT_NO_STATUS, OPT_MEM_LIMIT, OPT_SERVE, OPT_API_KEY, OPT_ALLOW_FILES, OPT_QUEUE, OPT_MAX_BODY,
    OPT_MAX_IMAGE_PIXELS, OPT_INT8_DOT, OPT_FLOAT_ACT, OPT_MESSAGES, OPT_TOOLS, OPT_BOS, OPT_EOS, OPT_NO_GEN, OPT_VAR,
    OPT_PRINT_PROMPT, OPT_MMPROJ, OPT_NO_MMPROJ, OPT_TASK, OPT_MAX_OBJECTS
};

/* "512M", "2G", "100000" (bytes) */
static int parse_size(const char *opt, const char *s, size_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mult = *end == 'K' || *end == 'k' ? 1024.0 : *end == 'M' || *end == 'm' ? 1048576.0
                : *end == 'G' || *end == 'g' ? 1073741824.0 : *end == 0 ? 1.0 : -1;
    if (*end && end[1] && !(end[1] == 'B' || end[1] == 'b'))
        mult = -1;
    if (errno || end == s || mult < 0 || !(v > 0) || v * mult > 1e18)
        return vc_fail_code(VC_EXIT_USAGE, "%s expects a size such as 512M or 2G, got '%s'", opt, s);
    *out = (size_t)(v * mult);
    return 0;
}

static int add_image(vc_cli *c, const char *path)
{
    if (c->n_images >= VC_MAX_IMAGES)
        return vc_fail_code(VC_EXIT_USAGE, "at most %d images (--image)", VC_MAX_IMAGES);
    c->images[c->n_images++] = path;
    return 0;
}

static int apply(vc_cli *c, int opt, const char *arg, const char *name)
{
    int seed;
    switch (opt) {
    case 'm': c->model = arg; return 0;
    case 'p': c->prompt = arg; return 0;
    case 'i': return add_image(c, arg);
    case 'n': c->set_max_tokens = true; return parse_int(name, arg, 0, 1 << 20, &c->max_tokens);
    case 'v': c->verbose = true; return 0;
    case 'h': c->command = VC_CMD_HELP; return 0;
    case OPT_VERSION: c->command = VC_CMD_VERSION; return 0;
    case OPT_CTX: return parse_int(name, arg, 1, 1 << 22, &c->n_ctx);
    case OPT_TEMPLATE: c->template_name = arg; return 0;
    case OPT_THREADS: return parse_int(name, arg, 1, 256, &c->threads);
    case OPT_WHOLE: c->whole_input = true; return 0;
    case OPT_SYSTEM: c->system = arg; return 0;
    case OPT_RAW: c->raw = true; return 0;
    case OPT_TEMP: c->set_temp = true; return parse_float(name, arg, 0, 100, &c->sampling.temperature);
    case OPT_TOPK: c->set_top_k = true; return parse_int(name, arg, 0, 1 << 24, &c->sampling.top_k);
    case OPT_TOPP: c->set_top_p = true; return parse_float(name, arg, 0, 1, &c->sampling.top_p);
    case OPT_MINP: c->set_min_p = true; return parse_float(name, arg, 0, 1, &c->sampling.min_p);
    case OPT_REPEAT: c->set_repeat_penalty = true; return parse_float(name, arg, 0.01, 100, &c->sampling.repeat_penalty);
    case OPT_SEED:
        if (parse_int(name, arg, 0, 2147483647L, &seed) != 0)
            return -1;
        c->sampling.seed = (uint64_t)seed;
        return 0;
    case OPT_IGNORE_EOS: c->ignore_eos = true; return 0;
    case OPT_JSON: c->json = true; return 0;
    case OPT_OUT: c->out = arg; return 0;
    case OPT_TYPE: c->out_type = arg; return 0;
    case OPT_QUANT: c->quant = arg; return 0;
    case OPT_MMPROJ: c->mmproj = arg; return 0;
    case OPT_NO_MMPROJ: c->no_mmproj = true; return 0;
    case OPT_MIN_ACC: return parse_float(name, arg, 0, 1, &c->min_accuracy);
    case OPT_PREVIEW:
        if (vc_preview_from_name(arg) == -2)
            return vc_fail_code(VC_EXIT_USAGE, "--preview expects auto, sixel, blocks or none, got '%s'", arg);
        c->preview = arg;
        return 0;
    case OPT_NO_STATUS: c->no_status = true; return 0;
    case OPT_INT8_DOT: c->int8_dot = true; return 0;
    case OPT_FLOAT_ACT: c->float_act = true; return 0;
    case OPT_MEM_LIMIT: return parse_size(name, arg, &c->mem_limit);
    case OPT_SERVE: c->serve = arg; return 0;
    case OPT_API_KEY: c->api_key = arg; return 0;
    case OPT_ALLOW_FILES: c->allow_files = arg; return 0;
    case OPT_QUEUE: return parse_int(name, arg, 0, 4096, &c->queue);
    case OPT_MAX_BODY: return parse_size(name, arg, &c->max_body);
    case OPT_MAX_IMAGE_PIXELS: return parse_size(name, arg, &c->max_image_pixels);
    case OPT_MESSAGES: c->messages = arg; return 0;
    case OPT_TOOLS: c->tools = arg; return 0;
    case OPT_BOS: c->bos = arg; return 0;
    case OPT_EOS: c->eos = arg; return 0;
    case OPT_NO_GEN: c->no_gen_prompt = true; return 0;
    case OPT_PRINT_PROMPT: c->print_prompt = true; return 0;
    case OPT_VAR:
        if (c->n_vars >= VC_MAX_VARS)
            return vc_fail_code(VC_EXIT_USAGE, "at most %d --var", VC_MAX_VARS);
        if (!strchr(arg, '=') || arg[0] == '=')
            return vc_fail_code(VC_EXIT_USAGE, "--var expects NAME=JSON, got '%s'", arg);
        c->vars[c->n_vars++] = arg;
        return 0;
    case OPT_TASK:
        if (strcmp(arg, "caption") && strcmp(arg, "query") && strcmp(arg, "detect") && strcmp(arg, "point"))
            return vc_fail_code(VC_EXIT_USAGE, "--task expects caption, query, detect or point, got '%s'", arg);
        c->task = arg;
        return 0;
    case OPT_MAX_OBJECTS: return parse_int(name, arg, 1, 1000, &c->max_objects);
    default: return vc_fail_code(VC_EXIT_USAGE, "unknown option (see --help)");
    }
}

int vc_cli_parse(int argc, char **argv, vc_cli *c)
{
    static const struct option longs[] = {
        { "model", required_argument, 0, 'm' }, { "prompt", required_argument, 0, 'p' },
        { "image", required_argument, 0, 'i' },
        { "max-tokens", required_argument, 0, 'n' }, { "verbose", no_argument, 0, 'v' },
        { "help", no_argument, 0, 'h' }, { "version", no_argument, 0, OPT_VERSION },
        { "ctx", required_argument, 0, OPT_CTX }, { "template", required_argument, 0, OPT_TEMPLATE },
        { "threads", required_argument, 0, OPT_THREADS }, { "whole-input", no_argument, 0, OPT_WHOLE },
        { "system", required_argument, 0, OPT_SYSTEM }, { "raw", no_argument, 0, OPT_RAW },
        { "temp", required_argument, 0, OPT_TEMP }, { "top-k", required_argument, 0, OPT_TOPK },
        { "top-p", required_argument, 0, OPT_TOPP }, { "min-p", required_argument, 0, OPT_MINP },
        { "repeat-penalty", required_argument, 0, OPT_REPEAT }, { "seed", required_argument, 0, OPT_SEED },
        { "ignore-eos", no_argument, 0, OPT_IGNORE_EOS }, { "json", no_argument, 0, OPT_JSON },
        { "out", required_argument, 0, OPT_OUT }, { "type", required_argument, 0, OPT_TYPE },
        { "quant", required_argument, 0, OPT_QUANT }, { "min-accuracy", required_argument, 0, OPT_MIN_ACC },
        { "preview", required_argument, 0, OPT_PREVIEW }, { "no-status", no_argument, 0, OPT_NO_STATUS },
        { "mem-limit", required_argument, 0, OPT_MEM_LIMIT }, { "serve", required_argument, 0, OPT_SERVE },
        { "api-key", required_argument, 0, OPT_API_KEY }, { "allow-files", required_argument, 0, OPT_ALLOW_FILES },
        { "queue", required_argument, 0, OPT_QUEUE }, { "max-body", required_argument, 0, OPT_MAX_BODY },
        { "max-image-pixels", required_argument, 0, OPT_MAX_IMAGE_PIXELS },
        { "int8-dot", no_argument, 0, OPT_INT8_DOT }, { "float-act", no_argument, 0, OPT_FLOAT_ACT }, { "messages", required_argument, 0, OPT_MESSAGES },
        { "tools", required_argument, 0, OPT_TOOLS }, { "bos", required_argument, 0, OPT_BOS },
        { "eos", required_argument, 0, OPT_EOS }, { "no-generation-prompt", no_argument, 0, OPT_NO_GEN },
        { "var", required_argument, 0, OPT_VAR }, { "print-prompt", no_argument, 0, OPT_PRINT_PROMPT },
        { "mmproj", required_argument, 0, OPT_MMPROJ }, { "no-mmproj", no_argument, 0, OPT_NO_MMPROJ },
        { "task", required_argument, 0, OPT_TASK }, { "max-objects", required_argument, 0, OPT_MAX_OBJECTS },
        { 0, 0, 0, 0 },
    };
    memset(c, 0, sizeof *c);
    c->command = VC_CMD_RUN;
    c->max_tokens = 256;
    c->max_objects = 50;   /* Moondream's DEFAULT_MAX_OBJECTS */
    c->sampling = vc_sampler_defaults();
    c->queue = 8;
    c->max_body = (size_t)32 << 20;
    c->max_image_pixels = (size_t)16 << 20;
    int first = 1;
    if (argc > 1 && strcmp(argv[1], "convert") == 0) {
        c->command = VC_CMD_CONVERT;
        first = 2;
    } else if (argc > 1 && strcmp(argv[1], "eval") == 0) {
        c->command = VC_CMD_EVAL;
        first = 2;
    } else if (argc > 1 && strcmp(argv[1], "bench") == 0) {
        c->command = VC_CMD_BENCH;
        first = 2;
    } else if (argc > 1 && strcmp(argv[1], "template") == 0) {
        c->command = VC_CMD_TEMPLATE;
        first = 2;
    }
    optind = first;
    opterr = 0;
    int opt, index = -1;
    while ((opt = getopt_long(argc, argv, ":m:p:n:i:vh", longs, &index)) != -1) {
        if (opt == '?')
            return vc_fail_code(VC_EXIT_USAGE, "unknown option '%s' (see --help)", argv[optind - 1]);
        if (opt == ':')
            return vc_fail_code(VC_EXIT_USAGE, "option '%s' needs a value", argv[optind - 1]);
        char name[64];
        if (index >= 0 && longs[index].val == opt)
            snprintf(name, sizeof name, "--%s", longs[index].name);
        else
            snprintf(name, sizeof name, "-%c", opt);
        index = -1;
        if (apply(c, opt, optarg, name) != 0)
            return -1;
    }
    if (c->command == VC_CMD_EVAL && optind < argc)
        c->eval_file = argv[optind++];
    if (c->command == VC_CMD_BENCH && optind < argc)
        c->bench_arch = argv[optind++];
    if (c->command == VC_CMD_TEMPLATE && optind < argc)
        c->template_file = argv[optind++];
    if (optind < argc)
        return vc_fail_code(VC_EXIT_USAGE, "unexpected argument '%s' (see --help)", argv[optind]);
    if (c->command == VC_CMD_TEMPLATE && !c->template_file)
        return vc_fail_code(VC_EXIT_USAGE, "template needs a FILE (a Jinja chat template)");
    if (c->command != VC_CMD_TEMPLATE && (c->bos || c->eos || c->n_vars || c->no_gen_prompt))
        return vc_fail_code(VC_EXIT_USAGE, "--bos, --eos, --var and --no-generation-prompt go with the template subcommand");
    if (c->messages && (c->prompt || c->whole_input || c->serve || c->raw))
        return vc_fail_code(VC_EXIT_USAGE, "--messages is the whole request: no --prompt, --whole-input, --raw or --serve");
    if (c->command == VC_CMD_EVAL && !c->eval_file)
        return vc_fail_code(VC_EXIT_USAGE, "eval needs a FILE.jsonl of questions");
    if (c->task && (c->serve || c->n_images != 1 || c->command != VC_CMD_RUN))
        return vc_fail_code(VC_EXIT_USAGE, "--task runs on exactly one --image, without --serve or a subcommand");
    if (c->serve && (c->prompt || c->json || c->whole_input || c->command != VC_CMD_RUN))
        return vc_fail_code(VC_EXIT_USAGE, "--serve takes requests over HTTP: no --prompt, --json, --whole-input or subcommand");
    if ((c->api_key || c->allow_files) && !c->serve)
        return vc_fail_code(VC_EXIT_USAGE, "--api-key and --allow-files go with --serve");
    if (c->float_act && c->int8_dot)
        return vc_fail_code(VC_EXIT_USAGE, "--float-act and --int8-dot contradict each other (8-bit activations are the default)");
    if (c->command == VC_CMD_CONVERT && (!c->model || !c->out))
        return vc_fail_code(VC_EXIT_USAGE, "convert needs --model DIR and --out FILE.gguf");
    return 0;
}
