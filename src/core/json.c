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

/* The checks on a value (NULL: absent). */
static vc_json_status num_value(json_t *v, double min, double max, double *out)
{
    if (!v)
        return VC_JSON_ABSENT;
    if (!json_is_number(v))
        return VC_JSON_KIND;
    double d = json_number_value(v);
    if (!isfinite(d) || d < min || d > max)
        return VC_JSON_RANGE;
    *out = d;
    return VC_JSON_OK;
}

static vc_json_status int_value(json_t *v, int64_t min, int64_t max, bool strict, int64_t *out)
{
    if (!v)
        return VC_JSON_ABSENT;
    int64_t x;
    if (json_is_integer(v)) {
        x = (int64_t)json_integer_value(v);
    } else if (json_is_real(v) && !strict) {
        double d = json_real_value(v);
        if (d != floor(d))   /* also NaN and the infinities */
            return isinf(d) ? VC_JSON_RANGE : VC_JSON_KIND;
        if (!(d >= -0x1p63 && d < 0x1p63))
            return VC_JSON_RANGE;
        x = (int64_t)d;
    } else {
        return VC_JSON_KIND;
    }
    if (x < min || x > max)
        return VC_JSON_RANGE;
    *out = x;
    return VC_JSON_OK;
}

vc_json_status vc_json_check_num(json_t *v, double min, double max, double *out)
{
    return num_value(json_is_null(v) ? NULL : v, min, max, out);
}

vc_json_status vc_json_check_int(json_t *v, int64_t min, int64_t max, bool strict, int64_t *out)
{
    return int_value(json_is_null(v) ? NULL : v, min, max, strict, out);
}

static int int_failure(const char *key, int min, int max, json_t *v)
{
    char buf[64];
    return vc_fail_code(VC_EXIT_MODEL, "%s must be an integer in %d..%d, not %s", key, min, max,
                        shown(v, buf, sizeof buf));
}

static int num_failure(const char *key, double min, double max, json_t *v)
{
    char buf[64];
    return vc_fail_code(VC_EXIT_MODEL, "%s must be a number in %g..%g, not %s", key, min, max,
                        shown(v, buf, sizeof buf));
}

int vc_json_get_int(json_t *obj, const char *key, int min, int max, int dflt, int *out)
{
    json_t *v = field(obj, key);
    int64_t x;
    switch (int_value(v, min, max, false, &x)) {
    case VC_JSON_ABSENT: *out = dflt; return 0;
    case VC_JSON_OK: *out = (int)x; return 0;
    default: return int_failure(key, min, max, v);
    }
}

int vc_json_get_num(json_t *obj, const char *key, double min, double max, double dflt, double *out)
{
    json_t *v = field(obj, key);
    switch (num_value(v, min, max, out)) {
    case VC_JSON_ABSENT: *out = dflt; return 0;
    case VC_JSON_OK: return 0;
    default: return num_failure(key, min, max, v);
    }
}

/* How many elements the list v has (a lone value: one), or -1 past cap. */
static int list_size(json_t *v, const char *name, size_t cap, const char *what, size_t *n)
{
    *n = !v || json_is_null(v) ? 0 : json_is_array(v) ? json_array_size(v) : 1;
    if (*n > cap)
        return vc_fail_code(VC_EXIT_MODEL, "%s must list at most %zu %s, not %zu", name, cap, what, *n);
    return 0;
}

static json_t *list_item(json_t *v, size_t i) { return json_is_array(v) ? json_array_get(v, i) : v; }

int vc_json_int_list(json_t *v, const char *name, int min, int max, int *out, size_t cap, size_t *n)
{
    size_t count;
    *n = 0;
    if (list_size(v, name, cap, "integers", &count) != 0)
        return -1;
    for (size_t i = 0; i < count; i++) {
        int64_t x;
        if (int_value(list_item(v, i), min, max, false, &x) != VC_JSON_OK) {
            char key[96];
            snprintf(key, sizeof key, "%s[%zu]", name, i);
            return int_failure(key, min, max, list_item(v, i));
        }
        out[i] = (int)x;
    }
    *n = count;
    return 0;
}

int vc_json_float_list(json_t *v, const char *name, double min, double max, float *out, size_t cap, size_t *n)
{
    size_t count;
    *n = 0;
    if (list_size(v, name, cap, "numbers", &count) != 0)
        return -1;
    for (size_t i = 0; i < count; i++) {
        double d;
        if (num_value(list_item(v, i), min, max, &d) != VC_JSON_OK) {
            char key[96];
            snprintf(key, sizeof key, "%s[%zu]", name, i);
            return num_failure(key, min, max, list_item(v, i));
        }
        out[i] = (float)d;
    }
    *n = count;
    return 0;
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
