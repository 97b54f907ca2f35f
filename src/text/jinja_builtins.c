/* jinja_builtins.c - jinja2's filters and tests, Python's str/dict/list
 * methods that templates call, and the globals (see jinja_impl.h). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/common.h"
#include "jinja_impl.h"

/* ---- arguments ---- */

typedef struct {
    jctx *c;
    const char *fname;
    const jv *args;
    size_t nargs;
    const char **kwn;
    const jv *kwv;
    size_t nkw;
    int line;
} jargs;

/* Positional argument i or keyword name, else def. */
static jv arg(const jargs *A, size_t i, const char *name, jv def)
{
    if (i < A->nargs)
        return A->args[i];
    for (size_t k = 0; name && k < A->nkw; k++)
        if (strcmp(A->kwn[k], name) == 0)
            return A->kwv[k];
    return def;
}

static void max_args(const jargs *A, size_t n)
{
    if (A->nargs > n)
        jfail(A->c->a, "template line %d: %s() takes at most %zu arguments (%zu given)", A->line, A->fname, n, A->nargs);
}

static jv need_str(const jargs *A, jv v, const char *what)
{
    if (v.t == JV_UNDEF)
        jundef_fail(A->c, v, A->line);
    if (v.t != JV_STR)
        jfail(A->c->a, "template line %d: %s: expected a string, got %s", A->line, what, jv_type_name(v));
    return v;
}

static int64_t need_int(const jargs *A, jv v, const char *what)
{
    if (v.t == JV_UNDEF)
        jundef_fail(A->c, v, A->line);
    if (v.t != JV_INT && v.t != JV_BOOL)
        jfail(A->c->a, "template line %d: %s: '%s' object cannot be interpreted as an integer", A->line, what,
              jv_type_name(v));
    return v.t == JV_BOOL ? v.u.b : v.u.i;
}

static jv sb_value(jstrbuf *b) { return b->s ? jv_str(b->s, b->n) : jv_str("", 0); }
static jv str_of(jctx *c, jv v) { return jv_to_str(c->a, v); }

/* ---- iteration ---- */

jlist *jiter(jctx *c, jv v, int line)
{
    switch (v.t) {
    case JV_LIST: return v.u.l;
    case JV_UNDEF: return jv_list(c->a, 0).u.l;
    case JV_DICT: {
        if (v.u.d->ns)
            break;
        jv keys = jv_list(c->a, v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++)
            keys.u.l->v[i] = v.u.d->keys[i];
        return keys.u.l;
    }
    case JV_STR: {
        jv l = jv_list(c->a, jutf8_count(v.u.s, v.n));
        size_t len, k = 0;
        for (size_t i = 0; i < v.n; i += len) {
            jutf8_next(v.u.s + i, v.n - i, &len);
            l.u.l->v[k++] = jv_str(v.u.s + i, len);
        }
        return l.u.l;
    }
    default: break;
    }
    jfail(c->a, "template line %d: '%s' object is not iterable", line, jv_type_name(v));
}

/* ---- case mapping (ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic) ---- */

static uint32_t cp_upper(uint32_t c)
{
    if (c >= 'a' && c <= 'z') return c - 32;
    if (c < 0x80) return c;
    if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
    if (c == 0xFF) return 0x178;
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return c & ~1u;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c : c - 1;
    if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
    if (c == 0x3C2) return 0x3A3;
    if (c >= 0x430 && c <= 0x44F) return c - 32;
    if (c >= 0x450 && c <= 0x45F) return c - 80;
    return c;
}

static uint32_t cp_lower(uint32_t c)
{
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c < 0x80) return c;
    if ((c >= 0xC0 && c <= 0xDE && c != 0xD7)) return c + 32;
    if (c == 0x178) return 0xFF;
    if ((c >= 0x100 && c <= 0x137) || (c >= 0x14A && c <= 0x177)) return c | 1u;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c + 1 : c;
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    return c;
}

static bool cp_cased(uint32_t c) { return cp_upper(c) != c || cp_lower(c) != c; }
static bool cp_alpha(uint32_t c) { return (c < 0x80 && ((c | 32) >= 'a' && (c | 32) <= 'z')) || (c >= 0xC0 && cp_cased(c)); }
static bool cp_digit(uint32_t c) { return c >= '0' && c <= '9'; }

typedef enum { CASE_UPPER, CASE_LOWER, CASE_CAPITALIZE, CASE_TITLE, CASE_SWAP } casemode;

static jv change_case(jctx *c, jv s, casemode mode)
{
    jstrbuf b = { c->a, NULL, 0, 0 };
    size_t len;
    bool prev_cased = false, first = true;
    for (size_t i = 0; i < s.n; i += len) {
        uint32_t cp = jutf8_next(s.u.s + i, s.n - i, &len), o = cp;
        switch (mode) {
        case CASE_UPPER: o = cp_upper(cp); break;
        case CASE_LOWER: o = cp_lower(cp); break;
        case CASE_CAPITALIZE: o = first ? cp_upper(cp) : cp_lower(cp); break;
        case CASE_TITLE: o = prev_cased ? cp_lower(cp) : cp_upper(cp); break;
        case CASE_SWAP: o = cp_upper(cp) != cp ? cp_upper(cp) : cp_lower(cp); break;
        }
        prev_cased = cp_cased(cp);
        first = false;
        if (len == 1 && cp >= 0x80)
            jsb_putc(&b, (char)cp);
        else
            jutf8_put(&b, o);
    }
    return sb_value(&b);
}

/* ---- string helpers ---- */

/* Byte offset of the k-th code point. */
static size_t cp_offset(const char *s, size_t n, size_t k)
{
    size_t i = 0, len;
    while (k-- && i < n) {
        jutf8_next(s + i, n - i, &len);
        i += len;
    }
    return i;
}

static bool in_chars(uint32_t cp, jv chars)
{
    size_t len;
    for (size_t i = 0; i < chars.n; i += len)
        if (jutf8_next(chars.u.s + i, chars.n - i, &len) == cp)
            return true;
    return false;
}

/* Python's strip/lstrip/rstrip; chars NONE: whitespace. */
static jv strip(jv s, jv chars, bool left, bool right)
{
    size_t lo = 0, hi = s.n, len;
    bool ws = chars.t != JV_STR;
    if (left)
        while (lo < hi) {
            uint32_t cp = jutf8_next(s.u.s + lo, hi - lo, &len);
            if (!(ws ? jpy_space(cp) : in_chars(cp, chars)))
                break;
            lo += len;
        }
    if (right)
        while (hi > lo) {
            size_t st = hi - 1;
            while (st > lo && ((unsigned char)s.u.s[st] & 0xC0) == 0x80)
                st--;
            uint32_t cp = jutf8_next(s.u.s + st, hi - st, &len);
            if (st + len != hi)
                st = hi - 1, cp = (unsigned char)s.u.s[st];
            if (!(ws ? jpy_space(cp) : in_chars(cp, chars)))
                break;
            hi = st;
        }
    return jv_str(s.u.s + lo, hi - lo);
}

static const char *find_sub(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn == 0)
        return h;
    for (size_t i = 0; i + nn <= hn; i++)
        if (memcmp(h + i, nd, nn) == 0)
            return h + i;
    return NULL;
}

static const char *rfind_sub(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn > hn)
        return NULL;
    for (size_t i = hn - nn + 1; i > 0; i--)
        if (memcmp(h + i - 1, nd, nn) == 0)
            return h + i - 1;
    return NULL;
}

/* A growable list of values. */
typedef struct {
    jctx *c;
    jv *v;
    size_t n, cap;
} vlist;

static void vl_push(vlist *l, jv x)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        jv *nv = jalloc_array(l->c->a, cap, sizeof *nv);
        if (l->n)
            memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = x;
}

static jv vl_value(vlist *l)
{
    jv r = jv_list(l->c->a, 0);
    r.u.l->v = l->v ? l->v : r.u.l->v;
    r.u.l->n = l->n;
    return r;
}

/* The same values as a generator (what jinja2's select, map, ... return). */
static jv as_gen(jv l)
{
    l.u.l->view = JL_GEN;
    return l;
}

static jv split(jctx *c, jv s, jv sep, int64_t maxsplit, bool from_right, int line)
{
    vlist out = { c, NULL, 0, 0 };
    if (sep.t == JV_STR && sep.n == 0)
        jfail(c->a, "template line %d: empty separator", line);
    if (sep.t != JV_STR) {                        /* runs of whitespace */
        size_t len;
        if (!from_right) {
            size_t i = 0;
            for (;;) {
                while (i < s.n && jpy_space(jutf8_next(s.u.s + i, s.n - i, &len)))
                    i += len;
                if (i >= s.n)
                    break;
                if (maxsplit >= 0 && (int64_t)out.n == maxsplit) {
                    jv rest = strip(jv_str(s.u.s + i, s.n - i), jv_none(), false, true);
                    vl_push(&out, rest);
                    break;
                }
                size_t st = i;
                while (i < s.n && !jpy_space(jutf8_next(s.u.s + i, s.n - i, &len)))
                    i += len;
                vl_push(&out, jv_str(s.u.s + st, i - st));
            }
            return vl_value(&out);
        }
        /* rsplit(None, maxsplit): split from the right */
        jv t = strip(s, jv_none(), false, true);
        vlist rev = { c, NULL, 0, 0 };
        size_t hi = t.n;
        while (hi > 0) {
            if (maxsplit >= 0 && (int64_t)rev.n == maxsplit) {
                jv rest = strip(jv_str(t.u.s, hi), jv_none(), true, false);
                if (rest.n)
                    vl_push(&rev, rest);
                break;
            }
            size_t lo = hi;
            while (lo > 0 && !jpy_space((unsigned char)t.u.s[lo - 1]))
                lo--;
            vl_push(&rev, jv_str(t.u.s + lo, hi - lo));
            hi = lo;
            while (hi > 0 && jpy_space((unsigned char)t.u.s[hi - 1]))
                hi--;
        }
        for (size_t i = rev.n; i > 0; i--)
            vl_push(&out, rev.v[i - 1]);
        return vl_value(&out);
    }
    if (!from_right) {
        const char *p = s.u.s, *end = s.u.s + s.n, *hit;
        while ((maxsplit < 0 || (int64_t)out.n < maxsplit) && (hit = find_sub(p, (size_t)(end - p), sep.u.s, sep.n))) {
            vl_push(&out, jv_str(p, (size_t)(hit - p)));
            p = hit + sep.n;
        }
        vl_push(&out, jv_str(p, (size_t)(end - p)));
        return vl_value(&out);
    }
    vlist rev = { c, NULL, 0, 0 };
    size_t hi = s.n;
    const char *hit;
    while ((maxsplit < 0 || (int64_t)rev.n < maxsplit) && (hit = rfind_sub(s.u.s, hi, sep.u.s, sep.n))) {
        size_t at = (size_t)(hit - s.u.s);
        vl_push(&rev, jv_str(hit + sep.n, hi - at - sep.n));
        hi = at;
    }
    vl_push(&rev, jv_str(s.u.s, hi));
    for (size_t i = rev.n; i > 0; i--)
        vl_push(&out, rev.v[i - 1]);
    return vl_value(&out);
}

