/* json.h - reading fields of JSON objects (jansson) with one set of rules:
 * model configs, processor and tokenizer files, presets.
 *
 * A field is absent when obj is not an object, has no such key, or holds
 * JSON null; the readers then give the default. A present field of the
 * wrong kind or out of range is an error, not a default: the checked
 * readers fail with VC_EXIT_MODEL and a message naming the key, the value
 * and the range, e.g. "ctx must be an integer in 0..2147483647, not -4"
 * (callers add the file with vc_fail_ctx, or re-classify an error for
 * other input with vc_fail_code(code, "%s", vc_error())).
 */
#ifndef VC_CORE_JSON_H
#define VC_CORE_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when obj[key] is present (not absent as above). */
bool vc_json_has(json_t *obj, const char *key);

/* An integer in min..max into *out, or dflt when absent. A whole real
 * (336.0, as files decoded with JSON_DECODE_INT_AS_REAL hold them) counts
 * as the integer it equals. Returns 0, or -1 (*out untouched) for a value
 * that is not an integer, not whole, or outside min..max. */
int vc_json_get_int(json_t *obj, const char *key, int min, int max, int dflt, int *out);

/* A finite number (integer or real) in min..max into *out, or dflt when
 * absent. Returns 0, or -1 (*out untouched) otherwise. */
int vc_json_get_num(json_t *obj, const char *key, double min, double max, double dflt, double *out);

/* Lists of numbers: the array v (NULL or JSON null: absent, *n = 0), each
 * element read by the rules above (in min..max; for int lists a whole real
 * counts as its integer), into out[0..*n), at most cap of them; a lone
 * number counts as a list of one (eos_token_id: 2, vision_feature_layer:
 * -2). name is the field's name for messages ("image_mean"). Returns 0, or
 * -1 (VC_EXIT_MODEL; the message names name[i] and the value, or says the
 * list is too long) with out partly written. For float lists min..max
 * lies within a float's range. */
int vc_json_int_list(json_t *v, const char *name, int min, int max, int *out, size_t cap, size_t *n);
int vc_json_float_list(json_t *v, const char *name, double min, double max, float *out, size_t cap, size_t *n);

/* The checks beneath the readers, on a value v (NULL or JSON null: absent),
 * for callers that word their own messages (the server's request fields)
 * or read values that are not fields (array elements, a vocabulary's): */
typedef enum {
    VC_JSON_OK,       /* *out set */
    VC_JSON_ABSENT,   /* *out untouched */
    VC_JSON_KIND,     /* not a number (an integer for _check_int) */
    VC_JSON_RANGE,    /* outside min..max (or not finite) */
} vc_json_status;
/* A finite number in min..max. */
vc_json_status vc_json_check_num(json_t *v, double min, double max, double *out);
/* An integer in min..max; strict: only a JSON integer (a whole real such as
 * 2.0 is of the wrong kind), else a whole real counts as its integer. */
vc_json_status vc_json_check_int(json_t *v, int64_t min, int64_t max, bool strict, int64_t *out);

/* For reading many fields in one pass: the field as vc_json_get_int /
 * vc_json_get_num (any int / any finite number) would read it, dflt when
 * absent; a bad value sets *bad (the message kept by vc_fail) and gives
 * dflt, so the caller checks *bad once at the end. */
int vc_json_int_or(json_t *obj, const char *key, int dflt, bool *bad);
double vc_json_num_or(json_t *obj, const char *key, double dflt, bool *bad);

/* Lookups where another kind of value means "not given" (the tokenizer's
 * components are told apart by which fields they have): */
/* The string at key, or NULL when absent or not a string. */
const char *vc_json_str(json_t *obj, const char *key);
/* The boolean at key, or dflt when absent or not a boolean. */
bool vc_json_flag(json_t *obj, const char *key, bool dflt);

#endif
