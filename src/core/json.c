/* json.c - see include/core/json.h */
#include "core/json.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/common.h"

static json_t *field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);   /* NULL for a non-object obj */
    return json_is_null(v) ? NULL : v;
}

bool vc_json_has(json_t *obj, const char *key) { return field(obj, key) != NULL; }

/* The value as JSON text for a message, shortened to fit. */
static const char *shown(json_t *v, char *buf, size_t size)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (!s)
        return "(a value)";
    int n = snprintf(buf, size, "%s", s);
    if (n >= (int)size && size > 4)
        snprintf(buf + size - 4, 4, "...");
    free(s);
    return buf;
}

int vc_json_get_int(json_t *obj, const char *key, int min, int max, int dflt, int *out)
{
    json_t *v = field(obj, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (json_is_integer(v) && json_integer_value(v) >= min && json_integer_value(v) <= max) {
        *out = (int)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && d >= min && d <= max) {   /* false for NaN; min, max are exact in a double */
            *out = (int)d;
            return 0;
        }
    }
    char buf[64];
    return vc_fail_code(VC_EXIT_MODEL, "%s must be an integer in %d..%d, not %s", key, min, max,
                        shown(v, buf, sizeof buf));
}

int vc_json_get_num(json_t *obj, const char *key, double min, double max, double dflt, double *out)
{
    json_t *v = field(obj, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    double d = json_is_number(v) ? json_number_value(v) : NAN;
    if (isfinite(d) && d >= min && d <= max) {
        *out = d;
        return 0;
    }
    char buf[64];
    return vc_fail_code(VC_EXIT_MODEL, "%s must be a number in %g..%g, not %s", key, min, max,
                        shown(v, buf, sizeof buf));
}

const char *vc_json_str(json_t *obj, const char *key) { return json_string_value(json_object_get(obj, key)); }

bool vc_json_flag(json_t *obj, const char *key, bool dflt)
{
    json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

int vc_json_int_or(json_t *obj, const char *key, int dflt, bool *bad)
{
    int v;
    if (vc_json_get_int(obj, key, INT_MIN, INT_MAX, dflt, &v) != 0) {
        *bad = true;
        return dflt;
    }
    return v;
}

double vc_json_num_or(json_t *obj, const char *key, double dflt, bool *bad)
{
    double v;
    if (vc_json_get_num(obj, key, -DBL_MAX, DBL_MAX, dflt, &v) != 0) {
        *bad = true;
        return dflt;
    }
    return v;
}