static jv replace(jctx *c, jv s, jv old, jv new_, int64_t count)
{
    jstrbuf b = { c->a, NULL, 0, 0 };
    if (old.n == 0) {                             /* inserts between characters */
        size_t len;
        int64_t k = 0;
        for (size_t i = 0; i <= s.n; i += len) {
            if (count < 0 || k < count) {
                jsb_put(&b, new_.u.s, new_.n);
                k++;
            }
            if (i == s.n)
                break;
            jutf8_next(s.u.s + i, s.n - i, &len);
            jsb_put(&b, s.u.s + i, len);
        }
        return sb_value(&b);
    }
    const char *p = s.u.s, *end = s.u.s + s.n, *hit;
    int64_t k = 0;
    while ((count < 0 || k < count) && (hit = find_sub(p, (size_t)(end - p), old.u.s, old.n))) {
        jsb_put(&b, p, (size_t)(hit - p));
        jsb_put(&b, new_.u.s, new_.n);
        p = hit + old.n;
        k++;
    }
    jsb_put(&b, p, (size_t)(end - p));
    return sb_value(&b);
}

static bool is_line_break(uint32_t c)
{
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
           c == 0x2028 || c == 0x2029;
}

static jv splitlines(jctx *c, jv s, bool keepends)
{
    vlist out = { c, NULL, 0, 0 };
    size_t st = 0, i = 0, len;
    while (i < s.n) {
        uint32_t cp = jutf8_next(s.u.s + i, s.n - i, &len);
        if (!is_line_break(cp)) {
            i += len;
            continue;
        }
        size_t eol = i + len;
        if (cp == '\r' && eol < s.n && s.u.s[eol] == '\n')
            eol++;
        vl_push(&out, jv_str(s.u.s + st, (keepends ? eol : i) - st));
        st = i = eol;
    }
    if (st < s.n)
        vl_push(&out, jv_str(s.u.s + st, s.n - st));
    return vl_value(&out);
}

static bool str_prefix(jctx *c, jv s, jv p, bool suffix, int line)
{
    if (p.t == JV_LIST && p.u.l->tuple) {
        for (size_t i = 0; i < p.u.l->n; i++)
            if (str_prefix(c, s, p.u.l->v[i], suffix, line))
                return true;
        return false;
    }
    if (p.t != JV_STR)
        jfail(c->a, "template line %d: %s first arg must be str or a tuple of str, not %s", line,
              suffix ? "endswith" : "startswith", jv_type_name(p));
    if (p.n > s.n)
        return false;
    return memcmp(suffix ? s.u.s + s.n - p.n : s.u.s, p.u.s, p.n) == 0;
}

static jv join(jctx *c, jlist *items, jv sep, jv attribute, bool python_join, int line)
{
    jstrbuf b = { c->a, NULL, 0, 0 };
    for (size_t i = 0; i < items->n; i++) {
        if (i)
            jsb_put(&b, sep.u.s, sep.n);
        jv v = items->v[i];
        if (attribute.t != JV_NONE)
            v = jgetitem(c, v, attribute, line);
        if (python_join && v.t != JV_STR)
            jfail(c->a, "template line %d: sequence item %zu: expected str instance, %s found", line, i,
                  jv_type_name(v));
        jv_str_to(&b, v);
    }
    return sb_value(&b);
}

/* ---- Python formatting: str.format and % ---- */

typedef struct {
    char fill, align, sign, type;
    bool alt, zero, has_prec;
    int width, prec;
} fspec;

static void parse_spec(jctx *c, const char *s, size_t n, fspec *f, int line)
{
    memset(f, 0, sizeof *f);
    f->fill = ' ';
    size_t i = 0;
    if (n >= 2 && strchr("<>^=", s[1]))
        f->fill = s[0], f->align = s[1], i = 2;
    else if (n >= 1 && strchr("<>^=", s[0]))
        f->align = s[0], i = 1;
    if (i < n && strchr("+- ", s[i]))
        f->sign = s[i++];
    if (i < n && s[i] == '#')
        f->alt = true, i++;
    if (i < n && s[i] == '0')
        f->zero = true, i++;
    while (i < n && cp_digit((unsigned char)s[i]) && f->width < 100000)
        f->width = f->width * 10 + (s[i++] - '0');
    if (i < n && s[i] == '.') {
        i++;
        f->has_prec = true;
        while (i < n && cp_digit((unsigned char)s[i]) && f->prec < 1000)
            f->prec = f->prec * 10 + (s[i++] - '0');
    }
    if (i < n)
        f->type = s[i++];
    if (i != n)
        jfail(c->a, "template line %d: invalid format specifier", line);
}

static void pad(jstrbuf *b, const char *s, size_t n, const fspec *f, char default_align)
{
    size_t w = jutf8_count(s, n), width = f->width > 0 ? (size_t)f->width : 0;
    char al = f->align ? f->align : default_align;
    char fill = f->fill;
    if (!f->align && f->zero)
        fill = '0', al = '=';
    size_t padn = width > w ? width - w : 0, left = al == '>' ? padn : al == '^' ? padn / 2 : 0;
    if (al == '=' && n && (s[0] == '-' || s[0] == '+' || s[0] == ' ')) {
        jsb_putc(b, s[0]);
        s++, n--;
        left = padn;
    } else if (al == '=') {
        left = padn;
    }
    for (size_t i = 0; i < left; i++)
        jsb_putc(b, fill);
    jsb_put(b, s, n);
    for (size_t i = left; i < padn; i++)
        jsb_putc(b, fill);
}

/* One value formatted by a format spec (str.format's mini-language). */
static void format_value(jctx *c, jstrbuf *b, jv v, const fspec *f, int line)
{
    char num[512];
    if (v.t == JV_STR || (!f->type && !jv_is_num(v)) || f->type == 's') {
        if (v.t != JV_STR && f->type == 's' && jv_is_num(v))
            jfail(c->a, "template line %d: unknown format code 's' for object of type '%s'", line, jv_type_name(v));
        jv s = str_of(c, v);
        size_t n = s.n;
        if (f->has_prec)
            n = jutf8_count(s.u.s, s.n) > (size_t)f->prec ? 0 : n;
        if (f->has_prec && n == 0) {
            size_t off = 0, len;
            for (int k = 0; k < f->prec && off < s.n; k++)
                jutf8_next(s.u.s + off, s.n - off, &len), off += len;
            n = off;
        }
        pad(b, s.u.s, n, f, '<');
        return;
    }
    if (!jv_is_num(v))
        jfail(c->a, "template line %d: unknown format code '%c' for object of type '%s'", line, f->type,
              jv_type_name(v));
    char t = f->type;
    const char *sign = f->sign == '+' ? "+" : f->sign == ' ' ? " " : "";
    if (!t && v.t != JV_FLOAT) {
        snprintf(num, sizeof num, "%s%lld", v.t == JV_BOOL || v.u.i >= 0 ? sign : "", (long long)(v.t == JV_BOOL ? v.u.b : v.u.i));
        if (v.t == JV_BOOL && !f->width)
            snprintf(num, sizeof num, "%s", v.u.b ? "True" : "False");
    } else if (t == 'd' || t == 'x' || t == 'X' || t == 'o' || t == 'b' || t == 'c') {
        if (v.t == JV_FLOAT)
            jfail(c->a, "template line %d: unknown format code '%c' for object of type 'float'", line, t);
        long long i = v.t == JV_BOOL ? v.u.b : v.u.i;
        if (t == 'd')
            snprintf(num, sizeof num, "%s%lld", i >= 0 ? sign : "", i);
        else if (t == 'x' || t == 'X' || t == 'o')
            snprintf(num, sizeof num, t == 'x' ? "%s%s%llx" : t == 'X' ? "%s%s%llX" : "%s%s%llo", i < 0 ? "-" : sign,
                     f->alt ? (t == 'o' ? "0o" : t == 'x' ? "0x" : "0X") : "", (unsigned long long)(i < 0 ? -i : i));
        else if (t == 'c')
            snprintf(num, sizeof num, "%c", (char)i);
        else {
            unsigned long long u = (unsigned long long)(i < 0 ? -i : i);
            char bits[80];
            int k = 0;
            do bits[k++] = (char)('0' + (u & 1)); while ((u >>= 1) && k < 70);
            size_t o = (size_t)snprintf(num, sizeof num, "%s%s", i < 0 ? "-" : sign, f->alt ? "0b" : "");
            while (k > 0 && o < sizeof num - 1)
                num[o++] = bits[--k];
            num[o] = 0;
        }
    } else {
        double d = jv_num(v);
        int prec = f->has_prec ? f->prec : 6;
        if (!t) {
            if (f->has_prec)
                snprintf(num, sizeof num, "%s%.*g", d >= 0 ? sign : "", prec ? prec : 1, d);
            else {
                char r[64];
                jfloat_repr(r, sizeof r, d);
                snprintf(num, sizeof num, "%s%s", d >= 0 ? sign : "", r);
            }
        } else if (t == 'f' || t == 'F' || t == 'e' || t == 'E' || t == 'g' || t == 'G') {
            char fmt[16];
            snprintf(fmt, sizeof fmt, "%%s%%%s.*%c", f->alt ? "#" : "", t);
            snprintf(num, sizeof num, fmt, d >= 0 ? sign : "", prec, d);
        } else if (t == '%') {
            snprintf(num, sizeof num, "%s%.*f%%", d >= 0 ? sign : "", prec, d * 100);
        } else {
            jfail(c->a, "template line %d: unknown format code '%c' for object of type '%s'", line, t, jv_type_name(v));
        }
    }
    pad(b, num, strlen(num), f, '>');
}

