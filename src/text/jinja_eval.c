/* jinja_eval.c - evaluation of the syntax tree, and the public entry points
 * of include/text/jinja.h. */
#define _POSIX_C_SOURCE 200809L
#include "text/jinja.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "jinja_impl.h"

enum { ARENA_LIMIT = 256 << 20, OUT_LIMIT = 64 << 20, MAX_CALL_DEPTH = 256 };
static const long MAX_STEPS = 20000000;

struct vc_jinja {
    jarena arena;
    jnode *body;
};

/* ---- scopes ---- */

jframe *jframe_new(jarena *a, jframe *parent)
{
    jframe *f = jalloc(a, sizeof *f);
    f->parent = parent;
    return f;
}

void jframe_set(jarena *a, jframe *f, const char *name, jv v)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->names[i], name) == 0) {
            f->vals[i] = v;
            return;
        }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 4;
        const char **nn = jalloc_array(a, cap, sizeof *nn);
        jv *nv = jalloc_array(a, cap, sizeof *nv);
        if (f->n) {
            memcpy(nn, f->names, f->n * sizeof *nn);
            memcpy(nv, f->vals, f->n * sizeof *nv);
        }
        f->names = nn, f->vals = nv, f->cap = cap;
    }
    f->names[f->n] = name;
    f->vals[f->n++] = v;
}

jv *jframe_lookup(jframe *f, const char *name)
{
    for (; f; f = f->parent)
        for (size_t i = f->n; i > 0; i--)
            if (strcmp(f->names[i - 1], name) == 0)
                return &f->vals[i - 1];
    return NULL;
}

_Noreturn void jundef_fail(jctx *c, jv v, int line)
{
    if (v.u.s)
        jfail(c->a, "template line %d: %s", line, v.u.s);
    jfail(c->a, "template line %d: a value is undefined", line);
}

static void step(jctx *c, int line)
{
    if (++c->steps > MAX_STEPS)
        jfail(c->a, "template line %d: more than %ld loop iterations and calls", line, MAX_STEPS);
}

static const char *msgf(jctx *c, const char *fmt, const char *x, const char *y)
{
    jstrbuf b = { c->a, NULL, 0, 0 };
    jsb_printf(&b, fmt, x, y);
    return b.s;
}

/* ---- attributes and items ---- */

static jv loop_attr(jctx *c, jloop *l, const char *name, int line)
{
    size_t n = l->items->n, i = l->index0;
    if (strcmp(name, "index") == 0) return jv_int((int64_t)i + 1);
    if (strcmp(name, "index0") == 0) return jv_int((int64_t)i);
    if (strcmp(name, "revindex") == 0) return jv_int((int64_t)(n - i));
    if (strcmp(name, "revindex0") == 0) return jv_int((int64_t)(n - i - 1));
    if (strcmp(name, "first") == 0) return jv_bool(i == 0);
    if (strcmp(name, "last") == 0) return jv_bool(i + 1 == n);
    if (strcmp(name, "length") == 0) return jv_int((int64_t)n);
    if (strcmp(name, "depth") == 0) return jv_int(l->depth);
    if (strcmp(name, "depth0") == 0) return jv_int(l->depth - 1);
    if (strcmp(name, "previtem") == 0)
        return i > 0 ? l->items->v[i - 1] : jv_undef("there is no previous item");
    if (strcmp(name, "nextitem") == 0)
        return i + 1 < n ? l->items->v[i + 1] : jv_undef("there is no next item");
    if (strcmp(name, "cycle") == 0 || strcmp(name, "changed") == 0) {
        jfunc *fn = jalloc(c->a, sizeof *fn);
        fn->kind = JF_METHOD;
        fn->name = name[0] == 'c' && name[1] == 'y' ? "cycle" : "changed";
        fn->self = (jv){ JV_LOOP, 0, { .loop = l }, false };
        return (jv){ JV_FUNC, 0, { .fn = fn }, false };
    }
    (void)line;
    return jv_undef(msgf(c, "'LoopContext object' has no attribute '%s'%s", name, ""));
}

jv jgetattr(jctx *c, jv obj, const char *name, int line)
{
    if (obj.t == JV_UNDEF)
        jundef_fail(c, obj, line);
    if (obj.t == JV_LOOP)
        return loop_attr(c, obj.u.loop, name, line);
    bool unsafe = false;
    if (obj.t == JV_DICT && obj.u.d->ns) {
        jv *v = jdict_gets(obj.u.d, name);
        return v ? *v : jv_undef(msgf(c, "'Namespace object' has no attribute '%s'%s", name, ""));
    }
    if (jmethod_exists(obj, name, &unsafe)) {
        if (unsafe)
            return jv_undef(msgf(c, "access to attribute '%s' of '%s' object is unsafe.", name, jv_type_name(obj)));
        jfunc *fn = jalloc(c->a, sizeof *fn);
        fn->kind = JF_METHOD;
        fn->name = name;
        fn->self = obj;
        return (jv){ JV_FUNC, 0, { .fn = fn }, false };
    }
    if (obj.t == JV_DICT) {
        jv *v = jdict_gets(obj.u.d, name);
        if (v)
            return *v;
    }
    return jv_undef(msgf(c, "'%s object' has no attribute '%s'", jv_type_name(obj), name));
}

