/* test_json.c - core/json.h: the one set of rules for reading fields. */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "core/common.h"
#include "core/json.h"
#include "harness.h"

static json_t *doc(const char *text)
{
    json_error_t err;
    return json_loads(text, JSON_DECODE_ANY, &err);
}

/* The reader fails, with a message that holds `want`, and leaves *out alone. */
static void int_fails(json_t *o, const char *key, int min, int max, const char *want)
{
    int out = 12345;
    vc_error_clear();
    CHECK(vc_json_get_int(o, key, min, max, 7, &out) == -1 && out == 12345, "%s is refused", key);
    CHECK(strstr(vc_error(), want) != NULL && vc_error_code() == VC_EXIT_MODEL, "%s: message '%s' (want '%s')", key,
          vc_error(), want);
}

static void test_ints(void)
{
    json_t *o = doc("{\"a\": 336, \"whole\": 336.0, \"half\": 336.5, \"big\": 3000000000, \"neg\": -4,"
                    " \"s\": \"336\", \"t\": true, \"n\": null, \"huge\": 1e300, \"arr\": [1]}");
    int out = 0;
    CHECK(vc_json_get_int(o, "a", 0, 1000, 7, &out) == 0 && out == 336, "an integer: %d", out);
    CHECK(vc_json_get_int(o, "whole", 0, 1000, 7, &out) == 0 && out == 336, "a whole real counts: %d", out);
    CHECK(vc_json_get_int(o, "missing", 0, 1000, 7, &out) == 0 && out == 7, "missing: the default, %d", out);
    CHECK(vc_json_get_int(o, "n", 0, 1000, 7, &out) == 0 && out == 7, "null: the default, %d", out);
    CHECK(vc_json_get_int(NULL, "a", 0, 1000, 7, &out) == 0 && out == 7, "no object: the default, %d", out);
    CHECK(vc_json_get_int(json_object_get(o, "a"), "a", 0, 1000, 8, &out) == 0 && out == 8,
          "not an object: the default, %d", out);
    CHECK(vc_json_get_int(o, "neg", INT_MIN, INT_MAX, 7, &out) == 0 && out == -4, "a negative one: %d", out);
    CHECK(vc_json_get_int(o, "a", 336, 336, 7, &out) == 0 && out == 336, "the range's ends are in it");
    int_fails(o, "big", INT_MIN, INT_MAX, "big must be an integer in -2147483648..2147483647, not 3000000000");
    int_fails(o, "huge", INT_MIN, INT_MAX, "huge must be an integer in");
    int_fails(o, "neg", 0, 10, "neg must be an integer in 0..10, not -4");
    int_fails(o, "a", 0, 335, "a must be an integer in 0..335, not 336");
    int_fails(o, "half", 0, 1000, "half must be an integer in 0..1000, not 336.5");
    int_fails(o, "s", 0, 1000, "s must be an integer in 0..1000, not \"336\"");
    int_fails(o, "t", 0, 1000, "not true");
    int_fails(o, "arr", 0, 1000, "not [1]");
    json_decref(o);
}

static void test_numbers_strings_flags(void)
{
    json_t *o = doc("{\"x\": 0.5, \"i\": 3, \"s\": \"hot\", \"b\": false, \"n\": null, \"long\": "
                    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}");
    double d = 0;
    CHECK(vc_json_get_num(o, "x", 0, 1, 9, &d) == 0 && d == 0.5, "a real: %g", d);
    CHECK(vc_json_get_num(o, "i", 0, 5, 9, &d) == 0 && d == 3, "an integer as a number: %g", d);
    CHECK(vc_json_get_num(o, "missing", 0, 5, 9, &d) == 0 && d == 9, "missing: the default, %g", d);
    CHECK(vc_json_get_num(o, "n", 0, 5, 9, &d) == 0 && d == 9, "null: the default, %g", d);
    d = 42;
    vc_error_clear();
    CHECK(vc_json_get_num(o, "x", 1, 2, 9, &d) == -1 && d == 42 && strstr(vc_error(), "x must be a number in 1..2, not 0.5"),
          "out of range: '%s'", vc_error());
    vc_error_clear();
    CHECK(vc_json_get_num(o, "s", 0, 2, 9, &d) == -1 && strstr(vc_error(), "s must be a number in 0..2, not \"hot\""),
          "wrong type: '%s'", vc_error());
    vc_error_clear();
    CHECK(vc_json_get_num(o, "long", 0, 2, 9, &d) == -1 && strstr(vc_error(), "...") && strlen(vc_error()) < 120,
          "a long value is shortened: '%s'", vc_error());
    CHECK(vc_json_has(o, "x") && !vc_json_has(o, "n") && !vc_json_has(o, "missing") && !vc_json_has(NULL, "x"),
          "present means there and not null");
    CHECK(strcmp(vc_json_str(o, "s"), "hot") == 0 && !vc_json_str(o, "x") && !vc_json_str(o, "missing"),
          "strings: the string or NULL");
    CHECK(!vc_json_flag(o, "b", true) && vc_json_flag(o, "s", true) && vc_json_flag(o, "missing", true) &&
              !vc_json_flag(o, "missing", false),
          "flags: the boolean or the default");
    json_decref(o);
}