static jv str_format(const jargs *A, jv fmt)
{
    jctx *c = A->c;
    jstrbuf b = { c->a, NULL, 0, 0 };
    size_t autonum = 0;
    const char *s = fmt.u.s;
    size_t n = fmt.n;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '}') {
            if (i + 1 < n && s[i + 1] == '}') {
                jsb_putc(&b, '}');
                i++;
                continue;
            }
            jfail(c->a, "template line %d: single '}' encountered in format string", A->line);
        }
        if (ch != '{') {
            jsb_putc(&b, ch);
            continue;
        }
        if (i + 1 < n && s[i + 1] == '{') {
            jsb_putc(&b, '{');
            i++;
            continue;
        }
        size_t j = i + 1;
        int depth = 1;
        while (j < n && depth) {
            if (s[j] == '{') depth++;
            else if (s[j] == '}') depth--;
            if (depth)
                j++;
        }
        if (j >= n)
            jfail(c->a, "template line %d: single '{' encountered in format string", A->line);
        const char *field = s + i + 1;
        size_t fl = j - i - 1, name_end = 0;
        while (name_end < fl && field[name_end] != '!' && field[name_end] != ':' && field[name_end] != '.' &&
               field[name_end] != '[')
            name_end++;
        jv v;
        if (name_end == 0) {
            v = arg(A, autonum++, NULL, jv_undef(NULL));
            if (autonum > A->nargs)
                jfail(c->a, "template line %d: Replacement index %zu out of range for positional args tuple", A->line,
                      autonum - 1);
        } else if (cp_digit((unsigned char)field[0])) {
            size_t k = 0;
            for (size_t q = 0; q < name_end; q++)
                k = k * 10 + (size_t)(field[q] - '0');
            if (k >= A->nargs)
                jfail(c->a, "template line %d: Replacement index %zu out of range for positional args tuple", A->line, k);
            v = A->args[k];
        } else {
            char *nm = jalloc(c->a, name_end + 1);
            memcpy(nm, field, name_end);
            v = arg(A, SIZE_MAX, nm, jv_undef(NULL));
            bool found = false;
            for (size_t k = 0; k < A->nkw; k++)
                found = found || strcmp(A->kwn[k], nm) == 0;
            if (!found)
                jfail(c->a, "template line %d: KeyError: '%s'", A->line, nm);
        }
        size_t p = name_end;
        while (p < fl && (field[p] == '.' || field[p] == '[')) {
            bool dot = field[p] == '.';
            size_t q = ++p;
            while (q < fl && (dot ? field[q] != '.' && field[q] != '[' && field[q] != '!' && field[q] != ':' : field[q] != ']'))
                q++;
            jv key = jv_strdup(c->a, field + p, q - p);
            bool numeric = !dot && q > p;
            for (size_t r = p; r < q && numeric; r++)
                numeric = cp_digit((unsigned char)field[r]);
            if (numeric)
                key = jv_int(strtoll(key.u.s, NULL, 10));
            v = dot ? jgetattr(c, v, key.u.s, A->line) : jgetitem(c, v, key, A->line);
            p = dot ? q : q + 1;
        }
        char conv = 0;
        if (p + 1 < fl && field[p] == '!') {
            conv = field[p + 1];
            p += 2;
        }
        fspec f;
        parse_spec(c, p < fl && field[p] == ':' ? field + p + 1 : "", p < fl && field[p] == ':' ? fl - p - 1 : 0, &f,
                   A->line);
        if (conv == 'r' || conv == 'a') {
            jstrbuf r = { c->a, NULL, 0, 0 };
            jv_repr_to(&r, v);
            v = sb_value(&r);
        } else if (conv == 's') {
            v = str_of(c, v);
        }
        format_value(c, &b, v, &f, A->line);
        i = j;
    }
    return sb_value(&b);
}

jv jpercent_format(jctx *c, jv fmt, jv args, int line)
{
    jstrbuf b = { c->a, NULL, 0, 0 };
    jlist single = { 1, &args, true, JL_LIST };
    const jlist *items = args.t == JV_LIST && args.u.l->tuple ? args.u.l : &single;
    size_t k = 0;
    const char *s = fmt.u.s;
    for (size_t i = 0; i < fmt.n; i++) {
        if (s[i] != '%') {
            jsb_putc(&b, s[i]);
            continue;
        }
        if (++i >= fmt.n)
            jfail(c->a, "template line %d: incomplete format", line);
        jv v;
        if (s[i] == '(') {
            size_t e = i;
            while (e < fmt.n && s[e] != ')')
                e++;
            if (e >= fmt.n || args.t != JV_DICT)
                jfail(c->a, "template line %d: format requires a mapping", line);
            jv *found = jdict_get(args.u.d, jv_str(s + i + 1, e - i - 1));
            if (!found)
                jfail(c->a, "template line %d: KeyError in %% format", line);
            v = *found;
            i = e + 1;
        } else {
            v = jv_undef(NULL);
        }
        size_t st = i;
        while (i < fmt.n && strchr("-+ #0123456789.", s[i]))
            i++;
        if (i >= fmt.n)
            jfail(c->a, "template line %d: incomplete format", line);
        char t = s[i];
        if (t == '%') {
            jsb_putc(&b, '%');
            continue;
        }
        if (v.t == JV_UNDEF) {
            if (k >= items->n)
                jfail(c->a, "template line %d: not enough arguments for format string", line);
            v = items->v[k++];
        }
        char flags[64];
        size_t fl = i - st < 40 ? i - st : 40;
        memcpy(flags, s + st, fl);
        flags[fl] = 0;
        char spec[80], out[512];
        if (t == 's' || t == 'r' || t == 'a') {
            jstrbuf r = { c->a, NULL, 0, 0 };
            if (t == 's')
                jv_str_to(&r, v);
            else
                jv_repr_to(&r, v);
            fspec f = { ' ', strchr(flags, '-') ? '<' : '>', 0, 0, false, false, false, atoi(flags + strspn(flags, "-+ #0")), 0 };
            char *dot = strchr(flags, '.');
            size_t n = r.n;
            if (dot) {
                size_t off = 0, len;
                for (int q = atoi(dot + 1); q > 0 && off < r.n; q--)
                    jutf8_next(r.s + off, r.n - off, &len), off += len;
                n = off;
            }
            pad(&b, r.s ? r.s : "", n, &f, '>');
            continue;
        }
        if (!jv_is_num(v))
            jfail(c->a, "template line %d: %%%c format: a real number is required, not %s", line, t, jv_type_name(v));
        if (strchr("diouxXc", t)) {
            snprintf(spec, sizeof spec, "%%%sll%c", flags, t == 'i' || t == 'u' ? 'd' : t);
            if (t == 'c')
                snprintf(spec, sizeof spec, "%%%sc", flags);
            long long iv = v.t == JV_FLOAT ? (long long)v.u.f : v.t == JV_BOOL ? v.u.b : v.u.i;
            if (t == 'c')
                snprintf(out, sizeof out, spec, (int)iv);
            else
                snprintf(out, sizeof out, spec, iv);
        } else if (strchr("eEfFgG", t)) {
            snprintf(spec, sizeof spec, "%%%s%c", flags, t);
            snprintf(out, sizeof out, spec, jv_num(v));
        } else {
            jfail(c->a, "template line %d: unsupported format character '%c'", line, t);
        }
        jsb_puts(&b, out);
    }
    if (k < items->n && args.t != JV_DICT && items != &single)
        jfail(c->a, "template line %d: not all arguments converted during string formatting", line);
    return sb_value(&b);
}

/* ---- methods ---- */

static const char *const str_methods[] = { "capitalize", "center", "count", "endswith", "find", "format", "index",
    "isalnum", "isalpha", "isdigit", "islower", "isspace", "isupper", "join", "ljust", "lower", "lstrip",
    "partition", "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit",
    "rstrip", "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper", "zfill", "isnumeric",
    "isdecimal", "istitle", "casefold", "expandtabs", "isidentifier", "isprintable", "isascii", "encode",
    "format_map", "maketrans", "translate", NULL };
static const char *const dict_methods[] = { "get", "items", "keys", "values", "copy", "fromkeys", NULL };
static const char *const dict_unsafe[] = { "clear", "pop", "popitem", "setdefault", "update", NULL };
static const char *const list_methods[] = { "count", "index", "copy", NULL };
static const char *const list_unsafe[] = { "append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort",
                                           NULL };