/* Byte offset of the k-th code point of a string (k <= count). */
static size_t cp_offset(const char *s, size_t n, size_t k)
{
    size_t i = 0, len;
    while (k-- && i < n) {
        jutf8_next(s + i, n - i, &len);
        i += len;
    }
    return i;
}

jv jgetitem(jctx *c, jv obj, jv key, int line)
{
    if (obj.t == JV_UNDEF)
        jundef_fail(c, obj, line);
    if (obj.t == JV_DICT && !obj.u.d->ns) {
        jv *v = jdict_get(obj.u.d, key);
        if (v)
            return *v;
    } else if (((obj.t == JV_LIST && !obj.u.l->view) || obj.t == JV_STR) && (key.t == JV_INT || key.t == JV_BOOL)) {
        int64_t i = key.t == JV_BOOL ? key.u.b : key.u.i;
        size_t n = obj.t == JV_LIST ? obj.u.l->n : jutf8_count(obj.u.s, obj.n);
        if (i < 0)
            i += (int64_t)n;
        if (i >= 0 && (uint64_t)i < n) {
            if (obj.t == JV_LIST)
                return obj.u.l->v[i];
            size_t off = cp_offset(obj.u.s, obj.n, (size_t)i), len;
            jutf8_next(obj.u.s + off, obj.n - off, &len);
            return jv_str(obj.u.s + off, len);
        }
        return jv_undef(msgf(c, "'%s object' has no element %s", jv_type_name(obj), "(index out of range)"));
    }
    if (key.t == JV_STR) {
        char *name = jalloc(c->a, key.n + 1);
        memcpy(name, key.u.s, key.n);
        if (strlen(name) == key.n)
            return jgetattr(c, obj, name, line);
    }
    jstrbuf b = { c->a, NULL, 0, 0 };
    jsb_printf(&b, "'%s object' has no element ", jv_type_name(obj));
    jv_repr_to(&b, key);
    return jv_undef(b.s);
}

/* Python's slice indices for a sequence of n elements. */
static void slice_indices(jctx *c, jv lo, jv hi, jv st, size_t n, int64_t *start, int64_t *stop, int64_t *stepv, int line)
{
    int64_t step_ = 1;
    if (st.t != JV_NONE) {
        if (st.t != JV_INT)
            jfail(c->a, "template line %d: slice indices must be integers or None", line);
        step_ = st.u.i;
    }
    if (step_ == 0)
        jfail(c->a, "template line %d: slice step cannot be zero", line);
    int64_t len = (int64_t)n;
    int64_t def_lo = step_ < 0 ? len - 1 : 0, def_hi = step_ < 0 ? -1 : len;
    int64_t v[2];
    jv in[2] = { lo, hi };
    for (int k = 0; k < 2; k++) {
        if (in[k].t == JV_NONE) {
            v[k] = k == 0 ? def_lo : def_hi;
            continue;
        }
        if (in[k].t != JV_INT && in[k].t != JV_BOOL)
            jfail(c->a, "template line %d: slice indices must be integers or None", line);
        int64_t x = in[k].t == JV_BOOL ? in[k].u.b : in[k].u.i;
        if (x < 0) {
            x += len;
            if (x < 0)
                x = step_ < 0 ? -1 : 0;
        } else if (x >= len) {
            x = step_ < 0 ? len - 1 : len;
        }
        v[k] = x;
    }
    *start = v[0], *stop = v[1], *stepv = step_;
}

