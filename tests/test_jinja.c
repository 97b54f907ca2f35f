/* test_jinja.c - the Jinja interpreter on its own: expressions, statements,
 * whitespace control, filters, tests, methods and Python's formatting, each
 * expected output as python3-jinja2 renders it in transformers' environment
 * (the real templates are compared in tests/cli/test_templates.sh); errors
 * fail with one line; the limits hold. */
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "harness.h"
#include "text/jinja.h"

static const char VARS[] = "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Yo\"}], \"d\": {\"b\": 2, \"a\": 1, \"items\": \"key\"}, \"l\": [3, 1, 2], \"s\": \"  Hello World  \", \"n\": null, \"f\": 2.5, \"u\": \"h\\u00e9llo w\\u00f6rld\", \"t\": [{\"name\": \"x\", \"on\": true}, {\"name\": \"y\", \"on\": false}]}";

typedef struct {
    const char *tpl, *want;
    bool raises;
} jcase;

static const jcase CASES[] = {
    { "{{ 1 + 2 }}|{{ 7 // 2 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}|{{ 1 / 4 }}|{{ 10 / 5 }}",
      "3|3|-4|2|1024|0.25|2.0", false },
    { "{{ [1, 2.0, 'a', True, None] }}|{{ {'k': [1, (2, 3)]} }}|{{ (1,) }}|{{ 1e20 }}|{{ 1e-7 }}|{{ 0.1 + 0.2 }}",
      "[1, 2.0, 'a', True, None]|{'k': [1, (2, 3)]}|(1,)|1e+20|1e-07|0.30000000000000004", false },
    { "{{ \"it's\" }}|{{ [\"it's\", 'say \"x\"', 'a\\nb'] }}",
      "it's|[\"it's\", 'say \"x\"', 'a\\nb']", false },
    { "{% for m in messages %}{{ loop.index }}/{{ loop.length }}{{ loop.first }}{{ loop.last }}{{ m.role }};{% endfor %}",
      "1/2TrueFalseuser;2/2FalseTrueassistant;", false },
    { "{% for x in l if x > 1 %}{{ x }}{{ loop.revindex }}{% else %}none{% endfor %}|{% for x in [] %}{% else %}empty{% endfor %}",
      "3221|empty", false },
    { "{% for x in l %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}",
      "3", false },
    { "{% set ns = namespace(c=0) %}{% for x in l %}{% set ns.c = ns.c + x %}{% endfor %}{{ ns.c }}",
      "6", false },
    { "{% set x = 1 %}{% for i in l %}{% set x = i %}{% endfor %}{{ x }}",
      "1", false },
    { "{% macro m(a, b='B') %}<{{ a }}{{ b }}{{ caller() if caller is defined else '' }}>{% endmacro %}{{ m(1) }}{{ m(2, b=3) }}{% call m(4) %}C{% endcall %}",
      "<1B><23><4BC>", false },
    { "{{ s.strip() }}|{{ s|trim }}|{{ s.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a b c'.split(' ', 1) }}|{{ 'x.y.z'.rsplit('.', 1) }}",
      "Hello World|Hello World|['Hello', 'World']|['a', 'b', '', 'c']|['a', 'b c']|['x.y', 'z']", false },
    { "{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ s.startswith('  H') }}|{{ s.endswith(('d', 'd  ')) }}|{{ s.replace('l', 'L', 2) }}",
      "Hello World  |  Hello World|hi|True|True|  HeLLo World  ", false },
    { "{{ u|upper }}|{{ u|capitalize }}|{{ u|title }}|{{ u|length }}|{{ u[1] }}|{{ u[-3:] }}|{{ u[::-1] }}",
      "H\303\211LLO W\303\226RLD|H\303\251llo w\303\266rld|H\303\251llo W\303\266rld|11|\303\251|rld|dlr\303\266w oll\303\251h", false },
    { "{{ d|dictsort }}|{{ d.items()|list }}|{{ d.get('a') }}|{{ d.get('z', 0) }}|{{ d['items'] }}|{{ d.keys()|list }}",
      "[('a', 1), ('b', 2), ('items', 'key')]|[('b', 2), ('a', 1), ('items', 'key')]|1|0|key|['b', 'a', 'items']", false },
    { "{{ t|selectattr('on')|map(attribute='name')|join(',') }}|{{ t|rejectattr('on')|map(attribute='name')|list }}|{{ t|map(attribute='name')|first }}|{{ l|sort }}|{{ l|sort(reverse=true) }}|{{ l|max }}|{{ l|min }}|{{ l|sum }}",
      "x|['y']|x|[1, 2, 3]|[3, 2, 1]|3|1|6", false },
    { "{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ u|tojson }}|{{ [1.0, none, true]|tojson(separators=(',', ':')) }}|{{ d|tojson(sort_keys=true) }}",
      "{\"b\": 2, \"a\": 1, \"items\": \"key\"}|{\n  \"b\": 2,\n  \"a\": 1,\n  \"items\": \"key\"\n}|\"h\303\251llo w\303\266rld\"|[1.0,null,true]|{\"a\": 1, \"b\": 2, \"items\": \"key\"}", false },
    { "{{ x }}|{{ x is defined }}|{{ x|default('D') }}|{{ ''|default('E', true) }}|{{ n is none }}|{{ n|string }}|{{ x|length }}|{{ d.zz is defined }}",
      "|False|D|E|True|None|0|False", false },
    { "{{ 'a' ~ 1 ~ none ~ x }}|{{ 'ab' in 'xabx' }}|{{ 2 in l }}|{{ 'a' in d }}|{{ 'q' not in d }}|{{ 1 < 2 < 3 }}|{{ 1 if n else 2 }}|{{ (n or 'o') }}|{{ (1 and 0) }}",
      "a1None|True|True|True|True|True|2|o|0", false },
    { "{{ l is sequence }}{{ d is mapping }}{{ s is string }}{{ f is number }}{{ f is float }}{{ 3 is integer }}{{ true is boolean }}{{ l is iterable }}{{ 3 is odd }}{{ 4 is divisibleby 2 }}{{ x is undefined }}",
      "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrue", false },
    { "{%- if true -%}\n  a  \n{%- endif -%}\n  b\n  {% if true %}\n  c\n  {% endif %}\n{# comment #}\nd {{- ' e ' -}} f\n{%+ if true %}g{% endif %}\n",
      "ab\n  c\nd e f\ng", false },
    { "{% raw %}{{ not evaluated }}{% endraw %}|{% filter upper %}up {{ 'x' }}{% endfilter %}|{% set b %}block {{ 1 }}{% endset %}{{ b }}|{% generation %}gen{% endgeneration %}",
      "{{ not evaluated }}|UP X|block 1|gen", false },
    { "{{ '%s-%d' % ('a', 3) }}|{{ '{}+{}={:>3}'.format(1, 2, 3) }}|{{ '%05.1f'|format(f) }}|{{ l|reverse|list }}|{{ range(3)|list }}|{{ range(1, 10, 3)|list }}",
      "a-3|1+2=  3|002.5|[2, 1, 3]|[0, 1, 2]|[1, 4, 7]", false },
    { "{{ 'x'|safe + '<b>' }}|{{ '<a>'|e }}|{{ ('a' * 3) }}|{{ [1] + [2] }}|{{ 'x\ny'|indent(2, true) }}|{{ 'ab'|center(6) }}|",
      "x&lt;b&gt;|&lt;a&gt;|aaa|[1, 2]|  x\n  y|  ab  |", false },
    { "{{ messages[0]['content'] }}{{ messages[-1].content }}{{ messages[5] is defined }}|{{ l[1:] }}{{ l[:-1] }}{{ l[::2] }}",
      "HiYoFalse|[1, 2][3, 1][3, 2]", false },
    { "{{ raise_exception('boom') }}",
      NULL, true },
    { "{{ 'a' + 1 }}",
      NULL, true },
    { "{{ x.y }}",
      NULL, true },
    { "{{ l.append(4) }}",
      NULL, true },
    { "{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }},{% endfor %}{% set p, q = 'xy' %}{{ q }}{{ p }}",
      "3,7,yx", false },
};

