/* main.c - vlmchat's entry point: parse options, load, dispatch.
 *
 * Every failure ends here as one line on stderr, "vlmchat: <what went wrong>",
 * and an exit code from the table in core/common.h (documented in the man page).
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "app/bench.h"
#include "app/cli.h"
#include "app/convert.h"
#include "app/eval.h"
#include "app/locate.h"
#include "app/repl.h"
#include "app/scripted.h"
#include "app/task.h"
#include "app/serve.h"
#include "app/template.h"
#include "core/common.h"
#include "core/kernels.h"
#include "core/int8dot.h"
#include "core/threads.h"
#include "model/llm_config.h"
#include "model/model.h"

#define VLMCHAT_VERSION "0.1.0"

static volatile sig_atomic_t interrupted;

/* The signal number: generation stops on any; the chat also quits on SIGTERM. */
static void on_signal(int sig) { interrupted = sig; }

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* a closed stdout shows up as EPIPE from write, handled where we write */
    signal(SIGPIPE, SIG_IGN);
}

static int fail(void)
{
    fprintf(stderr, "vlmchat: %s\n", vc_error());
    return vc_error_code();
}

static void describe(const vc_model *m)
{
    const vc_llm_config *c = &m->llm.cfg;
    static const char *arch[] = { "llama", "mistral", "phi3", "moondream" };
    fprintf(stderr,
            "vlmchat: %s (%s, %s): %d layers, dim %d, %d/%d heads, vocab %d, chat %s, ctx %d, %d threads, %s kernels%s%s, "
            "loaded in %.1f ms\n",
            m->path, m->format, arch[c->arch], c->n_layers, c->dim, c->n_heads, c->n_kv_heads, c->n_vocab,
            m->chat.jinja ? "template" : vc_chat_format_name(m->chat.format), m->llm.n_ctx, vc_threads_count(), vc_kernels_dot_isa(),
            vc_int8dot_enabled() ? ", int8 dot " : "", vc_int8dot_enabled() ? vc_int8dot_isa() : "", m->load_ms);
    if (m->llm.n_interleaved)
        fprintf(stderr, "vlmchat: %d weight matrices interleaved in groups of 8 rows for the integer kernels\n",
                m->llm.n_interleaved);
}

static int run(const vc_cli *cli)
{
    bool interactive = cli->command == VC_CMD_RUN && !cli->prompt && !cli->messages && !cli->print_prompt &&
                       !cli->serve && !cli->task && isatty(STDIN_FILENO);
    if (interactive && cli->json)
        return vc_fail_code(VC_EXIT_USAGE, "--json needs --prompt or prompts on standard input");
    vc_model_ref ref;
    if (vc_locate_model(cli->model, &ref) != 0)
        return -1;
    int quant = 0;
    if (cli->quant && (quant = vc_dtype_from_name(cli->quant)) <= 0)
        return vc_fail_code(VC_EXIT_USAGE, "unknown --quant type '%s' (q8_0, q4_0, mlx4_g64, f16, bf16)", cli->quant);
    /* the command line wins over a preset's defaults */
    vc_model m;
    vc_model_options opt = { .n_ctx = cli->n_ctx ? cli->n_ctx : ref.n_ctx,
                             .template_name = cli->template_name ? cli->template_name
                                              : ref.template_name[0] ? ref.template_name : NULL,
                             .quant = quant, .mem_limit = cli->mem_limit, .mmproj = cli->mmproj,
                             .no_mmproj = cli->no_mmproj };
    if (vc_model_open(ref.path, &opt, &m) != 0)
        return -1;
    if (ref.has_temperature) {
        m.sampling.temperature = ref.temperature;
        m.has_sampling_defaults = true;
    }
    for (int i = 0; i < ref.n_stop; i++)   /* a preset's stop tokens join the model's end-of-sequence ids */
        if (vc_tokenizer_find(m.tok, ref.stop[i]) >= 0)
            vc_llm_config_add_eos(&m.llm.cfg, vc_tokenizer_find(m.tok, ref.stop[i]));
    if (m.note[0])
        fprintf(stderr, "vlmchat: %s\n", m.note);
    if (cli->verbose)
        describe(&m);
    int rc = cli->command == VC_CMD_EVAL ? vc_run_eval(&m, cli, &interrupted)
             : cli->serve                 ? vc_run_serve(&m, cli, &interrupted)
             : cli->task                  ? vc_run_task(&m, cli, &interrupted)
             : interactive                ? vc_run_repl(&m, cli, &interrupted)
                                          : vc_run_scripted(&m, cli, &interrupted);
    vc_model_close(&m);
    return rc;
}

int main(int argc, char **argv)
{
    vc_cli cli;
    install_signals();
    if (vc_cli_parse(argc, argv, &cli) != 0) {
        fail();
        return VC_EXIT_USAGE;
    }
    if (cli.command == VC_CMD_HELP) {
        fputs(vc_cli_usage(), stdout);
        return 0;
    }
    if (cli.command == VC_CMD_VERSION) {
        printf("vlmchat %s\n", VLMCHAT_VERSION);
        return 0;
    }
    if (cli.command == VC_CMD_TEMPLATE)
        return vc_run_template(&cli) == 0 ? 0 : fail();
    if (vc_threads_init(cli.threads) != 0)
        return fail();
    vc_int8dot_enable(!cli.float_act);   /* 8-bit activations on quantized weights unless --float-act */
    vc_int8dot_requantize_float(cli.int8_dot);
    int rc;
    if (cli.command == VC_CMD_BENCH) {
        rc = vc_run_bench(&cli, &interrupted);
    } else if (cli.command == VC_CMD_CONVERT) {
        vc_convert_mix mix = vc_convert_mix_from_name(cli.out_type);
        int type = vc_dtype_from_name(cli.out_type ? cli.out_type : "f16");
        rc = mix != VC_MIX_NONE ? vc_convert_to_gguf_mix(cli.model, cli.out, VC_F16, mix)
             : type < 0 || !vc_dtype_is_ggml((uint32_t)type)
                 ? vc_fail_code(VC_EXIT_USAGE, "unknown GGUF --type '%s'", cli.out_type)
                 : vc_convert_to_gguf(cli.model, cli.out, (vc_dtype)type);
    } else {
        rc = run(&cli);
    }
    vc_threads_shutdown();
    return rc == 0 ? 0 : fail();
}