static jv do_slice(jctx *c, jv obj, jv lo, jv hi, jv st, int line)
{
    if (obj.t == JV_UNDEF)
        jundef_fail(c, obj, line);
    if ((obj.t != JV_LIST || obj.u.l->view) && obj.t != JV_STR)
        jfail(c->a, "template line %d: '%s' object is not subscriptable", line, jv_type_name(obj));
    size_t n;
    size_t *offs = NULL;
    if (obj.t == JV_LIST) {
        n = obj.u.l->n;
    } else {
        n = jutf8_count(obj.u.s, obj.n);
        offs = jalloc_array(c->a, n + 1, sizeof *offs);
        size_t i = 0, k = 0, len;
        for (; i < obj.n; i += len)
            offs[k++] = i, jutf8_next(obj.u.s + i, obj.n - i, &len);
        offs[k] = obj.n;
    }
    int64_t start, stop, stp;
    slice_indices(c, lo, hi, st, n, &start, &stop, &stp, line);
    size_t count = 0;
    for (int64_t i = start; stp > 0 ? i < stop : i > stop; i += stp)
        count++;
    if (obj.t == JV_LIST) {
        jv r = jv_list(c->a, count);
        r.u.l->tuple = obj.u.l->tuple;
        size_t k = 0;
        for (int64_t i = start; stp > 0 ? i < stop : i > stop; i += stp)
            r.u.l->v[k++] = obj.u.l->v[i];
        return r;
    }
    jstrbuf b = { c->a, NULL, 0, 0 };
    for (int64_t i = start; stp > 0 ? i < stop : i > stop; i += stp)
        jsb_put(&b, obj.u.s + offs[i], offs[i + 1] - offs[i]);
    return b.s ? jv_str(b.s, b.n) : jv_str("", 0);
}

/* ---- operators ---- */

static int64_t as_int(jv v) { return v.t == JV_BOOL ? v.u.b : v.u.i; }

static jv repeat(jctx *c, jv seq, int64_t times, int line)
{
    if (times < 0)
        times = 0;
    if (seq.t == JV_STR) {
        if (seq.n && (uint64_t)times > (uint64_t)(OUT_LIMIT / seq.n))
            jfail(c->a, "template line %d: string repetition too large", line);
        jstrbuf b = { c->a, NULL, 0, 0 };
        for (int64_t i = 0; i < times; i++)
            jsb_put(&b, seq.u.s, seq.n);
        return b.s ? jv_str(b.s, b.n) : jv_str("", 0);
    }
    size_t n = seq.u.l->n;
    if (n && (uint64_t)times > (uint64_t)(ARENA_LIMIT / 24 / n))
        jfail(c->a, "template line %d: list repetition too large", line);
    jv r = jv_list(c->a, n * (size_t)times);
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < n; k++)
            r.u.l->v[(size_t)i * n + k] = seq.u.l->v[k];
    return r;
}

static jv arith(jctx *c, const char *op, jv x, jv y, int line)
{
    if (x.t == JV_UNDEF)
        jundef_fail(c, x, line);
    if (y.t == JV_UNDEF)
        jundef_fail(c, y, line);
    if (jv_is_num(x) && jv_is_num(y)) {
        bool flt = x.t == JV_FLOAT || y.t == JV_FLOAT;
        if (strcmp(op, "/") == 0) {
            if (jv_num(y) == 0)
                jfail(c->a, "template line %d: division by zero", line);
            return jv_float(jv_num(x) / jv_num(y));
        }
        if (flt) {
            double a = jv_num(x), b = jv_num(y);
            switch (op[0]) {
            case '+': return jv_float(a + b);
            case '-': return jv_float(a - b);
            case '*': return op[1] ? jv_float(pow(a, b)) : jv_float(a * b);
            case '/':
                if (b == 0)
                    jfail(c->a, "template line %d: float floor division by zero", line);
                return jv_float(floor(a / b));
            case '%':
                if (b == 0)
                    jfail(c->a, "template line %d: float modulo", line);
                double m = fmod(a, b);
                if (m != 0 && ((m < 0) != (b < 0)))
                    m += b;
                return jv_float(m);
            }
        }
        int64_t a = as_int(x), b = as_int(y), r;
        switch (op[0]) {
        case '+':
            if (__builtin_add_overflow(a, b, &r)) break;
            return jv_int(r);
        case '-':
            if (__builtin_sub_overflow(a, b, &r)) break;
            return jv_int(r);
        case '*':
            if (op[1]) {
                if (b < 0)
                    return jv_float(pow((double)a, (double)b));
                r = 1;
                for (int64_t i = 0; i < b; i++)
                    if (__builtin_mul_overflow(r, a, &r))
                        jfail(c->a, "template line %d: integer overflow", line);
                    else if (r == 0 || r == 1)
                        break;
                return jv_int(r);
            }
            if (__builtin_mul_overflow(a, b, &r)) break;
            return jv_int(r);
        case '/':
        case '%':
            if (b == 0)
                jfail(c->a, "template line %d: integer division or modulo by zero", line);
            if (a == INT64_MIN && b == -1)
                break;
            int64_t q = a / b, m = a % b;
            if (m != 0 && ((m < 0) != (b < 0)))
                q--, m += b;
            return jv_int(op[0] == '/' ? q : m);
        }
        jfail(c->a, "template line %d: integer overflow", line);
    }
    if (op[0] == '+' && x.t == JV_STR && y.t == JV_STR) {
        bool safe = x.safe || y.safe;             /* Markup + str escapes the str */
        if (safe && !x.safe)
            x = jv_escape(c->a, x);
        if (safe && !y.safe)
            y = jv_escape(c->a, y);
        jstrbuf b = { c->a, NULL, 0, 0 };
        jsb_put(&b, x.u.s, x.n);
        jsb_put(&b, y.u.s, y.n);
        jv r = b.s ? jv_str(b.s, b.n) : jv_str("", 0);
        r.safe = safe;
        return r;
    }
    if (op[0] == '+' && x.t == JV_LIST && y.t == JV_LIST && x.u.l->tuple == y.u.l->tuple && !x.u.l->view &&
        !y.u.l->view) {
        jv r = jv_list(c->a, x.u.l->n + y.u.l->n);
        r.u.l->tuple = x.u.l->tuple;
        if (x.u.l->n)
            memcpy(r.u.l->v, x.u.l->v, x.u.l->n * sizeof(jv));
        if (y.u.l->n)
            memcpy(r.u.l->v + x.u.l->n, y.u.l->v, y.u.l->n * sizeof(jv));
        return r;
    }
    if (strcmp(op, "*") == 0 && (x.t == JV_STR || (x.t == JV_LIST && !x.u.l->view)) && (y.t == JV_INT || y.t == JV_BOOL))
        return repeat(c, x, as_int(y), line);
    if (strcmp(op, "*") == 0 && (y.t == JV_STR || (y.t == JV_LIST && !y.u.l->view)) && (x.t == JV_INT || x.t == JV_BOOL))
        return repeat(c, y, as_int(x), line);
    if (strcmp(op, "%") == 0 && x.t == JV_STR)
        return jpercent_format(c, x, y, line);
    if (op[0] == '+' && x.t == JV_STR)
        jfail(c->a, "template line %d: can only concatenate str (not \"%s\") to str", line, jv_type_name(y));
    if (op[0] == '+' && x.t == JV_LIST)
        jfail(c->a, "template line %d: can only concatenate list (not \"%s\") to list", line, jv_type_name(y));
    jfail(c->a, "template line %d: unsupported operand type(s) for %s: '%s' and '%s'", line, op, jv_type_name(x),
          jv_type_name(y));
}