static bool in_names(const char *const *names, const char *name)
{
    for (size_t i = 0; names[i]; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

bool jmethod_exists(jv self, const char *name, bool *unsafe)
{
    *unsafe = false;
    if (name[0] == '_')
        return false;
    if (self.t == JV_STR)
        return in_names(str_methods, name);
    if (self.t == JV_DICT && !self.u.d->ns) {
        *unsafe = in_names(dict_unsafe, name);
        return *unsafe || in_names(dict_methods, name);
    }
    if (self.t == JV_LIST && !self.u.l->view) {
        *unsafe = !self.u.l->tuple && in_names(list_unsafe, name);
        return *unsafe || in_names(list_methods, name);
    }
    return false;
}

static jv items_of(jctx *c, const jdict *d, jlview view)
{
    jv r = jv_list(c->a, d->n);
    r.u.l->view = view;
    for (size_t i = 0; i < d->n; i++) {
        jv t = jv_list(c->a, 2);
        t.u.l->tuple = true;
        t.u.l->v[0] = d->keys[i];
        t.u.l->v[1] = d->vals[i];
        r.u.l->v[i] = t;
    }
    return r;
}

static jv str_method_plain(const jargs *A, jv s, const char *m);

/* Markup's methods return Markup where they return a string. */
static jv str_method(const jargs *A, jv s, const char *m)
{
    jv r = str_method_plain(A, s, m);
    if (r.t == JV_STR)
        r.safe = s.safe && strcmp(m, "join") != 0 && strcmp(m, "format") != 0;
    return r;
}

static jv str_method_plain(const jargs *A, jv s, const char *m)
{
    jctx *c = A->c;
    int line = A->line;
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
        max_args(A, 1);
        jv chars = arg(A, 0, "chars", jv_none());
        if (chars.t != JV_NONE)
            need_str(A, chars, m);
        return strip(s, chars, m[0] != 'r', m[0] != 'l');
    }
    if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
        max_args(A, 2);
        jv sep = arg(A, 0, "sep", jv_none());
        if (sep.t != JV_NONE)
            need_str(A, sep, m);
        return split(c, s, sep, need_int(A, arg(A, 1, "maxsplit", jv_int(-1)), m), m[0] == 'r', line);
    }
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        jv p = arg(A, 0, NULL, jv_undef(NULL));
        if (p.t == JV_UNDEF && A->nargs == 0)
            jfail(c->a, "template line %d: %s() takes at least 1 argument", line, m);
        jv sub = s;
        if (A->nargs > 1) {
            size_t cnt = jutf8_count(s.u.s, s.n);
            int64_t st = need_int(A, A->args[1], m), en = A->nargs > 2 ? need_int(A, A->args[2], m) : (int64_t)cnt;
            if (st < 0) st = st + (int64_t)cnt < 0 ? 0 : st + (int64_t)cnt;
            if (en < 0) en = en + (int64_t)cnt < 0 ? 0 : en + (int64_t)cnt;
            if ((size_t)st > cnt) return jv_bool(false);
            if ((size_t)en > cnt) en = (int64_t)cnt;
            if (en < st) en = st;
            size_t off = 0, len, k = 0, lo = 0;
            for (; off < s.n && k < (size_t)en; k++) {
                if (k == (size_t)st) lo = off;
                jutf8_next(s.u.s + off, s.n - off, &len);
                off += len;
            }
            if ((size_t)st == k) lo = off;
            sub = jv_str(s.u.s + lo, off - lo);
        }
        return jv_bool(str_prefix(c, sub, p, m[0] == 'e', line));
    }
    if (!strcmp(m, "replace")) {
        if (A->nargs < 2)
            jfail(c->a, "template line %d: replace() takes at least 2 arguments", line);
        max_args(A, 3);
        return replace(c, s, need_str(A, A->args[0], m), need_str(A, A->args[1], m),
                       need_int(A, arg(A, 2, "count", jv_int(-1)), m));
    }
    if (!strcmp(m, "upper")) return change_case(c, s, CASE_UPPER);
    if (!strcmp(m, "lower") || !strcmp(m, "casefold")) return change_case(c, s, CASE_LOWER);
    if (!strcmp(m, "title")) return change_case(c, s, CASE_TITLE);
    if (!strcmp(m, "capitalize")) return change_case(c, s, CASE_CAPITALIZE);
    if (!strcmp(m, "swapcase")) return change_case(c, s, CASE_SWAP);
    if (!strcmp(m, "format")) return str_format(A, s);
    if (!strcmp(m, "join")) return join(c, jiter(c, arg(A, 0, NULL, jv_undef(NULL)), line), s, jv_none(), true, line);
    if (!strcmp(m, "splitlines")) return splitlines(c, s, jv_truthy(arg(A, 0, "keepends", jv_bool(false))));
    if (!strcmp(m, "find") || !strcmp(m, "rfind") || !strcmp(m, "index") || !strcmp(m, "rindex") || !strcmp(m, "count")) {
        jv sub = need_str(A, arg(A, 0, NULL, jv_undef(NULL)), m);
        if (!strcmp(m, "count")) {
            if (sub.n == 0)
                return jv_int((int64_t)jutf8_count(s.u.s, s.n) + 1);
            int64_t k = 0;
            const char *p = s.u.s, *end = s.u.s + s.n, *hit;
            while ((hit = find_sub(p, (size_t)(end - p), sub.u.s, sub.n)))
                k++, p = hit + sub.n;
            return jv_int(k);
        }
        const char *hit = m[0] == 'r' ? rfind_sub(s.u.s, s.n, sub.u.s, sub.n) : find_sub(s.u.s, s.n, sub.u.s, sub.n);
        if (!hit && (m[0] == 'i' || m[1] == 'i'))
            jfail(c->a, "template line %d: substring not found", line);
        return jv_int(hit ? (int64_t)jutf8_count(s.u.s, (size_t)(hit - s.u.s)) : -1);
    }
    if (!strcmp(m, "removeprefix") || !strcmp(m, "removesuffix")) {
        jv p = need_str(A, arg(A, 0, NULL, jv_undef(NULL)), m);
        bool suf = m[6] == 's';
        if (p.n <= s.n && memcmp(suf ? s.u.s + s.n - p.n : s.u.s, p.u.s, p.n) == 0)
            return jv_str(suf ? s.u.s : s.u.s + p.n, s.n - p.n);
        return s;
    }
    if (!strcmp(m, "partition") || !strcmp(m, "rpartition")) {
        jv sep = need_str(A, arg(A, 0, NULL, jv_undef(NULL)), m);
        if (sep.n == 0)
            jfail(c->a, "template line %d: empty separator", line);
        const char *hit = m[0] == 'r' ? rfind_sub(s.u.s, s.n, sep.u.s, sep.n) : find_sub(s.u.s, s.n, sep.u.s, sep.n);
        jv t = jv_list(c->a, 3);
        t.u.l->tuple = true;
        if (!hit) {
            t.u.l->v[m[0] == 'r' ? 2 : 0] = s;
            t.u.l->v[1] = jv_str("", 0);
            t.u.l->v[m[0] == 'r' ? 0 : 2] = jv_str("", 0);
        } else {
            t.u.l->v[0] = jv_str(s.u.s, (size_t)(hit - s.u.s));
            t.u.l->v[1] = sep;
            t.u.l->v[2] = jv_str(hit + sep.n, s.n - (size_t)(hit - s.u.s) - sep.n);
        }
        return t;
    }
    if (!strcmp(m, "center") || !strcmp(m, "ljust") || !strcmp(m, "rjust") || !strcmp(m, "zfill")) {
        fspec f = { ' ', m[0] == 'c' ? '^' : m[0] == 'l' ? '<' : '>', 0, 0, false, false, false,
                    (int)VC_MIN(need_int(A, arg(A, 0, NULL, jv_undef(NULL)), m), 100000), 0 };
        if (m[0] == 'z')
            f.fill = '0', f.align = '=';
        jv fc = arg(A, 1, NULL, jv_none());
        if (fc.t == JV_STR && fc.n == 1)
            f.fill = fc.u.s[0];
        jstrbuf b = { c->a, NULL, 0, 0 };
        if (m[0] == 'c') {             /* Python centers with the extra space on the right for odd... */
            size_t w = jutf8_count(s.u.s, s.n), width = f.width > 0 ? (size_t)f.width : 0;
            size_t padn = width > w ? width - w : 0, left = padn / 2 + (padn & width & 1);
            for (size_t i = 0; i < left; i++) jsb_putc(&b, f.fill);
            jsb_put(&b, s.u.s, s.n);
            for (size_t i = left; i < padn; i++) jsb_putc(&b, f.fill);
            return sb_value(&b);
        }
        pad(&b, s.u.s, s.n, &f, '<');
        return sb_value(&b);
    }
    /* predicates */
    bool all = s.n > 0, any_cased = false, has_upper = false, has_lower = false;
    size_t len;
    for (size_t i = 0; i < s.n; i += len) {
        uint32_t cp = jutf8_next(s.u.s + i, s.n - i, &len);
        if (!strcmp(m, "isdigit") || !strcmp(m, "isnumeric") || !strcmp(m, "isdecimal")) all = all && cp_digit(cp);
        else if (!strcmp(m, "isalpha")) all = all && cp_alpha(cp);
        else if (!strcmp(m, "isalnum")) all = all && (cp_alpha(cp) || cp_digit(cp));
        else if (!strcmp(m, "isspace")) all = all && jpy_space(cp);
        else if (!strcmp(m, "isascii")) all = all && cp < 0x80;
        if (cp_cased(cp)) {
            any_cased = true;
            has_upper = has_upper || cp_lower(cp) != cp;
            has_lower = has_lower || cp_upper(cp) != cp;
        }
    }
    if (!strcmp(m, "islower")) return jv_bool(any_cased && !has_upper);
    if (!strcmp(m, "isupper")) return jv_bool(any_cased && !has_lower);
    if (!strcmp(m, "isascii")) return jv_bool(all || s.n == 0);
    if (!strcmp(m, "isdigit") || !strcmp(m, "isnumeric") || !strcmp(m, "isdecimal") || !strcmp(m, "isalpha") ||
        !strcmp(m, "isalnum") || !strcmp(m, "isspace"))
        return jv_bool(all);
    jfail(c->a, "template line %d: str.%s() is not supported", line, m);
}

