/* jinja_value.c - the arena, values, and Python's str(), repr() and json.dumps
 * of them (see jinja_impl.h). */
#include "jinja_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

/* ---- arena ---- */

struct jblock {
    jblock *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

_Noreturn void jfail(jarena *a, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)     /* one line */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    vc_fail_code(VC_EXIT_INPUT, "%s", msg);
    longjmp(*a->jmp, 1);
}

void *jalloc(jarena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if (n > a->limit || a->total > a->limit - n)
        jfail(a, "template: more than %zu MiB of values", a->limit >> 20);
    jblock *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = malloc(sizeof *b + cap);
        if (!b)
            jfail(a, "out of memory");
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    a->total += n;
    memset(p, 0, n);
    return p;
}

void *jalloc_array(jarena *a, size_t count, size_t sz)
{
    if (sz && count > SIZE_MAX / sz)
        jfail(a, "template: size overflow");
    return jalloc(a, count * sz);
}

void jarena_free(jarena *a)
{
    for (jblock *b = a->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    a->head = NULL;
    a->total = 0;
}

void jsb_put(jstrbuf *b, const char *s, size_t n)
{
    if (n == 0)
        return;
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap : 32;
        while (cap - b->n < n + 1) {
            if (cap > SIZE_MAX / 2)
                jfail(b->a, "template: string too long");
            cap *= 2;
        }
        char *s2 = jalloc(b->a, cap);
        if (b->n)
            memcpy(s2, b->s, b->n);
        b->s = s2;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

void jsb_puts(jstrbuf *b, const char *s) { jsb_put(b, s, strlen(s)); }
void jsb_putc(jstrbuf *b, char c) { jsb_put(b, &c, 1); }

void jsb_printf(jstrbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        jsb_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* ---- UTF-8 ---- */

uint32_t jutf8_next(const char *str, size_t n, size_t *len)
{
    const unsigned char *s = (const unsigned char *)str;
    uint32_t c = s[0];
    size_t need = c >= 0xF0 && c < 0xF5 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 1;
    if (c < 0x80 || need == 1 || need > n) {
        *len = 1;
        return c;
    }
    uint32_t cp = c & (need == 2 ? 0x1F : need == 3 ? 0x0F : 0x07);
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *len = 1;
            return c;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    *len = need;
    return cp;
}

void jutf8_put(jstrbuf *b, uint32_t cp)
{
    char o[4];
    size_t n;
    if (cp < 0x80) {
        o[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    jsb_put(b, o, n);
}

bool jpy_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

size_t jutf8_count(const char *s, size_t n)
{
    size_t k = 0, len;
    for (size_t i = 0; i < n; i += len, k++)
        jutf8_next(s + i, n - i, &len);
    return k;
}

/* ---- values ---- */

jv jv_strdup(jarena *a, const char *s, size_t n)
{
    char *p = jalloc(a, n + 1);
    if (n)
        memcpy(p, s, n);
    return jv_str(p, n);
}

jv jv_cstr(jarena *a, const char *s) { return jv_strdup(a, s, strlen(s)); }

jv jv_list(jarena *a, size_t n)
{
    jlist *l = jalloc(a, sizeof *l);
    l->n = n;
    l->v = jalloc_array(a, n ? n : 1, sizeof *l->v);
    jv v = { JV_LIST, 0, { .l = l }, false };
    return v;
}

jv jv_dict(jarena *a)
{
    jv v = { JV_DICT, 0, { .d = jalloc(a, sizeof(jdict)) }, false };
    return v;
}

jv *jdict_get(const jdict *d, jv key)
{
    for (size_t i = 0; i < d->n; i++)
        if (jv_eq(d->keys[i], key))
            return &d->vals[i];
    return NULL;
}

jv *jdict_gets(const jdict *d, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < d->n; i++)
        if (d->keys[i].t == JV_STR && d->keys[i].n == n && memcmp(d->keys[i].u.s, key, n) == 0)
            return &d->vals[i];
    return NULL;
}

void jdict_set(jarena *a, jdict *d, jv key, jv val)
{
    jv *old = jdict_get(d, key);
    if (old) {
        *old = val;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        jv *k = jalloc_array(a, cap, sizeof *k), *v = jalloc_array(a, cap, sizeof *v);
        if (d->n) {
            memcpy(k, d->keys, d->n * sizeof *k);
            memcpy(v, d->vals, d->n * sizeof *v);
        }
        d->keys = k, d->vals = v, d->cap = cap;
    }
    d->keys[d->n] = key;
    d->vals[d->n++] = val;
}

bool jv_truthy(jv v)
{
    switch (v.t) {
    case JV_UNDEF: case JV_NONE: return false;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0;
    case JV_STR: return v.n > 0;
    case JV_LIST: return v.u.l->view == JL_GEN || v.u.l->n > 0;
    case JV_DICT: return v.u.d->ns || v.u.d->n > 0;
    default: return true;
    }
}

bool jv_is_num(jv v) { return v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT; }

double jv_num(jv v) { return v.t == JV_FLOAT ? v.u.f : v.t == JV_BOOL ? (double)v.u.b : (double)v.u.i; }

bool jv_eq(jv a, jv b)
{
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT)
            return (a.t == JV_BOOL ? a.u.b : a.u.i) == (b.t == JV_BOOL ? b.u.b : b.u.i);
        return jv_num(a) == jv_num(b);
    }
    if (a.t != b.t)
        return false;
    switch (a.t) {
    case JV_UNDEF: case JV_NONE: return true;
    case JV_STR: return a.n == b.n && (a.n == 0 || memcmp(a.u.s, b.u.s, a.n) == 0);
    case JV_LIST:
        if (a.u.l->view || b.u.l->view)
            return a.u.l == b.u.l;
        if (a.u.l->n != b.u.l->n)
            return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!jv_eq(a.u.l->v[i], b.u.l->v[i]))
                return false;
        return a.u.l->tuple == b.u.l->tuple;
    case JV_DICT:
        if (a.u.d->ns || b.u.d->ns)
            return a.u.d == b.u.d;
        if (a.u.d->n != b.u.d->n)
            return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv *o = jdict_get(b.u.d, a.u.d->keys[i]);
            if (!o || !jv_eq(a.u.d->vals[i], *o))
                return false;
        }
        return true;
    case JV_FUNC: return a.u.fn == b.u.fn;
    case JV_LOOP: return a.u.loop == b.u.loop;
    default: return false;
    }
}