static bool contains(jctx *c, jv item, jv seq, int line)
{
    switch (seq.t) {
    case JV_STR:
        if (item.t != JV_STR)
            jfail(c->a, "template line %d: 'in <string>' requires string as left operand, not %s", line,
                  jv_type_name(item));
        if (item.n == 0)
            return true;
        for (size_t i = 0; i + item.n <= seq.n; i++)
            if (memcmp(seq.u.s + i, item.u.s, item.n) == 0)
                return true;
        return false;
    case JV_LIST:
        for (size_t i = 0; i < seq.u.l->n; i++)
            if (jv_eq(seq.u.l->v[i], item))
                return true;
        return false;
    case JV_DICT:
        if (seq.u.d->ns)
            break;
        return jdict_get(seq.u.d, item) != NULL;
    case JV_UNDEF:
        return false;
    default:
        break;
    }
    jfail(c->a, "template line %d: argument of type '%s' is not iterable", line, jv_type_name(seq));
}

static bool compare(jctx *c, const char *op, jv x, jv y, int line)
{
    if (strcmp(op, "==") == 0) return jv_eq(x, y);
    if (strcmp(op, "!=") == 0) return !jv_eq(x, y);
    if (strcmp(op, "in") == 0) return contains(c, x, y, line);
    if (strcmp(op, "not in") == 0) return !contains(c, x, y, line);
    int r = jv_cmp(c->a, x, y, op);
    if (strcmp(op, "<") == 0) return r < 0;
    if (strcmp(op, "<=") == 0) return r <= 0;
    if (strcmp(op, ">") == 0) return r > 0;
    return r >= 0;
}

/* ---- calls ---- */

static void eval_args(jctx *c, jframe *f, const jnode *n, jv **args, jv **kwv)
{
    *args = jalloc_array(c->a, n->n + 1, sizeof **args);
    *kwv = jalloc_array(c->a, n->nkw + 2, sizeof **kwv);
    for (size_t i = 0; i < n->n; i++)
        (*args)[i] = jeval(c, f, n->items[i]);
    for (size_t i = 0; i < n->nkw; i++)
        (*kwv)[i] = jeval(c, f, n->kwvals[i]);
}

static bool uses_name(const jnode *n, const char *name, int depth)
{
    if (!n || depth > 1000)
        return false;
    if (n->kind == JN_NAME && strcmp(n->name, name) == 0)
        return true;
    if (uses_name(n->a, name, depth + 1) || uses_name(n->b, name, depth + 1) || uses_name(n->c, name, depth + 1) ||
        uses_name(n->d, name, depth + 1))
        return true;
    for (size_t i = 0; i < n->n; i++)
        if (uses_name(n->items[i], name, depth + 1))
            return true;
    for (size_t i = 0; i < n->nkw; i++)
        if (uses_name(n->kwvals[i], name, depth + 1))
            return true;
    return false;
}