jv jmethod_call(jctx *c, jv self, const char *name, const jv *args, size_t nargs, const char **kwn, const jv *kwv,
                size_t nkw, int line)
{
    jargs A = { c, name, args, nargs, kwn, kwv, nkw, line };
    if (self.t == JV_STR)
        return str_method(&A, self, name);
    if (self.t == JV_DICT) {
        const jdict *d = self.u.d;
        if (!strcmp(name, "get")) {
            if (nargs < 1)
                jfail(c->a, "template line %d: get expected at least 1 argument, got 0", line);
            max_args(&A, 2);
            jv *v = jdict_get(d, args[0]);
            return v ? *v : arg(&A, 1, NULL, jv_none());
        }
        if (!strcmp(name, "items")) return items_of(c, d, JL_ITEMS);
        if (!strcmp(name, "keys") || !strcmp(name, "values")) {
            jv r = jv_list(c->a, d->n);
            r.u.l->view = name[0] == 'k' ? JL_KEYS : JL_VALUES;
            for (size_t i = 0; i < d->n; i++)
                r.u.l->v[i] = name[0] == 'k' ? d->keys[i] : d->vals[i];
            return r;
        }
        if (!strcmp(name, "copy")) {
            jv r = jv_dict(c->a);
            for (size_t i = 0; i < d->n; i++)
                jdict_set(c->a, r.u.d, d->keys[i], d->vals[i]);
            return r;
        }
    }
    if (self.t == JV_LIST) {
        const jlist *l = self.u.l;
        if (!strcmp(name, "count") || !strcmp(name, "index")) {
            jv x = arg(&A, 0, NULL, jv_undef(NULL));
            int64_t k = 0;
            for (size_t i = 0; i < l->n; i++)
                if (jv_eq(l->v[i], x)) {
                    if (name[0] == 'i')
                        return jv_int((int64_t)i);
                    k++;
                }
            if (name[0] == 'i')
                jfail(c->a, "template line %d: value is not in list", line);
            return jv_int(k);
        }
        if (!strcmp(name, "copy")) {
            jv r = jv_list(c->a, l->n);
            if (l->n)
                memcpy(r.u.l->v, l->v, l->n * sizeof(jv));
            return r;
        }
    }
    jfail(c->a, "template line %d: '%s' object has no method '%s'", line, jv_type_name(self), name);
}

/* ---- sorting ---- */

static int cmp_key(jctx *c, jv a, jv b, bool case_sensitive)
{
    if (!case_sensitive) {
        if (a.t == JV_STR) a = change_case(c, a, CASE_LOWER);
        if (b.t == JV_STR) b = change_case(c, b, CASE_LOWER);
    }
    return jv_cmp(c->a, a, b, "<");
}

/* Stable merge sort of v by keys. */
static void sort_by(jctx *c, jv *v, jv *keys, size_t n, bool case_sensitive, bool reverse)
{
    if (n < 2)
        return;
    jv *tv = jalloc_array(c->a, n, sizeof *tv), *tk = jalloc_array(c->a, n, sizeof *tk);
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = VC_MIN(lo + width, n), hi = VC_MIN(lo + 2 * width, n), i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int r = cmp_key(c, keys[j], keys[i], case_sensitive);
                bool take_right = reverse ? r > 0 : r < 0;
                if (take_right)
                    tv[k] = v[j], tk[k++] = keys[j++];
                else
                    tv[k] = v[i], tk[k++] = keys[i++];
            }
            while (i < mid)
                tv[k] = v[i], tk[k++] = keys[i++];
            while (j < hi)
                tv[k] = v[j], tk[k++] = keys[j++];
        }
        memcpy(v, tv, n * sizeof *v);
        memcpy(keys, tk, n * sizeof *keys);
    }
}

/* item.attribute, where attribute may be dotted ("a.b") or an index. */
static jv attr_path(jctx *c, jv item, jv attribute, int line)
{
    if (attribute.t != JV_STR)
        return jgetitem(c, item, attribute, line);
    const char *s = attribute.u.s, *end = s + attribute.n;
    while (s <= end) {
        const char *dot = memchr(s, '.', (size_t)(end - s));
        size_t n = dot ? (size_t)(dot - s) : (size_t)(end - s);
        bool digits = n > 0;
        for (size_t i = 0; i < n; i++)
            digits = digits && cp_digit((unsigned char)s[i]);
        jv key = digits ? jv_int(strtoll(jv_strdup(c->a, s, n).u.s, NULL, 10)) : jv_strdup(c->a, s, n);
        item = jgetitem(c, item, key, line);
        if (!dot)
            break;
        s = dot + 1;
    }
    return item;
}

/* ---- filters ---- */

static const char *const filter_names[] = { "abs", "attr", "batch", "capitalize", "center", "count", "d", "default",
    "dictsort", "e", "escape", "first", "float", "forceescape", "format", "indent", "int", "items", "join", "last",
    "length", "list", "lower", "map", "max", "min", "reject", "rejectattr", "replace", "reverse", "round", "safe",
    "select", "selectattr", "sort", "string", "sum", "title", "tojson", "trim", "truncate", "unique", "upper",
    "wordcount", NULL };

static const char *const test_names[] = { "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped",
    "even", "false", "filter", "float", "ge", "gt", "greaterthan", "in", "integer", "iterable", "le", "lessthan",
    "lower", "lt", "mapping", "ne", "none", "number", "odd", "sameas", "sequence", "string", "test", "true",
    "undefined", "upper", "==", "!=", "<", "<=", ">", ">=", NULL };

bool jfilter_known(const char *name) { return in_names(filter_names, name); }
bool jtest_known(const char *name) { return in_names(test_names, name); }

/* select/reject(test, args...) and selectattr/rejectattr(attr, test, args...) */
static jv select_items(const jargs *A, jv seq, bool attr, bool keep)
{
    jctx *c = A->c;
    jlist *items = jv_truthy(seq) ? jiter(c, seq, A->line) : jv_list(c->a, 0).u.l;   /* `if value:` */
    size_t first = attr ? 1 : 0;
    jv attribute = attr ? arg(A, 0, NULL, jv_undef(NULL)) : jv_none();
    if (attr && attribute.t == JV_UNDEF)
        jfail(c->a, "template line %d: %s: missing attribute", A->line, A->fname);
    jv test = A->nargs > first ? need_str(A, A->args[first], "test name") : jv_none();
    const char *tname = NULL;
    if (test.t == JV_STR) {
        tname = jv_strdup(c->a, test.u.s, test.n).u.s;
        if (!jtest_known(tname))
            jfail(c->a, "template line %d: no test named '%s'", A->line, tname);
    }
    size_t targs = A->nargs > first + 1 ? A->nargs - first - 1 : 0;
    vlist out = { c, NULL, 0, 0 };
    for (size_t i = 0; i < items->n; i++) {
        jv v = attr ? attr_path(c, items->v[i], attribute, A->line) : items->v[i];
        bool ok = tname ? jtest(c, tname, v, A->args + first + 1, targs, A->line) : jv_truthy(v);
        if (ok == keep)
            vl_push(&out, items->v[i]);
    }
    return as_gen(vl_value(&out));
}

static jv int_filter(const jargs *A, jv v)
{
    jv def = arg(A, 0, "default", jv_int(0));
    int64_t base = need_int(A, arg(A, 1, "base", jv_int(10)), "int");
    if (v.t == JV_INT) return v;
    if (v.t == JV_BOOL) return jv_int(v.u.b);
    if (v.t == JV_FLOAT) {
        if (!isfinite(v.u.f) || fabs(v.u.f) >= 9.2e18)
            return def;
        return jv_int((int64_t)v.u.f);
    }
    if (v.t == JV_STR) {
        jv t = strip(v, jv_none(), true, true);
        char *s = (char *)jv_strdup(A->c->a, t.u.s, t.n).u.s;
        char *end;
        long long iv = strtoll(s, &end, (int)(base >= 2 && base <= 36 ? base : 10));
        if (t.n && *end == 0)
            return jv_int(iv);
        double d = strtod(s, &end);
        if (t.n && *end == 0 && isfinite(d) && fabs(d) < 9.2e18)
            return jv_int((int64_t)d);
    }
    return def;
}

static jv tojson_filter(const jargs *A, jv v)
{
    jctx *c = A->c;
    max_args(A, 4);
    jjson_opts o = { jv_truthy(arg(A, 0, "ensure_ascii", jv_bool(false))), jv_truthy(arg(A, 3, "sort_keys", jv_bool(false))),
                     NULL, ", ", ": " };
    jv indent = arg(A, 1, "indent", jv_none());
    if (indent.t == JV_INT || indent.t == JV_BOOL) {
        int64_t n = indent.t == JV_BOOL ? indent.u.b : indent.u.i;
        char *sp = jalloc(c->a, (size_t)(n > 0 ? VC_MIN(n, 1000) : 0) + 1);
        for (int64_t i = 0; i < n && i < 1000; i++)
            sp[i] = ' ';
        o.indent = sp;
        o.item_sep = ",";
    } else if (indent.t == JV_STR) {
        o.indent = jv_strdup(c->a, indent.u.s, indent.n).u.s;
        o.item_sep = ",";
    } else if (indent.t != JV_NONE) {
        jfail(c->a, "template line %d: tojson: indent must be an integer or a string", A->line);
    }
    jv seps = arg(A, 2, "separators", jv_none());
    if (seps.t == JV_LIST) {
        if (seps.u.l->n != 2 || seps.u.l->v[0].t != JV_STR || seps.u.l->v[1].t != JV_STR)
            jfail(c->a, "template line %d: tojson: separators must be two strings", A->line);
        o.item_sep = jv_strdup(c->a, seps.u.l->v[0].u.s, seps.u.l->v[0].n).u.s;
        o.key_sep = jv_strdup(c->a, seps.u.l->v[1].u.s, seps.u.l->v[1].n).u.s;
    } else if (seps.t != JV_NONE) {
        jfail(c->a, "template line %d: tojson: separators must be a pair", A->line);
    }
    jstrbuf b = { c->a, NULL, 0, 0 };
    jv_json_to(c->a, &b, v, &o, 0);
    return sb_value(&b);
}