const char *jv_type_name(jv v)
{
    switch (v.t) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST: {
        static const char *const views[] = { "list", "generator", "dict_items", "dict_keys", "dict_values" };
        return v.u.l->tuple ? "tuple" : views[v.u.l->view];
    }
    case JV_DICT: return v.u.d->ns ? "Namespace" : "dict";
    case JV_FUNC: return "function";
    default: return "LoopContext";
    }
}

int jv_cmp(jarena *a, jv x, jv y, const char *op)
{
    if (jv_is_num(x) && jv_is_num(y)) {
        if (x.t != JV_FLOAT && y.t != JV_FLOAT) {
            int64_t p = x.t == JV_BOOL ? x.u.b : x.u.i, q = y.t == JV_BOOL ? y.u.b : y.u.i;
            return p < q ? -1 : p > q;
        }
        double p = jv_num(x), q = jv_num(y);
        return p < q ? -1 : p > q;
    }
    if (x.t == JV_STR && y.t == JV_STR) {
        int c = memcmp(x.u.s, y.u.s, VC_MIN(x.n, y.n));
        return c ? (c < 0 ? -1 : 1) : x.n < y.n ? -1 : x.n > y.n;
    }
    if (x.t == JV_LIST && y.t == JV_LIST && x.u.l->tuple == y.u.l->tuple && !x.u.l->view && !y.u.l->view) {
        size_t n = VC_MIN(x.u.l->n, y.u.l->n);
        for (size_t i = 0; i < n; i++)
            if (!jv_eq(x.u.l->v[i], y.u.l->v[i]))
                return jv_cmp(a, x.u.l->v[i], y.u.l->v[i], op);
        return x.u.l->n < y.u.l->n ? -1 : x.u.l->n > y.u.l->n;
    }
    if (x.t == JV_UNDEF || y.t == JV_UNDEF)
        jfail(a, "'%s' is undefined", x.t == JV_UNDEF && x.u.s ? x.u.s : y.t == JV_UNDEF && y.u.s ? y.u.s : "value");
    jfail(a, "'%s' not supported between instances of '%s' and '%s'", op, jv_type_name(x), jv_type_name(y));
}

/* ---- Python formatting ---- */

