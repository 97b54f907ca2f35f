/* cli.h - command-line options of vlmchat and their parsing. */
#ifndef VC_APP_CLI_H
#define VC_APP_CLI_H

#include <stdbool.h>

#include "text/sampler.h"

typedef enum { VC_CMD_RUN, VC_CMD_CONVERT, VC_CMD_EVAL, VC_CMD_BENCH, VC_CMD_TEMPLATE, VC_CMD_HELP, VC_CMD_VERSION } vc_command;

#define VC_MAX_IMAGES 16
#define VC_MAX_VARS 32

typedef struct {
    vc_command command;
    const char *images[VC_MAX_IMAGES];   /* --image, in order */
    int n_images;
    const char *model;
    const char *prompt;
    const char *system;
    const char *template_name; /* --template: a Jinja file, or a built-in format's name */
    const char *template_file; /* template subcommand: the template to render */
    const char *messages;      /* --messages: a JSON file of OpenAI-style messages */
    const char *tools;         /* --tools: a JSON file of tool schemas */
    const char *bos, *eos;     /* template: --bos/--eos token texts */
    const char *vars[VC_MAX_VARS]; /* template: --var NAME=JSON, in order */
    int n_vars;
    bool no_gen_prompt;        /* template: --no-generation-prompt */
    bool print_prompt;         /* --print-prompt: print the rendered prompt and exit */
    const char *out;           /* convert: output file */
    const char *out_type;      /* convert: tensor type */
    const char *eval_file;     /* eval: the questions */
    const char *bench_arch;    /* bench: which model dimensions */
    const char *quant;         /* --quant: quantize float weights at load */
    const char *mmproj;        /* --mmproj: the vision half of a GGUF model */
    bool no_mmproj;            /* --no-mmproj: a GGUF text model alone, no mmproj paired */
    bool float_act;            /* --float-act: float activations on quantized weights (the reference's arithmetic) */
    bool int8_dot;             /* --int8-dot: also float vision towers requantized to Q8_0 for the integer kernels */
    float min_accuracy;        /* eval: fail below this */
    const char *preview;       /* --preview auto|sixel|blocks|none */
    bool no_status;            /* --no-status */
    size_t mem_limit;          /* --mem-limit in bytes (0: none) */
    int max_tokens;
    int n_ctx;
    int threads;
    bool ignore_eos, json, whole_input, raw, verbose;
    const char *task;          /* --task caption|query|detect|point, or NULL */
    int max_objects;           /* --max-objects (default 50) */
    /* --serve and its options */
    const char *serve;         /* [HOST:]PORT, or NULL */
    const char *api_key;       /* --api-key, else $VLMCHAT_API_KEY */
    const char *allow_files;   /* directory local image paths may be under */
    int queue;                 /* waiting requests (default 8) */
    size_t max_body;           /* request body limit (default 32M) */
    size_t max_image_pixels;   /* per image (default 16M) */
    bool set_max_tokens;
    vc_sampler_params sampling;
    /* which sampling fields were given on the command line */
    bool set_temp, set_top_p, set_top_k, set_min_p, set_repeat_penalty;
} vc_cli;

/* Parses argv. On a usage error records a message (exit class VC_EXIT_USAGE)
 * and returns -1. */
int vc_cli_parse(int argc, char **argv, vc_cli *cli);
/* The --help text. */
const char *vc_cli_usage(void);

#endif