static jv call_macro(jctx *c, jfunc *fn, const jv *args, size_t nargs, const char **kwn, const jv *kwv, size_t nkw,
                     int line)
{
    const jnode *m = fn->node;
    const char *mname = m->kind == JN_MACRO ? m->name : "caller";
    if (++c->depth > MAX_CALL_DEPTH)
        jfail(c->a, "template line %d: maximum recursion depth exceeded in macro '%s'", line, mname);
    step(c, line);
    jframe *f = jframe_new(c->a, fn->closure);
    bool *given = jalloc_array(c->a, m->nkw + 1, sizeof *given);
    bool varargs = uses_name(m->b, "varargs", 0), kwargs = uses_name(m->b, "kwargs", 0);
    if (nargs > m->nkw && !varargs)
        jfail(c->a, "template line %d: macro '%s' takes not more than %zu argument(s)", line, mname, m->nkw);
    for (size_t i = 0; i < nargs && i < m->nkw; i++) {
        jframe_set(c->a, f, m->kwnames[i], args[i]);
        given[i] = true;
    }
    jv extra_kw = jv_dict(c->a);
    jv caller = fn->caller;
    for (size_t k = 0; k < nkw; k++) {
        size_t i = 0;
        while (i < m->nkw && strcmp(m->kwnames[i], kwn[k]) != 0)
            i++;
        if (i < m->nkw) {
            if (given[i])
                jfail(c->a, "template line %d: macro '%s' got multiple values for argument '%s'", line, mname, kwn[k]);
            jframe_set(c->a, f, m->kwnames[i], kwv[k]);
            given[i] = true;
        } else if (strcmp(kwn[k], "caller") == 0) {
            caller = kwv[k];
        } else if (kwargs) {
            jdict_set(c->a, extra_kw.u.d, jv_cstr(c->a, kwn[k]), kwv[k]);
        } else {
            jfail(c->a, "template line %d: macro '%s' takes no keyword argument '%s'", line, mname, kwn[k]);
        }
    }
    for (size_t i = 0; i < m->nkw; i++)
        if (!given[i])
            jframe_set(c->a, f, m->kwnames[i],
                       m->kwvals[i] ? jeval(c, f, m->kwvals[i])
                                    : jv_undef(msgf(c, "parameter '%s' was not provided%s", m->kwnames[i], "")));
    size_t nv = nargs > m->nkw ? nargs - m->nkw : 0;
    jv va = jv_list(c->a, nv);
    va.u.l->tuple = true;
    for (size_t i = 0; i < nv; i++)
        va.u.l->v[i] = args[m->nkw + i];
    jframe_set(c->a, f, "varargs", va);
    jframe_set(c->a, f, "kwargs", extra_kw);
    if (caller.t != JV_UNDEF)
        jframe_set(c->a, f, "caller", caller);
    jstrbuf out = { c->a, NULL, 0, 0 };
    jexec(c, f, m->b, &out);
    c->depth--;
    return out.s ? jv_str(out.s, out.n) : jv_str("", 0);
}

static int run_for(jctx *c, jframe *f, const jnode *n, jv iterable, int depth, jstrbuf *out);

jv jcall(jctx *c, jv fn, const jv *args, size_t nargs, const char **kwn, const jv *kwv, size_t nkw, int line)
{
    if (fn.t == JV_UNDEF)
        jundef_fail(c, fn, line);
    if (fn.t == JV_LOOP) {
        if (!fn.u.loop->node || !fn.u.loop->node->flag)
            jfail(c->a, "template line %d: loop() needs a recursive for loop", line);
        if (nargs != 1 || nkw)
            jfail(c->a, "template line %d: loop() takes one argument", line);
        if (++c->depth > MAX_CALL_DEPTH)
            jfail(c->a, "template line %d: maximum recursion depth exceeded in a recursive loop", line);
        jstrbuf out = { c->a, NULL, 0, 0 };
        run_for(c, fn.u.loop->frame, fn.u.loop->node, args[0], fn.u.loop->depth + 1, &out);
        c->depth--;
        return out.s ? jv_str(out.s, out.n) : jv_str("", 0);
    }
    if (fn.t != JV_FUNC)
        jfail(c->a, "template line %d: '%s' object is not callable", line, jv_type_name(fn));
    jfunc *f = fn.u.fn;
    switch (f->kind) {
    case JF_MACRO: return call_macro(c, f, args, nargs, kwn, kwv, nkw, line);
    case JF_METHOD:
        if (f->self.t == JV_LOOP) {
            jloop *l = f->self.u.loop;
            if (strcmp(f->name, "cycle") == 0) {
                if (nargs == 0)
                    jfail(c->a, "template line %d: no items for cycling given", line);
                return args[l->index0 % nargs];
            }
            jv now = jv_list(c->a, nargs);
            for (size_t i = 0; i < nargs; i++)
                now.u.l->v[i] = args[i];
            bool changed = !*l->changed_state || !jv_eq(now, l->changed_last);
            *l->changed_state = 1;
            l->changed_last = now;
            return jv_bool(changed);
        }
        return jmethod_call(c, f->self, f->name, args, nargs, kwn, kwv, nkw, line);
    default: return jglobal_call(c, f, args, nargs, kwn, kwv, nkw, line);
    }
}