void jfloat_repr(char *out, size_t size, double f)
{
    if (isnan(f)) {
        snprintf(out, size, "nan");
        return;
    }
    if (isinf(f)) {
        snprintf(out, size, f < 0 ? "-inf" : "inf");
        return;
    }
    char e[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {     /* the shortest digits that read back */
        snprintf(e, sizeof e, "%.*e", prec - 1, f);
        if (strtod(e, NULL) == f)
            break;
    }
    /* e is [-]d.ddde[+-]xx: split digits and exponent */
    const char *p = e;
    bool neg = *p == '-';
    if (neg)
        p++;
    char digits[24];
    size_t nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < sizeof digits - 1)
            digits[nd++] = *p;
    digits[nd] = 0;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        digits[--nd] = 0;
    char buf[64];
    size_t k = 0;
    if (neg)
        buf[k++] = '-';
    if (exp < -4 || exp >= 16) {
        buf[k++] = digits[0];
        if (nd > 1) {
            buf[k++] = '.';
            for (size_t i = 1; i < nd; i++)
                buf[k++] = digits[i];
        }
        snprintf(buf + k, sizeof buf - k, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        buf[k++] = '0', buf[k++] = '.';
        for (int i = -1; i > exp; i--)
            buf[k++] = '0';
        for (size_t i = 0; i < nd; i++)
            buf[k++] = digits[i];
        buf[k] = 0;
    } else {
        for (int i = 0; i <= exp; i++)
            buf[k++] = (size_t)i < nd ? digits[i] : '0';
        buf[k++] = '.';
        if ((size_t)exp + 1 >= nd)
            buf[k++] = '0';
        for (size_t i = (size_t)exp + 1; i < nd; i++)
            buf[k++] = digits[i];
        buf[k] = 0;
    }
    snprintf(out, size, "%s", buf);
}

/* Python's str.isprintable, approximately: control, format and separator characters are not. */
static bool py_printable(uint32_t c)
{
    if (c < 0x20 || (c >= 0x7F && c <= 0xA0) || c == 0xAD)
        return false;
    if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) || (c >= 0x205F && c <= 0x2064) ||
        c == 0x3000 || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB) || (c >= 0xD800 && c <= 0xDFFF) ||
        c == 0x61C || c == 0x180E || (c >= 0x2066 && c <= 0x206F))
        return false;
    return true;
}

static void repr_str(jstrbuf *b, const char *s, size_t n)
{
    bool sq = memchr(s, '\'', n) != NULL, dq = memchr(s, '"', n) != NULL;
    char q = sq && !dq ? '"' : '\'';
    jsb_putc(b, q);
    size_t len;
    for (size_t i = 0; i < n; i += len) {
        uint32_t c = jutf8_next(s + i, n - i, &len);
        if (c == (uint32_t)q || c == '\\') {
            jsb_putc(b, '\\');
            jsb_putc(b, (char)c);
        } else if (c == '\n') {
            jsb_puts(b, "\\n");
        } else if (c == '\r') {
            jsb_puts(b, "\\r");
        } else if (c == '\t') {
            jsb_puts(b, "\\t");
        } else if (len == 1 && c >= 0x80) {
            jsb_printf(b, "\\udc%02x", c);   /* an invalid byte, as surrogateescape shows it */
        } else if (!py_printable(c)) {
            if (c < 0x100)
                jsb_printf(b, "\\x%02x", c);
            else if (c < 0x10000)
                jsb_printf(b, "\\u%04x", c);
            else
                jsb_printf(b, "\\U%08x", c);
        } else {
            jsb_put(b, s + i, len);
        }
    }
    jsb_putc(b, q);
}

static void put_items(jstrbuf *b, jv v, bool repr)
{
    (void)repr;
    if (v.t == JV_LIST) {
        const jlist *l = v.u.l;
        if (l->view == JL_GEN) {
            jsb_puts(b, "<generator object>");
            return;
        }
        if (l->view)
            jsb_printf(b, "%s(", jv_type_name(v));
        jsb_putc(b, l->tuple ? '(' : '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i)
                jsb_puts(b, ", ");
            jv_repr_to(b, l->v[i]);
        }
        if (l->tuple && l->n == 1)
            jsb_putc(b, ',');
        jsb_putc(b, l->tuple ? ')' : ']');
        if (l->view)
            jsb_putc(b, ')');
        return;
    }
    const jdict *d = v.u.d;
    if (d->ns)
        jsb_puts(b, "<Namespace ");
    jsb_putc(b, '{');
    for (size_t i = 0; i < d->n; i++) {
        if (i)
            jsb_puts(b, ", ");
        jv_repr_to(b, d->keys[i]);
        jsb_puts(b, ": ");
        jv_repr_to(b, d->vals[i]);
    }
    jsb_putc(b, '}');
    if (d->ns)
        jsb_putc(b, '>');
}

