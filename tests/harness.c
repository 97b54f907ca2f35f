/* harness.c - see harness.h */
#include "harness.h"

#include <stdlib.h>

int harness_passed, harness_failed;

const char *fixture(const char *relative)
{
    static char path[4096];
    const char *root = getenv("VLMCHAT_FIXTURES");
    snprintf(path, sizeof path, "%s/%s", root ? root : "tests/fixtures", relative);
    return path;
}

int harness_finish(const char *name)
{
    printf("%s: %d passed, %d failed\n", name, harness_passed, harness_failed);
    return harness_failed ? 1 : 0;
}