/* ---- expressions ---- */

jv jeval(jctx *c, jframe *f, const jnode *e)
{
    switch (e->kind) {
    case JN_CONST: return e->val;
    case JN_NAME: {
        jv *v = jframe_lookup(f, e->name);
        return v ? *v : jv_undef(msgf(c, "'%s' is undefined%s", e->name, ""));
    }
    case JN_LIST:
    case JN_TUPLE: {
        jv l = jv_list(c->a, e->n);
        l.u.l->tuple = e->kind == JN_TUPLE;
        for (size_t i = 0; i < e->n; i++)
            l.u.l->v[i] = jeval(c, f, e->items[i]);
        return l;
    }
    case JN_DICT: {
        jv d = jv_dict(c->a);
        for (size_t i = 0; i + 1 < e->n; i += 2) {
            jv k = jeval(c, f, e->items[i]);
            if (k.t == JV_LIST && !k.u.l->tuple)
                jfail(c->a, "template line %d: unhashable type: 'list'", e->line);
            if (k.t == JV_DICT)
                jfail(c->a, "template line %d: unhashable type: 'dict'", e->line);
            jdict_set(c->a, d.u.d, k, jeval(c, f, e->items[i + 1]));
        }
        return d;
    }
    case JN_GETATTR: return jgetattr(c, jeval(c, f, e->a), e->name, e->line);
    case JN_GETITEM: {
        jv obj = jeval(c, f, e->a);
        if (e->b->kind == JN_SLICE) {
            const jnode *s = e->b;
            jv lo = s->a ? jeval(c, f, s->a) : jv_none(), hi = s->b ? jeval(c, f, s->b) : jv_none();
            jv st = s->c ? jeval(c, f, s->c) : jv_none();
            return do_slice(c, obj, lo, hi, st, e->line);
        }
        return jgetitem(c, obj, jeval(c, f, e->b), e->line);
    }
    case JN_CALL: {
        jv fn = jeval(c, f, e->a);
        jv *args, *kwv;
        eval_args(c, f, e, &args, &kwv);
        return jcall(c, fn, args, e->n, e->kwnames, kwv, e->nkw, e->line);
    }
    case JN_FILTER: {
        jv v = e->a ? jeval(c, f, e->a) : c->block_input;
        jv *args, *kwv;
        eval_args(c, f, e, &args, &kwv);
        return jfilter(c, f, e->name, v, args, e->n, e->kwnames, kwv, e->nkw, e->line);
    }
    case JN_TEST: {
        jv v = jeval(c, f, e->a);
        jv *args, *kwv;
        eval_args(c, f, e, &args, &kwv);
        return jv_bool(jtest(c, e->name, v, args, e->n, e->line));
    }
    case JN_NEG:
    case JN_POS: {
        jv v = jeval(c, f, e->a);
        if (v.t == JV_UNDEF)
            jundef_fail(c, v, e->line);
        if (!jv_is_num(v))
            jfail(c->a, "template line %d: bad operand type for unary %c: '%s'", e->line, e->kind == JN_NEG ? '-' : '+',
                  jv_type_name(v));
        if (e->kind == JN_POS)
            return v.t == JV_BOOL ? jv_int(v.u.b) : v;
        if (v.t == JV_FLOAT)
            return jv_float(-v.u.f);
        if (as_int(v) == INT64_MIN)
            jfail(c->a, "template line %d: integer overflow", e->line);
        return jv_int(-as_int(v));
    }
    case JN_NOT: return jv_bool(!jv_truthy(jeval(c, f, e->a)));
    case JN_AND: {
        jv l = jeval(c, f, e->a);
        return jv_truthy(l) ? jeval(c, f, e->b) : l;
    }
    case JN_OR: {
        jv l = jeval(c, f, e->a);
        return jv_truthy(l) ? l : jeval(c, f, e->b);
    }
    case JN_BINOP: return arith(c, e->name, jeval(c, f, e->a), jeval(c, f, e->b), e->line);
    case JN_CONCAT: {
        jstrbuf b = { c->a, NULL, 0, 0 };
        for (size_t i = 0; i < e->n; i++)
            jv_str_to(&b, jeval(c, f, e->items[i]));
        return b.s ? jv_str(b.s, b.n) : jv_str("", 0);
    }
    case JN_COMPARE: {
        jv l = jeval(c, f, e->items[0]);
        for (size_t i = 1; i < e->n; i++) {
            jv r = jeval(c, f, e->items[i]);
            if (!compare(c, e->ops[i - 1], l, r, e->line))
                return jv_bool(false);
            l = r;
        }
        return jv_bool(true);
    }
    case JN_COND:
        if (jv_truthy(jeval(c, f, e->b)))
            return jeval(c, f, e->a);
        return e->c ? jeval(c, f, e->c)
                    : jv_undef(msgf(c, "the inline if-expression on line %s evaluated to false and no else section "
                                       "was defined.%s", "?", ""));
    default: break;
    }
    jfail(c->a, "template line %d: not an expression", e->line);
}