static void scalar_to(jstrbuf *b, jv v, bool repr)
{
    char num[64];
    switch (v.t) {
    case JV_UNDEF: if (repr) jsb_puts(b, "Undefined"); return;
    case JV_NONE: jsb_puts(b, "None"); return;
    case JV_BOOL: jsb_puts(b, v.u.b ? "True" : "False"); return;
    case JV_INT: jsb_printf(b, "%lld", (long long)v.u.i); return;
    case JV_FLOAT: jfloat_repr(num, sizeof num, v.u.f); jsb_puts(b, num); return;
    case JV_STR: if (repr) repr_str(b, v.u.s, v.n); else jsb_put(b, v.u.s, v.n); return;
    case JV_LIST: case JV_DICT: put_items(b, v, repr); return;
    case JV_FUNC: jsb_printf(b, "<function %s>", v.u.fn->name ? v.u.fn->name : "?"); return;
    case JV_LOOP: jsb_printf(b, "<LoopContext %zu/%zu>", v.u.loop->index0 + 1, v.u.loop->items->n); return;
    }
}

void jv_str_to(jstrbuf *b, jv v) { scalar_to(b, v, false); }
void jv_repr_to(jstrbuf *b, jv v) { scalar_to(b, v, true); }

jv jv_to_str(jarena *a, jv v)
{
    if (v.t == JV_STR)
        return v;
    jstrbuf b = { a, NULL, 0, 0 };
    jv_str_to(&b, v);
    return b.s ? jv_str(b.s, b.n) : jv_str("", 0);
}

jv jv_escape(jarena *a, jv s)
{
    jstrbuf b = { a, NULL, 0, 0 };
    for (size_t i = 0; i < s.n; i++) {
        switch (s.u.s[i]) {
        case '&': jsb_puts(&b, "&amp;"); break;
        case '<': jsb_puts(&b, "&lt;"); break;
        case '>': jsb_puts(&b, "&gt;"); break;
        case '"': jsb_puts(&b, "&#34;"); break;
        case '\'': jsb_puts(&b, "&#39;"); break;
        default: jsb_putc(&b, s.u.s[i]);
        }
    }
    return b.s ? jv_str(b.s, b.n) : jv_str("", 0);
}

/* ---- JSON ---- */

static void json_str(jstrbuf *b, const char *s, size_t n, bool ascii)
{
    jsb_putc(b, '"');
    size_t len;
    for (size_t i = 0; i < n; i += len) {
        uint32_t c = jutf8_next(s + i, n - i, &len);
        switch (c) {
        case '"': jsb_puts(b, "\\\""); break;
        case '\\': jsb_puts(b, "\\\\"); break;
        case '\n': jsb_puts(b, "\\n"); break;
        case '\r': jsb_puts(b, "\\r"); break;
        case '\t': jsb_puts(b, "\\t"); break;
        case '\b': jsb_puts(b, "\\b"); break;
        case '\f': jsb_puts(b, "\\f"); break;
        default:
            if (c < 0x20 || (ascii && c >= 0x7F && len == 1 && c < 0x80)) {
                jsb_printf(b, "\\u%04x", c);
            } else if (ascii && c >= 0x80) {
                if (len == 1)
                    jsb_printf(b, "\\udc%02x", c);
                else if (c < 0x10000)
                    jsb_printf(b, "\\u%04x", c);
                else
                    jsb_printf(b, "\\u%04x\\u%04x", 0xD800 + ((c - 0x10000) >> 10), 0xDC00 + ((c - 0x10000) & 0x3FF));
            } else {
                jsb_put(b, s + i, len);
            }
        }
    }
    jsb_putc(b, '"');
}

static void json_newline(jstrbuf *b, const jjson_opts *o, int level)
{
    jsb_putc(b, '\n');
    for (int i = 0; i < level; i++)
        jsb_puts(b, o->indent);
}

