/* jinja_lex.c - jinja2's lexer with trim_blocks and lstrip_blocks (see jinja_impl.h).
 *
 * Follows jinja2/lexer.py: newlines are normalized to \n and one trailing
 * newline dropped; `{%-`/`-%}` strip all whitespace on that side; lstrip_blocks
 * removes the whitespace between a line start and a block or comment tag;
 * trim_blocks removes the newline right after one (`+%}` keeps it). */
#include "jinja_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

typedef struct {
    jarena *a;
    const char *s;
    size_t n, pos;
    int line;
    jtok *toks;
    size_t nt, cap;
    bool line_starting;
} lexer;

static void push(lexer *L, jtok t)
{
    if (L->nt == L->cap) {
        size_t cap = L->cap ? L->cap * 2 : 256;
        jtok *nt = jalloc_array(L->a, cap, sizeof *nt);
        if (L->nt)
            memcpy(nt, L->toks, L->nt * sizeof *nt);
        L->toks = nt;
        L->cap = cap;
    }
    L->toks[L->nt++] = t;
}

static int count_nl(const char *s, size_t n)
{
    int k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == '\n';
    return k;
}

/* Length of the whitespace run (Python's \s) at s. */
static size_t space_run(const char *s, size_t n)
{
    size_t i = 0, len;
    while (i < n && jpy_space(jutf8_next(s + i, n - i, &len)))
        i += len;
    return i;
}

/* Length of s without its trailing whitespace (Python's rstrip). */
static size_t rstrip_len(const char *s, size_t n)
{
    size_t keep = 0, i = 0, len;
    while (i < n) {
        uint32_t c = jutf8_next(s + i, n - i, &len);
        i += len;
        if (!jpy_space(c))
            keep = i;
    }
    return keep;
}

static bool at(const lexer *L, size_t p, const char *lit)
{
    size_t k = strlen(lit);
    return p + k <= L->n && memcmp(L->s + p, lit, k) == 0;
}

/* The data before a tag, whitespace control applied; sign is '-', '+' or 0. */
static void emit_data(lexer *L, const char *text, size_t n, char sign, bool block_like)
{
    if (sign == '-') {
        n = rstrip_len(text, n);
    } else if (sign != '+' && block_like) {
        size_t l_pos = 0;
        for (size_t i = n; i > 0; i--)
            if (text[i - 1] == '\n') {
                l_pos = i;
                break;
            }
        if ((l_pos > 0 || L->line_starting) && l_pos < n && space_run(text + l_pos, n - l_pos) == n - l_pos)
            n = l_pos;
    }
    if (n)
        push(L, (jtok){ JT_DATA, L->line, text, n, 0, 0 });
}

/* After a block or comment end at p (just past the closing two chars),
 * with 'strip' when it was `-%}`: consumes what the end rule consumes. */
static size_t after_end(lexer *L, size_t p, bool minus, bool plus)
{
    size_t start = p;
    if (minus)
        p += space_run(L->s + p, L->n - p);
    else if (!plus && p < L->n && L->s[p] == '\n')
        p++;
    L->line_starting = p > start ? L->s[p - 1] == '\n' : false;
    return p;
}