/* ---- statements ---- */

static void put_out(jctx *c, jstrbuf *out, const char *s, size_t n)
{
    if (out->n + n > OUT_LIMIT)
        jfail(c->a, "template: output over %d MiB", OUT_LIMIT >> 20);
    jsb_put(out, s, n);
}

static void assign(jctx *c, jframe *f, const jnode *target, jv v, int line)
{
    if (target->kind == JN_NAME) {
        jframe_set(c->a, f, target->name, v);
        return;
    }
    if (target->kind == JN_GETATTR) {
        jv ns = jeval(c, f, target->a);
        if (ns.t != JV_DICT || !ns.u.d->ns)
            jfail(c->a, "template line %d: cannot assign attribute on non-namespace object", line);
        jdict_set(c->a, ns.u.d, jv_cstr(c->a, target->name), v);
        return;
    }
    jlist *items = jiter(c, v, line);
    if (items->n != target->n)
        jfail(c->a, "template line %d: %s values to unpack (expected %zu, got %zu)", line,
              items->n > target->n ? "too many" : "not enough", target->n, items->n);
    for (size_t i = 0; i < target->n; i++)
        jframe_set(c->a, f, target->items[i]->name, items->v[i]);
}

static int run_for(jctx *c, jframe *f, const jnode *n, jv iterable, int depth, jstrbuf *out)
{
    jlist *all = jiter(c, iterable, n->line), *items = all;
    if (n->c) {                                   /* for x in y if cond */
        items = jalloc(c->a, sizeof *items);
        items->v = jalloc_array(c->a, all->n + 1, sizeof *items->v);
        for (size_t i = 0; i < all->n; i++) {
            step(c, n->line);
            jframe *t = jframe_new(c->a, f);
            assign(c, t, n->a, all->v[i], n->line);
            if (jv_truthy(jeval(c, t, n->c)))
                items->v[items->n++] = all->v[i];
        }
    }
    jloop *l = jalloc(c->a, sizeof *l);
    l->items = items;
    l->depth = depth;
    l->node = n;
    l->frame = f;
    l->changed_state = jalloc(c->a, sizeof *l->changed_state);
    for (size_t i = 0; i < items->n; i++) {
        step(c, n->line);
        jframe *it = jframe_new(c->a, f);
        l->index0 = i;
        jframe_set(c->a, it, "loop", (jv){ JV_LOOP, 0, { .loop = l }, false });
        assign(c, it, n->a, items->v[i], n->line);
        int rc = jexec(c, it, n->d, out);
        if (rc == JN_BREAK)
            break;
    }
    if (items->n == 0 && n->n)
        return jexec(c, jframe_new(c->a, f), n->items[0], out);
    return 0;
}

static jv render_block(jctx *c, jframe *f, const jnode *body)
{
    jstrbuf b = { c->a, NULL, 0, 0 };
    jexec(c, jframe_new(c->a, f), body, &b);
    return b.s ? jv_str(b.s, b.n) : jv_str("", 0);
}

static jv apply_block_filter(jctx *c, jframe *f, const jnode *chain, jv input)
{
    jv saved = c->block_input;
    c->block_input = input;
    jv r = jeval(c, f, chain);
    c->block_input = saved;
    return r;
}

