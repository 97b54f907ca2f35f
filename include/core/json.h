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