/* A string literal's body, unescaped as Python's unicode-escape does. */
static void unescape(lexer *L, const char *s, size_t n, jtok *t)
{
    jstrbuf b = { L->a, NULL, 0, 0 };
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) {
            jsb_putc(&b, s[i]);
            continue;
        }
        char c = s[++i];
        uint32_t cp = 0;
        int digits = 0;
        switch (c) {
        case '\n': break;
        case '\\': jsb_putc(&b, '\\'); break;
        case '\'': jsb_putc(&b, '\''); break;
        case '"': jsb_putc(&b, '"'); break;
        case 'a': jsb_putc(&b, '\a'); break;
        case 'b': jsb_putc(&b, '\b'); break;
        case 'f': jsb_putc(&b, '\f'); break;
        case 'n': jsb_putc(&b, '\n'); break;
        case 'r': jsb_putc(&b, '\r'); break;
        case 't': jsb_putc(&b, '\t'); break;
        case 'v': jsb_putc(&b, '\v'); break;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        default:
            if (c >= '0' && c <= '7') {
                cp = (uint32_t)(c - '0');
                for (int k = 0; k < 2 && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '7'; k++)
                    cp = cp * 8 + (uint32_t)(s[++i] - '0');
                jutf8_put(&b, cp);
            } else {
                jsb_putc(&b, '\\');
                jsb_putc(&b, c);
            }
        }
        if (digits) {
            for (int k = 0; k < digits; k++) {
                char h = i + 1 < n ? s[i + 1] : 0;
                int v = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                        : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                if (v < 0)
                    jfail(L->a, "template line %d: truncated \\%c escape in a string", L->line, c);
                cp = cp * 16 + (uint32_t)v;
                i++;
            }
            if (cp > 0x10FFFF)
                jfail(L->a, "template line %d: illegal Unicode character in a string", L->line);
            jutf8_put(&b, cp);
        }
    }
    t->s = b.s ? b.s : "";
    t->n = b.n;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_name0(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

/* (\d+_)*\d+ at p: its length, 0 if none. */
static size_t digits_at(const lexer *L, size_t p)
{
    size_t i = p;
    if (i >= L->n || !is_digit(L->s[i]))
        return 0;
    for (;;) {
        while (i < L->n && is_digit(L->s[i]))
            i++;
        if (i + 1 < L->n && L->s[i] == '_' && is_digit(L->s[i + 1]))
            i++;
        else
            return i - p;
    }
}

static double parse_number(lexer *L, size_t p, size_t n, bool is_float, int64_t *iv)
{
    char buf[128];
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (L->s[p + i] != '_') {
            if (k >= sizeof buf - 1)
                jfail(L->a, "template line %d: number too long", L->line);
            buf[k++] = L->s[p + i];
        }
    buf[k] = 0;
    if (is_float)
        return strtod(buf, NULL);
    errno = 0;
    long long v = strtoll(buf, NULL, 10);
    if (errno == ERANGE)
        jfail(L->a, "template line %d: integer %s is too large", L->line, buf);
    *iv = v;
    return 0;
}

static const char *const ops2[] = { "**", "//", "==", "!=", ">=", "<=" };
static const char ops1[] = "+-/*%~[](){}><=.:|,;";

/* Tokens inside {{ }} or {% %} up to the end tag. */
static size_t lex_tag(lexer *L, size_t p, bool block)
{
    char stack[128];
    size_t depth = 0;
    for (;;) {
        if (p >= L->n)
            jfail(L->a, "template line %d: unexpected end of template, expected '%s'", L->line, block ? "%}" : "}}");
        if (depth == 0) {
            if (block && (at(L, p, "-%}") || at(L, p, "+%}") || at(L, p, "%}"))) {
                bool minus = L->s[p] == '-', plus = L->s[p] == '+';
                p += minus || plus ? 3 : 2;
                push(L, (jtok){ JT_BLOCK_END, L->line, NULL, 0, 0, 0 });
                size_t q = after_end(L, p, minus, plus);
                L->line += count_nl(L->s + p, q - p);
                return q;
            }
            if (!block && (at(L, p, "-}}") || at(L, p, "}}"))) {
                bool minus = L->s[p] == '-';
                p += minus ? 3 : 2;
                push(L, (jtok){ JT_VAR_END, L->line, NULL, 0, 0, 0 });
                size_t q = p;
                if (minus)
                    q += space_run(L->s + p, L->n - p);
                L->line_starting = q > p && L->s[q - 1] == '\n';
                L->line += count_nl(L->s + p, q - p);
                return q;
            }
        }
        char c = L->s[p];
        size_t sp = space_run(L->s + p, L->n - p);
        if (sp) {
            L->line += count_nl(L->s + p, sp);
            p += sp;
            continue;
        }
        /* float: (?<!\.)D((\.D)?e[+-]?D|\.D) ; integer: D */
        size_t d = digits_at(L, p);
        if (d) {
            size_t q = p + d;
            bool is_float = false;
            bool after_dot = p > 0 && L->s[p - 1] == '.';
            if (!after_dot) {
                size_t frac = q < L->n && L->s[q] == '.' ? digits_at(L, q + 1) : 0;
                size_t r = frac ? q + 1 + frac : q;
                if (r < L->n && (L->s[r] == 'e' || L->s[r] == 'E')) {
                    size_t e = r + 1;
                    if (e < L->n && (L->s[e] == '+' || L->s[e] == '-'))
                        e++;
                    size_t ed = digits_at(L, e);
                    if (ed) {
                        q = e + ed;
                        is_float = true;
                    } else if (frac) {
                        q = r, is_float = true;
                    }
                } else if (frac) {
                    q = r, is_float = true;
                }
            }
            jtok t = { is_float ? JT_FLOAT : JT_INT, L->line, NULL, 0, 0, 0 };
            t.f = parse_number(L, p, q - p, is_float, &t.i);
            push(L, t);
            p = q;
            continue;
        }
        if (is_name0(c)) {
            size_t q = p;
            while (q < L->n && (is_name0(L->s[q]) || is_digit(L->s[q])))
                q++;
            push(L, (jtok){ JT_NAME, L->line, L->s + p, q - p, 0, 0 });
            p = q;
            continue;
        }
        if (c == '\'' || c == '"') {
            size_t q = p + 1;
            while (q < L->n && L->s[q] != c)
                q += L->s[q] == '\\' ? 2 : 1;
            if (q >= L->n)
                jfail(L->a, "template line %d: unexpected char %s", L->line, c == '"' ? "'\"'" : "\"'\"");
            jtok t = { JT_STRING, L->line, NULL, 0, 0, 0 };
            unescape(L, L->s + p + 1, q - p - 1, &t);
            L->line += count_nl(L->s + p, q - p);
            push(L, t);
            p = q + 1;
            continue;
        }
        size_t oplen = 0;
        for (size_t i = 0; i < VC_ARRAY_LEN(ops2) && !oplen; i++)
            if (at(L, p, ops2[i]))
                oplen = 2;
        if (!oplen && c && strchr(ops1, c))
            oplen = 1;
        if (!oplen)
            jfail(L->a, "template line %d: unexpected char '%c'", L->line, c);
        if (c == '(' || c == '[' || c == '{') {
            if (depth == sizeof stack)
                jfail(L->a, "template line %d: brackets nested too deep", L->line);
            stack[depth++] = c == '(' ? ')' : c == '[' ? ']' : '}';
        } else if (c == ')' || c == ']' || c == '}') {
            if (depth == 0)
                jfail(L->a, "template line %d: unexpected '%c'", L->line, c);
            if (stack[--depth] != c)
                jfail(L->a, "template line %d: unexpected '%c', expected '%c'", L->line, c, stack[depth]);
        }
        push(L, (jtok){ JT_OP, L->line, L->s + p, oplen, 0, 0 });
        p += oplen;
    }
}

/* At p: "{%" sign? \s* "raw" \s* ("-%}" \s* | "%}"); returns the end or 0. */
static size_t raw_begin(const lexer *L, size_t p)
{
    size_t q = p + 2;
    if (q < L->n && (L->s[q] == '-' || L->s[q] == '+'))
        q++;
    q += space_run(L->s + q, L->n - q);
    if (!at(L, q, "raw"))
        return 0;
    q += 3;
    q += space_run(L->s + q, L->n - q);
    if (at(L, q, "-%}"))
        return q + 3 + space_run(L->s + q + 3, L->n - q - 3);
    return at(L, q, "%}") ? q + 2 : 0;
}

/* The body of a raw block from p: finds {% endraw %}, emits the data. */
static size_t lex_raw(lexer *L, size_t p)
{
    for (size_t q = p; q + 1 < L->n; q++) {
        if (L->s[q] != '{' || L->s[q + 1] != '%')
            continue;
        size_t r = q + 2;
        char sign = r < L->n && (L->s[r] == '-' || L->s[r] == '+') ? L->s[r++] : 0;
        r += space_run(L->s + r, L->n - r);
        if (!at(L, r, "endraw"))
            continue;
        r += 6;
        r += space_run(L->s + r, L->n - r);
        bool minus = at(L, r, "-%}"), plus = at(L, r, "+%}");
        if (!minus && !plus && !at(L, r, "%}"))
            continue;
        emit_data(L, L->s + p, q - p, sign, true);
        L->line += count_nl(L->s + p, q - p);
        size_t e = after_end(L, r + (minus || plus ? 3 : 2), minus, plus);
        L->line += count_nl(L->s + q, e - q);
        return e;
    }
    jfail(L->a, "template line %d: missing end of raw directive", L->line);
}

void jlex(jarena *a, const char *src, size_t len, jtok **toks, size_t *n)
{
    /* newlines as \n, and one trailing newline dropped (keep_trailing_newline=False) */
    char *s = jalloc(a, len + 1);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[k++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n')
                i++;
        } else {
            s[k++] = src[i];
        }
    }
    if (k && s[k - 1] == '\n')
        k--;
    lexer L = { a, s, k, 0, 1, NULL, 0, 0, true };
    while (L.pos < L.n) {
        size_t p = L.pos;
        while (p + 1 < L.n && !(L.s[p] == '{' && (L.s[p + 1] == '{' || L.s[p + 1] == '%' || L.s[p + 1] == '#')))
            p++;
        if (p + 1 >= L.n) {
            push(&L, (jtok){ JT_DATA, L.line, L.s + L.pos, L.n - L.pos, 0, 0 });
            break;
        }
        char kind = L.s[p + 1];
        char sign = p + 2 < L.n && (L.s[p + 2] == '-' || L.s[p + 2] == '+') ? L.s[p + 2] : 0;
        size_t raw_end = kind == '%' ? raw_begin(&L, p) : 0;
        emit_data(&L, L.s + L.pos, p - L.pos, sign, kind != '{');
        L.line += count_nl(L.s + L.pos, p - L.pos);
        if (raw_end) {
            L.line_starting = L.s[raw_end - 1] == '\n';
            L.line += count_nl(L.s + p, raw_end - p);
            L.pos = lex_raw(&L, raw_end);
            continue;
        }
        size_t q = p + 2 + (sign ? 1 : 0);
        if (kind == '#') {
            size_t e = q;
            while (e + 1 < L.n && !(L.s[e] == '#' && L.s[e + 1] == '}'))
                e++;
            if (e + 1 >= L.n)
                jfail(a, "template line %d: missing end of comment tag", L.line);
            bool minus = e > q && L.s[e - 1] == '-', plus = e > q && L.s[e - 1] == '+';
            size_t end = after_end(&L, e + 2, minus, plus);
            L.line += count_nl(L.s + p, end - p);
            L.pos = end;
            continue;
        }
        push(&L, (jtok){ kind == '%' ? JT_BLOCK_BEGIN : JT_VAR_BEGIN, L.line, NULL, 0, 0, 0 });
        L.pos = lex_tag(&L, q, kind == '%');
    }
    push(&L, (jtok){ JT_EOF, L.line, NULL, 0, 0, 0 });
    *toks = L.toks;
    *n = L.nt;
}