static void json_key(jarena *a, jstrbuf *b, jv k, const jjson_opts *o)
{
    char num[64];
    switch (k.t) {
    case JV_STR: json_str(b, k.u.s, k.n, o->ensure_ascii); return;
    case JV_INT: jsb_printf(b, "\"%lld\"", (long long)k.u.i); return;
    case JV_BOOL: jsb_puts(b, k.u.b ? "\"true\"" : "\"false\""); return;
    case JV_NONE: jsb_puts(b, "\"null\""); return;
    case JV_FLOAT: jfloat_repr(num, sizeof num, k.u.f); jsb_printf(b, "\"%s\"", num); return;
    default: jfail(a, "keys must be str, int, float, bool or None, not %s", jv_type_name(k));
    }
}

static void sort_index(jarena *a, const jdict *d, size_t *idx)
{
    for (size_t i = 0; i < d->n; i++)
        idx[i] = i;
    for (size_t i = 1; i < d->n; i++)       /* insertion sort: dicts are small */
        for (size_t j = i; j > 0 && jv_cmp(a, d->keys[idx[j - 1]], d->keys[idx[j]], "<") > 0; j--) {
            size_t t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
}

void jv_json_to(jarena *a, jstrbuf *b, jv v, const jjson_opts *o, int level)
{
    char num[64];
    if (level > 200)
        jfail(a, "tojson: nesting too deep");
    switch (v.t) {
    case JV_NONE: jsb_puts(b, "null"); return;
    case JV_BOOL: jsb_puts(b, v.u.b ? "true" : "false"); return;
    case JV_INT: jsb_printf(b, "%lld", (long long)v.u.i); return;
    case JV_FLOAT:
        if (isnan(v.u.f))
            jsb_puts(b, "NaN");
        else if (isinf(v.u.f))
            jsb_puts(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else {
            jfloat_repr(num, sizeof num, v.u.f);
            jsb_puts(b, num);
        }
        return;
    case JV_STR: json_str(b, v.u.s, v.n, o->ensure_ascii); return;
    case JV_LIST: {
        const jlist *l = v.u.l;
        if (l->view)
            break;
        if (l->n == 0) {
            jsb_puts(b, "[]");
            return;
        }
        jsb_putc(b, '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i)
                jsb_puts(b, o->item_sep);
            if (o->indent)
                json_newline(b, o, level + 1);
            jv_json_to(a, b, l->v[i], o, level + 1);
        }
        if (o->indent)
            json_newline(b, o, level);
        jsb_putc(b, ']');
        return;
    }
    case JV_DICT: {
        const jdict *d = v.u.d;
        if (d->ns)
            break;
        if (d->n == 0) {
            jsb_puts(b, "{}");
            return;
        }
        size_t *idx = jalloc_array(a, d->n, sizeof *idx);
        for (size_t i = 0; i < d->n; i++)
            idx[i] = i;
        if (o->sort_keys)
            sort_index(a, d, idx);
        jsb_putc(b, '{');
        for (size_t i = 0; i < d->n; i++) {
            if (i)
                jsb_puts(b, o->item_sep);
            if (o->indent)
                json_newline(b, o, level + 1);
            json_key(a, b, d->keys[idx[i]], o);
            jsb_puts(b, o->key_sep);
            jv_json_to(a, b, d->vals[idx[i]], o, level + 1);
        }
        if (o->indent)
            json_newline(b, o, level);
        jsb_putc(b, '}');
        return;
    }
    default: break;
    }
    jfail(a, "Object of type %s is not JSON serializable", jv_type_name(v));
}

jv jv_from_json(jarena *a, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_NULL: return jv_none();
    case JSON_TRUE: return jv_bool(true);
    case JSON_FALSE: return jv_bool(false);
    case JSON_INTEGER: return jv_int((int64_t)json_integer_value(j));
    case JSON_REAL: return jv_float(json_real_value(j));
    case JSON_STRING: return jv_strdup(a, json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        jv l = jv_list(a, json_array_size(j));
        for (size_t i = 0; i < json_array_size(j); i++)
            l.u.l->v[i] = jv_from_json(a, json_array_get(j, i));
        return l;
    }
    case JSON_OBJECT: {
        jv d = jv_dict(a);
        const char *k;
        json_t *x;
        json_object_foreach((json_t *)j, k, x)
            jdict_set(a, d.u.d, jv_cstr(a, k), jv_from_json(a, x));
        return d;
    }
    }
    return jv_none();
}