static jv indent_filter(const jargs *A, jv v)
{
    jctx *c = A->c;
    jv s = str_of(c, v), w = arg(A, 0, "width", jv_int(4));
    bool first = jv_truthy(arg(A, 1, "first", jv_bool(false))), blank = jv_truthy(arg(A, 2, "blank", jv_bool(false)));
    jv ind;
    if (w.t == JV_STR) {
        ind = w;
    } else {
        int64_t n = need_int(A, w, "indent");
        jstrbuf sp = { c->a, NULL, 0, 0 };
        for (int64_t i = 0; i < n && i < 10000; i++)
            jsb_putc(&sp, ' ');
        ind = sb_value(&sp);
    }
    jstrbuf t = { c->a, NULL, 0, 0 };
    jsb_put(&t, s.u.s, s.n);
    jsb_putc(&t, '\n');
    jlist *lines = splitlines(c, sb_value(&t), false).u.l;
    jstrbuf b = { c->a, NULL, 0, 0 };
    if (first)
        jsb_put(&b, ind.u.s, ind.n);
    for (size_t i = 0; i < lines->n; i++) {
        jv ln = lines->v[i];
        if (i) {
            jsb_putc(&b, '\n');
            if (blank || ln.n)
                jsb_put(&b, ind.u.s, ind.n);
        }
        jsb_put(&b, ln.u.s, ln.n);
    }
    return sb_value(&b);
}

static jv minmax(const jargs *A, jv v, bool want_max)
{
    jctx *c = A->c;
    jlist *items = jiter(c, v, A->line);
    bool cs = jv_truthy(arg(A, 0, "case_sensitive", jv_bool(false)));
    jv attribute = arg(A, 1, "attribute", jv_none());
    if (items->n == 0)
        return jv_undef("No aggregated item, sequence was empty.");
    size_t best = 0;
    for (size_t i = 1; i < items->n; i++) {
        jv a = attribute.t != JV_NONE ? attr_path(c, items->v[i], attribute, A->line) : items->v[i];
        jv b = attribute.t != JV_NONE ? attr_path(c, items->v[best], attribute, A->line) : items->v[best];
        int r = cmp_key(c, a, b, cs);
        if (want_max ? r > 0 : r < 0)
            best = i;
    }
    return items->v[best];
}