/* The list readers: arrays, a lone number as one, absent as none, and the
 * element named in the message. */
static void test_lists(void)
{
    json_t *o = doc("{\"ids\": [1, 2.0, 3], \"one\": 7, \"bad\": [1, \"x\"], \"far\": [1, 5000000000],"
                    " \"mean\": [0.5, 0.25, 0.125], \"neg\": [1, -0.5], \"n\": null}");
    int ids[4] = { 0 };
    float f[3] = { 0 };
    size_t n = 99;
    CHECK(vc_json_int_list(json_object_get(o, "ids"), "ids", 0, 10, ids, 4, &n) == 0 && n == 3 && ids[0] == 1 &&
              ids[1] == 2 && ids[2] == 3,
          "an int list, a whole real in it: n=%zu", n);
    CHECK(vc_json_int_list(json_object_get(o, "one"), "one", 0, 10, ids, 4, &n) == 0 && n == 1 && ids[0] == 7,
          "a lone integer is a list of one");
    CHECK(vc_json_int_list(json_object_get(o, "missing"), "missing", 0, 10, ids, 4, &n) == 0 && n == 0, "absent: none");
    CHECK(vc_json_int_list(json_object_get(o, "n"), "n", 0, 10, ids, 4, &n) == 0 && n == 0, "null: none");
    CHECK(vc_json_int_list(json_object_get(o, "ids"), "ids", 0, 10, ids, 2, &n) == -1 && n == 0 &&
              strstr(vc_error(), "ids must list at most 2 integers, not 3"),
          "too long: %s", vc_error());
    CHECK(vc_json_int_list(json_object_get(o, "bad"), "bad", 0, 10, ids, 4, &n) == -1 &&
              strstr(vc_error(), "bad[1] must be an integer in 0..10, not \"x\"") && vc_error_code() == VC_EXIT_MODEL,
          "a bad element is named: %s", vc_error());
    CHECK(vc_json_int_list(json_object_get(o, "far"), "far", INT_MIN, INT_MAX, ids, 4, &n) == -1 &&
              strstr(vc_error(), "far[1] must be an integer"),
          "past INT_MAX: %s", vc_error());
    CHECK(vc_json_float_list(json_object_get(o, "mean"), "mean", 0, 1, f, 3, &n) == 0 && n == 3 && f[0] == 0.5f &&
              f[2] == 0.125f,
          "a float list");
    CHECK(vc_json_float_list(json_object_get(o, "neg"), "neg", 0, 1, f, 3, &n) == -1 &&
              strstr(vc_error(), "neg[1] must be a number in 0..1, not -0.5"),
          "a float out of range: %s", vc_error());
    json_decref(o);
}

/* The checks beneath, on values: absent, kind, range; strict integers. */
static void test_checks(void)
{
    json_t *o = doc("{\"i\": 5, \"whole\": 5.0, \"half\": 5.5, \"s\": \"5\", \"huge\": 1e300, \"n\": null}");
    int64_t x = 42;
    double d = 42;
    CHECK(vc_json_check_int(json_object_get(o, "i"), 0, 9, true, &x) == VC_JSON_OK && x == 5, "an integer");
    CHECK(vc_json_check_int(json_object_get(o, "whole"), 0, 9, true, &x) == VC_JSON_KIND, "strict: 5.0 is no integer");
    CHECK(vc_json_check_int(json_object_get(o, "whole"), 0, 9, false, &x) == VC_JSON_OK && x == 5, "else it is 5");
    CHECK(vc_json_check_int(json_object_get(o, "half"), 0, 9, false, &x) == VC_JSON_KIND, "5.5 is no integer");
    CHECK(vc_json_check_int(json_object_get(o, "huge"), INT64_MIN, INT64_MAX, false, &x) == VC_JSON_RANGE,
          "1e300 is past int64");
    CHECK(vc_json_check_int(json_object_get(o, "i"), 6, 9, true, &x) == VC_JSON_RANGE, "out of range");
    CHECK(vc_json_check_int(json_object_get(o, "s"), 0, 9, false, &x) == VC_JSON_KIND, "a string");
    CHECK(vc_json_check_int(json_object_get(o, "n"), 0, 9, false, &x) == VC_JSON_ABSENT &&
              vc_json_check_int(NULL, 0, 9, false, &x) == VC_JSON_ABSENT && x == 5,
          "null and missing are absent, *out untouched");
    CHECK(vc_json_check_num(json_object_get(o, "half"), 0, 9, &d) == VC_JSON_OK && d == 5.5, "a number");
    CHECK(vc_json_check_num(json_object_get(o, "huge"), 0, 9, &d) == VC_JSON_RANGE, "a number out of range");
    CHECK(vc_json_check_num(json_object_get(o, "s"), 0, 9, &d) == VC_JSON_KIND, "a string is no number");
    json_decref(o);
}

int main(void)
{
    test_ints();
    test_numbers_strings_flags();
    test_lists();
    test_checks();
    return harness_finish("test_json");
}