static int render(const char *tpl, json_t *vars, char **out)
{
    vc_jinja *t;
    *out = NULL;
    if (vc_jinja_parse(tpl, strlen(tpl), &t) != 0)
        return -1;
    size_t len;
    int rc = vc_jinja_render(t, vars, out, &len);
    vc_jinja_free(t);
    return rc;
}

static void test_cases(void)
{
    json_t *vars = json_loads(VARS, 0, NULL);
    CHECK(vars != NULL, "vars parse");
    for (size_t i = 0; i < VC_ARRAY_LEN(CASES); i++) {
        char *got;
        vc_error_clear();
        int rc = render(CASES[i].tpl, vars, &got);
        if (CASES[i].raises) {
            CHECK(rc != 0 && !strchr(vc_error(), '\n') && vc_error_code() == VC_EXIT_INPUT,
                  "case %zu raises one line: rc %d [%s]", i, rc, vc_error());
        } else {
            CHECK(rc == 0 && strcmp(got, CASES[i].want) == 0, "case %zu: %s\n got  [%s]\n want [%s] %s", i,
                  CASES[i].tpl, got ? got : "(error)", CASES[i].want, rc ? vc_error() : "");
        }
        free(got);
    }
    json_decref(vars);
}

static void test_errors_and_limits(void)
{
    static const char *const bad[] = { "{% if x %}", "{{ x", "{% endfor %}", "{{ x | nofilter }}", "{% break %}",
                                       "{% macro %}", "{{ 'unterminated }}", "{# open", "{{ (1 }}", "{% for %}" };
    for (size_t i = 0; i < VC_ARRAY_LEN(bad); i++) {
        vc_jinja *t = NULL;
        CHECK(vc_jinja_parse(bad[i], strlen(bad[i]), &t) != 0 && t == NULL, "syntax error: %s", bad[i]);
        CHECK(vc_error()[0] && !strchr(vc_error(), '\n'), "one-line message: %s", vc_error());
    }
    /* an unknown filter in a branch is a runtime error, only if reached (as jinja2 defers it) */
    char *out;
    CHECK(render("{% if false %}{{ x | nofilter }}{% endif %}ok", NULL, &out) == 0 && strcmp(out, "ok") == 0,
          "unknown filter in an untaken branch");
    free(out);
    /* the limits: runaway recursion, huge outputs and loops fail instead of exhausting the machine */
    CHECK(render("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", NULL, &out) != 0, "recursion limit");
    CHECK(render("{% set s = 'x' * 1000000 %}{% for i in range(100000) %}{{ s }}{% endfor %}", NULL, &out) != 0,
          "output limit: %s", vc_error());
    CHECK(render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", NULL, &out) != 0,
          "step limit: %s", vc_error());
    /* NUL bytes and invalid UTF-8 in the template are data */
    vc_jinja *t;
    CHECK(vc_jinja_parse("a\0b", 3, &t) == 0, "NUL in data");
    size_t len = 0;
    CHECK(t && vc_jinja_render(t, NULL, &out, &len) == 0 && len == 3 && memcmp(out, "a\0b", 3) == 0, "NUL kept");
    free(out);
    vc_jinja_free(t);
    /* the trailing newline of a template is dropped (keep_trailing_newline=False), a second one kept */
    CHECK(render("x\n", NULL, &out) == 0 && strcmp(out, "x") == 0, "one trailing newline dropped");
    free(out);
    CHECK(render("x\n\n", NULL, &out) == 0 && strcmp(out, "x\n") == 0, "second newline kept");
    free(out);
}

int main(void)
{
    test_cases();
    test_errors_and_limits();
    return harness_finish("test_jinja");
}