jv jfilter(jctx *c, jframe *f, const char *name, jv v, const jv *args, size_t nargs, const char **kwn, const jv *kwv,
           size_t nkw, int line)
{
    (void)f;
    jargs A = { c, name, args, nargs, kwn, kwv, nkw, line };
    if (!jfilter_known(name))
        jfail(c->a, "template line %d: no filter named '%s'", line, name);
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        jv def = arg(&A, 0, "default_value", jv_str("", 0));
        bool boolean = jv_truthy(arg(&A, 1, "boolean", jv_bool(false)));
        return v.t == JV_UNDEF || (boolean && !jv_truthy(v)) ? def : v;
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        switch (v.t) {
        case JV_STR: return jv_int((int64_t)jutf8_count(v.u.s, v.n));
        case JV_LIST: if (v.u.l->view != JL_GEN) return jv_int((int64_t)v.u.l->n); break;
        case JV_DICT: if (!v.u.d->ns) return jv_int((int64_t)v.u.d->n); break;
        case JV_UNDEF: return jv_int(0);
        case JV_LOOP: return jv_int((int64_t)v.u.loop->items->n);
        default: break;
        }
        jfail(c->a, "template line %d: object of type '%s' has no len()", line, jv_type_name(v));
    }
    if (!strcmp(name, "string")) return str_of(c, v);
    if (!strcmp(name, "safe")) {
        jv s = str_of(c, v);
        s.safe = true;
        return s;
    }
    if (!strcmp(name, "tojson")) return tojson_filter(&A, v);
    if (!strcmp(name, "items")) {
        if (v.t == JV_UNDEF)
            return jv_list(c->a, 0);
        if (v.t != JV_DICT || v.u.d->ns)
            jfail(c->a, "template line %d: can only get item pairs from a mapping", line);
        return items_of(c, v.u.d, JL_GEN);
    }
    if (!strcmp(name, "list")) {
        jlist *l = jiter(c, v, line);
        jv r = jv_list(c->a, l->n);
        if (l->n)
            memcpy(r.u.l->v, l->v, l->n * sizeof(jv));
        return r;
    }
    if (!strcmp(name, "int")) return int_filter(&A, v);
    if (!strcmp(name, "float")) {
        jv def = arg(&A, 0, "default", jv_float(0));
        if (jv_is_num(v)) return jv_float(jv_num(v));
        if (v.t == JV_STR) {
            jv t = strip(v, jv_none(), true, true);
            char *s = (char *)jv_strdup(c->a, t.u.s, t.n).u.s, *end;
            double d = strtod(s, &end);
            if (t.n && *end == 0)
                return jv_float(d);
        }
        return def;
    }
    if (!strcmp(name, "abs")) {
        if (!jv_is_num(v))
            jfail(c->a, "template line %d: bad operand type for abs(): '%s'", line, jv_type_name(v));
        return v.t == JV_FLOAT ? jv_float(fabs(v.u.f)) : jv_int(llabs(v.t == JV_BOOL ? v.u.b : v.u.i));
    }
    if (!strcmp(name, "round")) {
        int64_t prec = need_int(&A, arg(&A, 0, "precision", jv_int(0)), "round");
        jv method = arg(&A, 1, "method", jv_str("common", 6));
        if (!jv_is_num(v))
            jfail(c->a, "template line %d: round: a number is required", line);
        double x = jv_num(v), m = pow(10, (double)prec), r;
        if (method.t == JV_STR && method.n == 4 && !memcmp(method.u.s, "ceil", 4)) r = ceil(x * m) / m;
        else if (method.t == JV_STR && method.n == 5 && !memcmp(method.u.s, "floor", 5)) r = floor(x * m) / m;
        else r = round(x * m) / m;
        return jv_float(r);
    }
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        if (name[0] == 'l' && v.t == JV_LIST && v.u.l->view == JL_GEN)
            jfail(c->a, "template line %d: 'generator' object is not reversible", line);
        jlist *l = jiter(c, v, line);
        if (l->n == 0)
            return jv_undef(name[0] == 'f' ? "No first item, sequence was empty." : "No last item, sequence was empty.");
        return name[0] == 'f' ? l->v[0] : l->v[l->n - 1];
    }
    if (!strcmp(name, "join")) {
        jv sep = str_of(c, arg(&A, 0, "d", jv_str("", 0)));
        return join(c, jiter(c, v, line), sep, arg(&A, 1, "attribute", jv_none()), false, line);
    }
    if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "capitalize")) {
        jv r = change_case(c, str_of(c, v), name[0] == 'u' ? CASE_UPPER : name[0] == 'l' ? CASE_LOWER : CASE_CAPITALIZE);
        r.safe = v.t == JV_STR && v.safe;
        return r;
    }
    if (!strcmp(name, "title")) {
        /* jinja2: each word (split at -, whitespace, brackets) as item[0].upper() + item[1:].lower() */
        jv s = str_of(c, v);
        jstrbuf b = { c->a, NULL, 0, 0 };
        bool start = true;
        size_t len;
        for (size_t i = 0; i < s.n; i += len) {
            uint32_t cp = jutf8_next(s.u.s + i, s.n - i, &len);
            bool sep = jpy_space(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
            jutf8_put(&b, sep ? cp : start ? cp_upper(cp) : cp_lower(cp));
            start = sep;
        }
        return sb_value(&b);
    }
    if (!strcmp(name, "trim")) {
        jv chars = arg(&A, 0, "chars", jv_none());
        jv r = strip(str_of(c, v), chars.t == JV_STR ? chars : jv_none(), true, true);
        r.safe = v.t == JV_STR && v.safe;
        return r;
    }
    if (!strcmp(name, "replace")) {
        jv s = str_of(c, v);
        jv old = str_of(c, arg(&A, 0, "old", jv_str("", 0))), new_ = str_of(c, arg(&A, 1, "new", jv_str("", 0)));
        jv count = arg(&A, 2, "count", jv_none());
        return replace(c, s, old, new_, count.t == JV_NONE ? -1 : need_int(&A, count, "replace"));
    }
    if (!strcmp(name, "escape") || !strcmp(name, "e") || !strcmp(name, "forceescape")) {
        jv s = v.t == JV_STR && v.safe && name[0] != 'f' ? v : jv_escape(c->a, str_of(c, v));
        s.safe = true;
        return s;
    }
    if (!strcmp(name, "format")) {
        jv s = str_of(c, v);
        if (nkw) {
            jv d = jv_dict(c->a);
            for (size_t i = 0; i < nkw; i++)
                jdict_set(c->a, d.u.d, jv_cstr(c->a, kwn[i]), kwv[i]);
            return jpercent_format(c, s, d, line);
        }
        jv t = jv_list(c->a, nargs);
        t.u.l->tuple = true;
        for (size_t i = 0; i < nargs; i++)
            t.u.l->v[i] = args[i];
        return jpercent_format(c, s, t, line);
    }
    if (!strcmp(name, "indent")) return indent_filter(&A, v);
    if (!strcmp(name, "center")) {
        jv s = str_of(c, v);
        jargs B = A;
        jv w = arg(&A, 0, "width", jv_int(80));
        B.args = &w, B.nargs = 1, B.nkw = 0;
        return str_method(&B, s, "center");
    }
    if (!strcmp(name, "wordcount")) return jv_int((int64_t)split(c, str_of(c, v), jv_none(), -1, false, line).u.l->n);
    if (!strcmp(name, "reverse")) {
        if (v.t == JV_STR) {
            jlist *l = jiter(c, v, line);
            jstrbuf b = { c->a, NULL, 0, 0 };
            for (size_t i = l->n; i > 0; i--)
                jsb_put(&b, l->v[i - 1].u.s, l->v[i - 1].n);
            return sb_value(&b);
        }
        jlist *l = jiter(c, v, line);
        jv r = jv_list(c->a, l->n);
        for (size_t i = 0; i < l->n; i++)
            r.u.l->v[i] = l->v[l->n - 1 - i];
        if (v.t == JV_LIST && v.u.l->view != JL_GEN)
            r.u.l->view = JL_GEN;                 /* reversed(value): an iterator */
        return r;
    }
    if (!strcmp(name, "attr")) {
        jv n = need_str(&A, arg(&A, 0, "name", jv_undef(NULL)), "attr");
        if (v.t == JV_DICT && !v.u.d->ns) {     /* attr() looks at attributes only, not items */
            bool unsafe;
            const char *nm = jv_strdup(c->a, n.u.s, n.n).u.s;
            return jmethod_exists(v, nm, &unsafe) ? jgetattr(c, v, nm, line) : jv_undef("no such attribute");
        }
        return jgetattr(c, v, jv_strdup(c->a, n.u.s, n.n).u.s, line);
    }
    if (!strcmp(name, "batch")) {
        int64_t n = need_int(&A, arg(&A, 0, "linecount", jv_undef(NULL)), "batch");
        jv fill = arg(&A, 1, "fill_with", jv_none());
        if (n <= 0)
            jfail(c->a, "template line %d: batch: linecount must be positive", line);
        jlist *l = jiter(c, v, line);
        vlist out = { c, NULL, 0, 0 };
        for (size_t i = 0; i < l->n; i += (size_t)n) {
            size_t k = VC_MIN((size_t)n, l->n - i);
            jv row = jv_list(c->a, fill.t != JV_NONE ? (size_t)n : k);
            for (size_t j = 0; j < row.u.l->n; j++)
                row.u.l->v[j] = j < k ? l->v[i + j] : fill;
            vl_push(&out, row);
        }
        return as_gen(vl_value(&out));
    }
    if (!strcmp(name, "truncate")) {
        jv s = str_of(c, v);
        int64_t length = need_int(&A, arg(&A, 0, "length", jv_int(255)), "truncate");
        bool killwords = jv_truthy(arg(&A, 1, "killwords", jv_bool(false)));
        jv end = str_of(c, arg(&A, 2, "end", jv_str("...", 3)));
        jv lw = arg(&A, 3, "leeway", jv_int(5));
        int64_t leeway = lw.t == JV_NONE ? 5 : need_int(&A, lw, "truncate");
        size_t n = jutf8_count(s.u.s, s.n);
        if ((int64_t)n <= length + leeway)
            return s;
        int64_t keep = length - (int64_t)jutf8_count(end.u.s, end.n);
        if (keep < 0) keep = 0;
        jv head = jv_str(s.u.s, cp_offset(s.u.s, s.n, (size_t)keep));
        jstrbuf b = { c->a, NULL, 0, 0 };
        if (!killwords) {
            const char *sp = rfind_sub(head.u.s, head.n, " ", 1);
            if (sp)
                head.n = (size_t)(sp - head.u.s);
        }
        jsb_put(&b, head.u.s, head.n);
        jsb_put(&b, end.u.s, end.n);
        return sb_value(&b);
    }
    if (!strcmp(name, "sum")) {
        jlist *l = jiter(c, v, line);
        jv attribute = arg(&A, 0, "attribute", jv_none()), total = arg(&A, 1, "start", jv_int(0));
        for (size_t i = 0; i < l->n; i++) {
            jv x = attribute.t != JV_NONE ? attr_path(c, l->v[i], attribute, line) : l->v[i];
            if (!jv_is_num(x) || !jv_is_num(total))
                jfail(c->a, "template line %d: sum: unsupported operand types", line);
            total = total.t == JV_FLOAT || x.t == JV_FLOAT ? jv_float(jv_num(total) + jv_num(x))
                                                           : jv_int((int64_t)jv_num(total) + (x.t == JV_BOOL ? x.u.b : x.u.i));
        }
        return total;
    }
    if (!strcmp(name, "max") || !strcmp(name, "min")) return minmax(&A, v, name[1] == 'a');
    if (!strcmp(name, "sort") || !strcmp(name, "dictsort") || !strcmp(name, "unique")) {
        bool dictsort = name[0] == 'd';
        jlist *l = dictsort ? NULL : jiter(c, v, line);
        bool reverse = false, cs;
        jv attribute = jv_none();
        jv by = jv_str("key", 3);
        if (dictsort) {
            if (v.t != JV_DICT || v.u.d->ns)
                jfail(c->a, "template line %d: dictsort: a mapping is required", line);
            l = items_of(c, v.u.d, JL_LIST).u.l;
            cs = jv_truthy(arg(&A, 0, "case_sensitive", jv_bool(false)));
            by = arg(&A, 1, "by", by);
            reverse = jv_truthy(arg(&A, 2, "reverse", jv_bool(false)));
        } else if (name[0] == 's') {
            reverse = jv_truthy(arg(&A, 0, "reverse", jv_bool(false)));
            cs = jv_truthy(arg(&A, 1, "case_sensitive", jv_bool(false)));
            attribute = arg(&A, 2, "attribute", jv_none());
        } else {
            cs = jv_truthy(arg(&A, 0, "case_sensitive", jv_bool(false)));
            attribute = arg(&A, 1, "attribute", jv_none());
        }
        jv *vals = jalloc_array(c->a, l->n + 1, sizeof *vals), *keys = jalloc_array(c->a, l->n + 1, sizeof *keys);
        for (size_t i = 0; i < l->n; i++) {
            vals[i] = l->v[i];
            keys[i] = dictsort ? l->v[i].u.l->v[by.t == JV_STR && by.n == 5 && !memcmp(by.u.s, "value", 5) ? 1 : 0]
                      : attribute.t != JV_NONE ? attr_path(c, l->v[i], attribute, line) : l->v[i];
        }
        jv r = jv_list(c->a, 0);
        if (name[0] == 'u') {
            vlist out = { c, NULL, 0, 0 }, seen = { c, NULL, 0, 0 };
            for (size_t i = 0; i < l->n; i++) {
                jv k = !cs && keys[i].t == JV_STR ? change_case(c, keys[i], CASE_LOWER) : keys[i];
                bool dup = false;
                for (size_t j = 0; j < seen.n && !dup; j++)
                    dup = jv_eq(seen.v[j], k);
                if (!dup) {
                    vl_push(&seen, k);
                    vl_push(&out, vals[i]);
                }
            }
            return as_gen(vl_value(&out));
        }
        sort_by(c, vals, keys, l->n, cs, reverse);
        r.u.l->v = vals;
        r.u.l->n = l->n;
        return r;
    }
    if (!strcmp(name, "map")) {
        jlist *l = jv_truthy(v) ? jiter(c, v, line) : jv_list(c->a, 0).u.l;   /* `if value:` */
        jv r = as_gen(jv_list(c->a, l->n));
        jv attribute = arg(&A, SIZE_MAX, "attribute", jv_undef(NULL));
        if (attribute.t != JV_UNDEF) {
            jv def = arg(&A, SIZE_MAX, "default", jv_undef(NULL));
            for (size_t i = 0; i < l->n; i++) {
                jv x = attr_path(c, l->v[i], attribute, line);
                r.u.l->v[i] = x.t == JV_UNDEF && def.t != JV_UNDEF ? def : x;
            }
            return r;
        }
        if (nargs == 0)
            jfail(c->a, "template line %d: map requires a filter argument", line);
        jv fname = need_str(&A, args[0], "map");
        const char *fn = jv_strdup(c->a, fname.u.s, fname.n).u.s;
        if (!jfilter_known(fn))
            jfail(c->a, "template line %d: no filter named '%s'", line, fn);
        for (size_t i = 0; i < l->n; i++)
            r.u.l->v[i] = jfilter(c, f, fn, l->v[i], args + 1, nargs - 1, kwn, kwv, nkw, line);
        return r;
    }
    if (!strcmp(name, "select")) return select_items(&A, v, false, true);
    if (!strcmp(name, "reject")) return select_items(&A, v, false, false);
    if (!strcmp(name, "selectattr")) return select_items(&A, v, true, true);
    if (!strcmp(name, "rejectattr")) return select_items(&A, v, true, false);
    jfail(c->a, "template line %d: no filter named '%s'", line, name);
}

/* ---- tests ---- */

