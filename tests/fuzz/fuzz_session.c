/* fuzz_session.c - saved conversations (/load): any document either loads
 * into a conversation over the demo model or is refused. */
#define _GNU_SOURCE   /* memfd_create, in fuzz_common.h */

#include <stdlib.h>

#include "fuzz_common.h"
#include "model/conversation.h"

static vc_model model;
static bool loaded;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!loaded) {
        if (vc_model_open("configs/demo", &(vc_model_options){ .n_ctx = 64 }, &model) != 0)
            abort();   /* run from the repository root */
        loaded = true;
    }
    vc_conversation c;
    vc_conv_init(&c, &model);
    vc_conv_load_json(&c, (const char *)data, size, "fuzz");
    vc_conv_free(&c);
    return 0;
}