int jexec(jctx *c, jframe *f, const jnode *body, jstrbuf *out)
{
    for (size_t i = 0; i < body->n; i++) {
        const jnode *n = body->items[i];
        int rc = 0;
        switch (n->kind) {
        case JN_DATA: put_out(c, out, n->val.u.s, n->val.n); break;
        case JN_OUTPUT: {
            jv v = jeval(c, f, n->a);
            if (v.t == JV_STR) {
                put_out(c, out, v.u.s, v.n);
            } else {
                jv s = jv_to_str(c->a, v);
                put_out(c, out, s.u.s, s.n);
            }
            break;
        }
        case JN_IF:
            if (jv_truthy(jeval(c, f, n->a)))
                rc = jexec(c, f, n->b, out);
            else if (n->c)
                rc = jexec(c, f, n->c, out);
            break;
        case JN_FOR: run_for(c, f, n, jeval(c, f, n->b), 1, out); break;
        case JN_SET: assign(c, f, n->a, jeval(c, f, n->b), n->line); break;
        case JN_SETBLOCK: {
            jv v = render_block(c, f, n->b);
            if (n->c)
                v = apply_block_filter(c, f, n->c, v);
            assign(c, f, n->a, v, n->line);
            break;
        }
        case JN_MACRO: {
            jfunc *fn = jalloc(c->a, sizeof *fn);
            fn->kind = JF_MACRO;
            fn->name = n->name;
            fn->node = n;
            fn->closure = f;
            fn->caller = jv_undef(NULL);
            jframe_set(c->a, f, n->name, (jv){ JV_FUNC, 0, { .fn = fn }, false });
            break;
        }
        case JN_CALLBLOCK: {
            if (!n->a) {                          /* {% generation %} */
                jv v = render_block(c, f, n->b);
                put_out(c, out, v.u.s, v.n);
                break;
            }
            jfunc *caller = jalloc(c->a, sizeof *caller);
            caller->kind = JF_MACRO;
            caller->name = "caller";
            caller->node = n;
            caller->closure = f;
            caller->caller = jv_undef(NULL);
            const jnode *call = n->a;
            jv fn = jeval(c, f, call->a);
            jv *args, *kwv;
            eval_args(c, f, call, &args, &kwv);
            const char **kwn = jalloc_array(c->a, call->nkw + 1, sizeof *kwn);
            if (call->nkw)
                memcpy(kwn, call->kwnames, call->nkw * sizeof *kwn);
            kwn[call->nkw] = "caller";
            kwv[call->nkw] = (jv){ JV_FUNC, 0, { .fn = caller }, false };
            jv v = jv_to_str(c->a, jcall(c, fn, args, call->n, kwn, kwv, call->nkw + 1, n->line));
            put_out(c, out, v.u.s, v.n);
            break;
        }
        case JN_FILTERBLOCK: {
            jv v = jv_to_str(c->a, apply_block_filter(c, f, n->a, render_block(c, f, n->b)));
            put_out(c, out, v.u.s, v.n);
            break;
        }
        case JN_BREAK: return JN_BREAK;
        case JN_CONTINUE: return JN_CONTINUE;
        default: jfail(c->a, "template line %d: not a statement", n->line);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- entry points ---- */

int vc_jinja_parse(const char *src, size_t len, vc_jinja **out)
{
    *out = NULL;
    vc_jinja *t = vc_calloc(1, sizeof *t);
    if (!t)
        return -1;
    jmp_buf jmp;
    t->arena.limit = ARENA_LIMIT;
    t->arena.jmp = &jmp;
    if (setjmp(jmp)) {
        jarena_free(&t->arena);
        free(t);
        return -1;
    }
    jtok *toks;
    size_t n;
    jlex(&t->arena, src, len, &toks, &n);
    t->body = jparse(&t->arena, toks, n);
    t->arena.jmp = NULL;
    *out = t;
    return 0;
}

void vc_jinja_free(vc_jinja *t)
{
    if (!t)
        return;
    jarena_free(&t->arena);
    free(t);
}

int vc_jinja_render(const vc_jinja *t, const json_t *vars, char **out, size_t *len)
{
    *out = NULL;
    if (len)
        *len = 0;
    jmp_buf jmp;
    jarena *a = vc_calloc(1, sizeof *a);   /* on the heap: what longjmp returns to sees its contents */
    if (!a)
        return -1;
    a->limit = ARENA_LIMIT;
    a->jmp = &jmp;
    if (setjmp(jmp)) {
        jarena_free(a);
        free(a);
        return -1;
    }
    jctx c = { a, NULL, 0, 0, jv_undef(NULL) };
    c.globals = jframe_new(a, NULL);
    jglobals_install(&c, c.globals);
    if (vars && json_is_object(vars)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)vars, k, v) {
            jv name = jv_cstr(a, k);
            jframe_set(a, c.globals, name.u.s, jv_from_json(a, v));
        }
    }
    jstrbuf b = { a, NULL, 0, 0 };
    jexec(&c, jframe_new(a, c.globals), t->body, &b);
    char *s = vc_malloc(b.n + 1);
    if (s) {
        if (b.n)
            memcpy(s, b.s, b.n);
        s[b.n] = 0;
        *out = s;
        if (len)
            *len = b.n;
    }
    jarena_free(a);
    free(a);
    return s ? 0 : -1;
}