bool jtest(jctx *c, const char *name, jv v, const jv *args, size_t nargs, int line)
{
    if (!jtest_known(name))
        jfail(c->a, "template line %d: no test named '%s'", line, name);
    jv a0 = nargs ? args[0] : jv_undef("missing argument");
    if (!strcmp(name, "defined")) return v.t != JV_UNDEF;
    if (!strcmp(name, "undefined")) return v.t == JV_UNDEF;
    if (!strcmp(name, "none")) return v.t == JV_NONE;
    if (!strcmp(name, "string")) return v.t == JV_STR;
    if (!strcmp(name, "mapping")) return v.t == JV_DICT && !v.u.d->ns;
    if (!strcmp(name, "number")) return jv_is_num(v);
    if (!strcmp(name, "integer")) return v.t == JV_INT;
    if (!strcmp(name, "float")) return v.t == JV_FLOAT;
    if (!strcmp(name, "boolean")) return v.t == JV_BOOL;
    if (!strcmp(name, "true")) return v.t == JV_BOOL && v.u.b;
    if (!strcmp(name, "false")) return v.t == JV_BOOL && !v.u.b;
    if (!strcmp(name, "iterable")) return v.t == JV_STR || v.t == JV_LIST || (v.t == JV_DICT && !v.u.d->ns) || v.t == JV_UNDEF;
    if (!strcmp(name, "sequence"))
        return v.t == JV_STR || (v.t == JV_LIST && !v.u.l->view) || (v.t == JV_DICT && !v.u.d->ns) || v.t == JV_UNDEF;
    if (!strcmp(name, "callable")) return v.t == JV_FUNC || v.t == JV_LOOP;
    if (!strcmp(name, "escaped")) return false;
    if (!strcmp(name, "filter") || !strcmp(name, "test")) {
        if (v.t != JV_STR)
            return false;
        const char *s = jv_strdup(c->a, v.u.s, v.n).u.s;
        return name[0] == 'f' ? jfilter_known(s) : jtest_known(s);
    }
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) {
        if (v.t != JV_STR)
            jfail(c->a, "template line %d: '%s' object has no attribute '%s'", line, jv_type_name(v), name);
        jargs A = { c, name, NULL, 0, NULL, NULL, 0, line };
        return jv_truthy(str_method(&A, v, name[0] == 'l' ? "islower" : "isupper"));
    }
    if (!strcmp(name, "odd") || !strcmp(name, "even")) {
        if (v.t == JV_UNDEF)
            jundef_fail(c, v, line);
        if (v.t != JV_INT && v.t != JV_BOOL && v.t != JV_FLOAT)
            jfail(c->a, "template line %d: unsupported operand type(s) for %%: '%s' and 'int'", line, jv_type_name(v));
        double m = fmod(jv_num(v), 2);
        return name[0] == 'o' ? m != 0 : m == 0;
    }
    if (!strcmp(name, "divisibleby")) {
        if (!jv_is_num(v) || !jv_is_num(a0) || jv_num(a0) == 0)
            jfail(c->a, "template line %d: divisibleby needs numbers (and a non-zero divisor)", line);
        return fmod(jv_num(v), jv_num(a0)) == 0;
    }
    if (!strcmp(name, "sameas")) {
        if (v.t != a0.t)
            return false;
        if (v.t == JV_NONE || v.t == JV_UNDEF) return true;
        if (v.t == JV_BOOL) return v.u.b == a0.u.b;
        if (v.t == JV_INT) return v.u.i == a0.u.i && v.u.i >= -5 && v.u.i <= 256;
        if (v.t == JV_STR) return v.u.s == a0.u.s && v.n == a0.n;
        if (v.t == JV_LIST) return v.u.l == a0.u.l;
        if (v.t == JV_DICT) return v.u.d == a0.u.d;
        return jv_eq(v, a0);
    }
    if (!strcmp(name, "in")) {
        jv seq = a0;
        if (seq.t == JV_STR) {
            if (v.t != JV_STR)
                jfail(c->a, "template line %d: 'in <string>' requires string as left operand", line);
            return find_sub(seq.u.s, seq.n, v.u.s, v.n) != NULL;
        }
        if (seq.t == JV_DICT && !seq.u.d->ns)
            return jdict_get(seq.u.d, v) != NULL;
        jlist *l = jiter(c, seq, line);
        for (size_t i = 0; i < l->n; i++)
            if (jv_eq(l->v[i], v))
                return true;
        return false;
    }
    if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "==")) return jv_eq(v, a0);
    if (!strcmp(name, "ne") || !strcmp(name, "!=")) return !jv_eq(v, a0);
    int r = jv_cmp(c->a, v, a0, name);
    if (!strcmp(name, "lt") || !strcmp(name, "lessthan") || !strcmp(name, "<")) return r < 0;
    if (!strcmp(name, "le") || !strcmp(name, "<=")) return r <= 0;
    if (!strcmp(name, "gt") || !strcmp(name, "greaterthan") || !strcmp(name, ">")) return r > 0;
    return r >= 0;
}

/* ---- globals ---- */

static const char *const global_names[] = { "range", "dict", "namespace", "raise_exception", "strftime_now", "cycler",
                                            "joiner", NULL };

void jglobals_install(jctx *c, jframe *g)
{
    for (size_t i = 0; global_names[i]; i++) {
        jfunc *fn = jalloc(c->a, sizeof *fn);
        fn->kind = JF_GLOBAL;
        fn->name = global_names[i];
        jframe_set(c->a, g, global_names[i], (jv){ JV_FUNC, 0, { .fn = fn }, false });
    }
}

jv jglobal_call(jctx *c, jfunc *fn, const jv *args, size_t nargs, const char **kwn, const jv *kwv, size_t nkw,
                int line)
{
    jargs A = { c, fn->name, args, nargs, kwn, kwv, nkw, line };
    const char *name = fn->name;
    if (fn->kind == JF_CYCLER_NEXT) {
        jlist *items = fn->self.u.l;
        if (!strcmp(name, "next")) {
            jv r = items->v[*fn->state % (int)items->n];
            *fn->state = (*fn->state + 1) % (int)items->n;
            return r;
        }
        *fn->state = 0;                           /* reset */
        return jv_none();
    }
    if (fn->kind == JF_JOINER) {
        if (!*fn->state) {
            *fn->state = 1;
            return jv_str("", 0);
        }
        return fn->self;
    }
    if (!strcmp(name, "range")) {
        if (nargs < 1 || nargs > 3 || nkw)
            jfail(c->a, "template line %d: range expected 1 to 3 integer arguments", line);
        int64_t start = 0, stop, stp = 1;
        if (nargs == 1) {
            stop = need_int(&A, args[0], "range");
        } else {
            start = need_int(&A, args[0], "range");
            stop = need_int(&A, args[1], "range");
            if (nargs == 3)
                stp = need_int(&A, args[2], "range");
        }
        if (stp == 0)
            jfail(c->a, "template line %d: range() arg 3 must not be zero", line);
        double count = stp > 0 ? ceil(((double)stop - (double)start) / (double)stp)
                               : ceil(((double)start - (double)stop) / (double)-stp);
        if (count < 0)
            count = 0;
        if (count > 100000)
            jfail(c->a, "template line %d: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).",
                  line);
        jv r = jv_list(c->a, (size_t)count);
        for (size_t i = 0; i < (size_t)count; i++)
            r.u.l->v[i] = jv_int(start + (int64_t)i * stp);
        return r;
    }
    if (!strcmp(name, "dict") || !strcmp(name, "namespace")) {
        jv d = jv_dict(c->a);
        d.u.d->ns = name[0] == 'n';
        if (nargs > 1 || (nargs == 1 && (args[0].t != JV_DICT || args[0].u.d->ns)))
            jfail(c->a, "template line %d: %s() takes a mapping and keyword arguments", line, name);
        if (nargs == 1)
            for (size_t i = 0; i < args[0].u.d->n; i++)
                jdict_set(c->a, d.u.d, args[0].u.d->keys[i], args[0].u.d->vals[i]);
        for (size_t i = 0; i < nkw; i++)
            jdict_set(c->a, d.u.d, jv_cstr(c->a, kwn[i]), kwv[i]);
        return d;
    }
    if (!strcmp(name, "raise_exception")) {
        jv m = str_of(c, arg(&A, 0, "message", jv_str("", 0)));
        jfail(c->a, "chat template: %.*s", (int)VC_MIN(m.n, 400), m.u.s);
    }
    if (!strcmp(name, "strftime_now")) {
        jv f = need_str(&A, arg(&A, 0, "format", jv_undef(NULL)), "strftime_now");
        const char *fmt = jv_strdup(c->a, f.u.s, f.n).u.s;
        char out[512];
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        size_t n = f.n ? strftime(out, sizeof out, fmt, &tm) : 0;
        return jv_strdup(c->a, out, n);
    }
    if (!strcmp(name, "cycler")) {
        if (nargs == 0)
            jfail(c->a, "template line %d: cycler needs at least one item", line);
        jv items = jv_list(c->a, nargs);
        memcpy(items.u.l->v, args, nargs * sizeof(jv));
        int *state = jalloc(c->a, sizeof *state);
        jv obj = jv_dict(c->a);
        obj.u.d->ns = true;
        const char *methods[] = { "next", "reset" };
        for (int i = 0; i < 2; i++) {
            jfunc *m = jalloc(c->a, sizeof *m);
            m->kind = JF_CYCLER_NEXT;
            m->name = methods[i];
            m->self = items;
            m->state = state;
            jdict_set(c->a, obj.u.d, jv_cstr(c->a, methods[i]), (jv){ JV_FUNC, 0, { .fn = m }, false });
        }
        return obj;
    }
    if (!strcmp(name, "joiner")) {
        jfunc *m = jalloc(c->a, sizeof *m);
        m->kind = JF_JOINER;
        m->name = "joiner";
        m->self = str_of(c, arg(&A, 0, "sep", jv_str(", ", 2)));
        m->state = jalloc(c->a, sizeof *m->state);
        return (jv){ JV_FUNC, 0, { .fn = m }, false };
    }
    jfail(c->a, "template line %d: '%s' is not callable", line, name);
}
