/* jinja_parse.c - tokens to a syntax tree, as jinja2/parser.py builds it
 * (see jinja_impl.h), then jinja2's compile-time checks: unknown filters and
 * tests outside conditional branches, break/continue outside a loop. */
#include "jinja_impl.h"

#include <string.h>

#include "core/common.h"

typedef struct {
    jarena *a;
    const jtok *t;
    size_t n, i;
    int depth;
} parser;

enum { MAX_DEPTH = 200 };

static const jtok *cur(parser *P) { return &P->t[P->i]; }
static const jtok *peek(parser *P, size_t k) { return &P->t[P->i + k < P->n ? P->i + k : P->n - 1]; }
static void next(parser *P) { if (P->i + 1 < P->n) P->i++; }

static bool tok_is(const jtok *t, jtok_kind k, const char *s)
{
    return t->kind == k && (!s || (t->n == strlen(s) && memcmp(t->s, s, t->n) == 0));
}
static bool is_op(parser *P, const char *op) { return tok_is(cur(P), JT_OP, op); }
static bool is_name(parser *P, const char *name) { return tok_is(cur(P), JT_NAME, name); }

static const char *describe(parser *P, const jtok *t)
{
    static const char *const kinds[] = { "end of template", "template data", "begin of print statement",
                                         "end of print statement", "begin of statement block",
                                         "end of statement block", "name", "string", "integer", "float", "" };
    if (t->kind == JT_NAME || t->kind == JT_OP) {
        char *s = jalloc(P->a, t->n + 1);
        memcpy(s, t->s, t->n);
        return s;
    }
    return kinds[t->kind];
}

_Noreturn static void fail_at(parser *P, const char *what)
{
    jfail(P->a, "template line %d: %s, got '%s'", cur(P)->line, what, describe(P, cur(P)));
}

static void expect_op(parser *P, const char *op)
{
    if (!is_op(P, op)) {
        char what[64];
        snprintf(what, sizeof what, "expected token '%s'", op);
        fail_at(P, what);
    }
    next(P);
}

static bool skip_op(parser *P, const char *op)
{
    if (!is_op(P, op))
        return false;
    next(P);
    return true;
}

static bool skip_name(parser *P, const char *name)
{
    if (!is_name(P, name))
        return false;
    next(P);
    return true;
}

static const char *tok_str(parser *P, const jtok *t)
{
    char *s = jalloc(P->a, t->n + 1);
    if (t->n)
        memcpy(s, t->s, t->n);
    return s;
}

static const char *expect_name(parser *P)
{
    if (cur(P)->kind != JT_NAME)
        fail_at(P, "expected a name");
    const char *s = tok_str(P, cur(P));
    next(P);
    return s;
}

static void expect_block_end(parser *P)
{
    if (cur(P)->kind != JT_BLOCK_END)
        fail_at(P, "expected the end of the statement block");
    next(P);
}

static jnode *node(parser *P, jnkind k)
{
    jnode *n = jalloc(P->a, sizeof *n);
    n->kind = k;
    n->line = cur(P)->line;
    return n;
}

/* A growable node list in the arena. */
typedef struct {
    jnode **v;
    size_t n, cap;
} nlist;

static void nl_push(parser *P, nlist *l, jnode *x)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        jnode **v = jalloc_array(P->a, cap, sizeof *v);
        if (l->n)
            memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = x;
}

static void enter(parser *P)
{
    if (++P->depth > MAX_DEPTH)
        jfail(P->a, "template line %d: expressions nested too deep", cur(P)->line);
}

static jnode *parse_expression(parser *P, bool with_condexpr);
static jnode *parse_tuple(parser *P, bool simplified, bool with_condexpr, const char *extra_end, bool explicit);
static jnode *parse_unary(parser *P, bool with_filter);
static jnode *parse_primary(parser *P);
static jnode *parse_postfix(parser *P, jnode *n);

/* ( args ) of a call, a filter or a test: positional and keyword arguments. */
static void parse_call_args(parser *P, jnode *n)
{
    expect_op(P, "(");
    nlist args = { 0 }, kwv = { 0 };
    const char **kwn = NULL;
    size_t kcap = 0;
    bool first = true;
    while (!is_op(P, ")")) {
        if (!first)
            expect_op(P, ",");
        first = false;
        if (is_op(P, ")"))
            break;
        if (is_op(P, "*") || is_op(P, "**"))
            jfail(P->a, "template line %d: *args and **kwargs in calls are not supported", cur(P)->line);
        if (cur(P)->kind == JT_NAME && tok_is(peek(P, 1), JT_OP, "=")) {
            const char *k = expect_name(P);
            next(P);
            if (kwv.n == kcap) {
                kcap = kcap ? kcap * 2 : 4;
                const char **nk = jalloc_array(P->a, kcap, sizeof *nk);
                if (kwv.n)
                    memcpy(nk, kwn, kwv.n * sizeof *nk);
                kwn = nk;
            }
            kwn[kwv.n] = k;
            nl_push(P, &kwv, parse_expression(P, true));
        } else {
            if (kwv.n)
                jfail(P->a, "template line %d: positional argument follows keyword argument", cur(P)->line);
            nl_push(P, &args, parse_expression(P, true));
        }
    }
    next(P);
    n->items = args.v, n->n = args.n;
    n->kwvals = kwv.v, n->kwnames = kwn, n->nkw = kwv.n;
}

/* A dotted filter or test name. */
static const char *dotted_name(parser *P)
{
    const char *name = expect_name(P);
    while (is_op(P, ".") && peek(P, 1)->kind == JT_NAME) {
        next(P);
        const char *more = expect_name(P);
        size_t a = strlen(name), b = strlen(more);
        char *s = jalloc(P->a, a + b + 2);
        memcpy(s, name, a);
        s[a] = '.';
        memcpy(s + a + 1, more, b);
        name = s;
    }
    return name;
}

static jnode *parse_filter(parser *P, jnode *operand, bool start_inline)
{
    while (is_op(P, "|") || start_inline) {
        if (!start_inline)
            next(P);
        start_inline = false;
        jnode *f = node(P, JN_FILTER);
        f->name = dotted_name(P);
        f->a = operand;
        if (is_op(P, "("))
            parse_call_args(P, f);
        operand = f;
    }
    return operand;
}

static jnode *parse_test(parser *P, jnode *operand)
{
    next(P);                                      /* is */
    bool negated = skip_name(P, "not");
    jnode *t = node(P, JN_TEST);
    t->name = dotted_name(P);
    t->a = operand;
    const jtok *c = cur(P);
    if (is_op(P, "(")) {
        parse_call_args(P, t);
    } else if ((c->kind == JT_NAME || c->kind == JT_STRING || c->kind == JT_INT || c->kind == JT_FLOAT ||
                is_op(P, "[") || is_op(P, "{")) &&
               !is_name(P, "else") && !is_name(P, "or") && !is_name(P, "and")) {
        if (is_name(P, "is"))
            jfail(P->a, "template line %d: you cannot chain multiple tests with is", c->line);
        jnode *arg = parse_postfix(P, parse_primary(P));
        t->items = jalloc(P->a, sizeof *t->items);
        t->items[0] = arg;
        t->n = 1;
    }
    if (!negated)
        return t;
    jnode *n = node(P, JN_NOT);
    n->a = t;
    return n;
}

static jnode *parse_subscribed(parser *P)
{
    jnode *args[3] = { NULL, NULL, NULL };
    if (is_op(P, ":")) {
        next(P);
    } else {
        jnode *e = parse_expression(P, true);
        if (!skip_op(P, ":"))
            return e;
        args[0] = e;
    }
    if (!is_op(P, "]") && !is_op(P, ",") && !is_op(P, ":"))
        args[1] = parse_expression(P, true);
    if (skip_op(P, ":") && !is_op(P, "]") && !is_op(P, ","))
        args[2] = parse_expression(P, true);
    jnode *s = node(P, JN_SLICE);
    s->a = args[0], s->b = args[1], s->c = args[2];
    return s;
}

static jnode *parse_postfix(parser *P, jnode *n)
{
    for (;;) {
        if (is_op(P, ".")) {
            next(P);
            if (cur(P)->kind == JT_NAME) {
                jnode *g = node(P, JN_GETATTR);
                g->a = n;
                g->name = expect_name(P);
                n = g;
            } else if (cur(P)->kind == JT_INT) {
                jnode *g = node(P, JN_GETITEM), *k = node(P, JN_CONST);
                k->val = jv_int(cur(P)->i);
                next(P);
                g->a = n, g->b = k;
                n = g;
            } else {
                fail_at(P, "expected a name or number after '.'");
            }
        } else if (is_op(P, "[")) {
            next(P);
            nlist args = { 0 };
            while (!is_op(P, "]")) {
                if (args.n)
                    expect_op(P, ",");
                if (is_op(P, "]"))
                    break;
                nl_push(P, &args, parse_subscribed(P));
            }
            next(P);
            if (args.n == 0)
                fail_at(P, "expected a subscript");
            jnode *g = node(P, JN_GETITEM);
            g->a = n;
            if (args.n == 1) {
                g->b = args.v[0];
            } else {
                g->b = node(P, JN_TUPLE);
                g->b->items = args.v, g->b->n = args.n;
            }
            n = g;
        } else if (is_op(P, "(")) {
            jnode *c = node(P, JN_CALL);
            c->a = n;
            parse_call_args(P, c);
            n = c;
        } else {
            return n;
        }
    }
}

static jnode *parse_filter_expr(parser *P, jnode *n)
{
    for (;;) {
        if (is_op(P, "|")) {
            n = parse_filter(P, n, false);
        } else if (is_name(P, "is")) {
            n = parse_test(P, n);
        } else if (is_op(P, "(")) {
            jnode *c = node(P, JN_CALL);
            c->a = n;
            parse_call_args(P, c);
            n = c;
        } else {
            return n;
        }
    }
}

static jnode *parse_primary(parser *P)
{
    const jtok *t = cur(P);
    jnode *n;
    enter(P);
    if (t->kind == JT_NAME) {
        n = node(P, JN_CONST);
        if (tok_is(t, JT_NAME, "true") || tok_is(t, JT_NAME, "True"))
            n->val = jv_bool(true);
        else if (tok_is(t, JT_NAME, "false") || tok_is(t, JT_NAME, "False"))
            n->val = jv_bool(false);
        else if (tok_is(t, JT_NAME, "none") || tok_is(t, JT_NAME, "None"))
            n->val = jv_none();
        else
            n->kind = JN_NAME, n->name = tok_str(P, t);
        next(P);
    } else if (t->kind == JT_STRING) {
        jstrbuf b = { P->a, NULL, 0, 0 };
        while (cur(P)->kind == JT_STRING) {
            jsb_put(&b, cur(P)->s, cur(P)->n);
            next(P);
        }
        n = node(P, JN_CONST);
        n->val = jv_str(b.s ? b.s : "", b.n);
    } else if (t->kind == JT_INT || t->kind == JT_FLOAT) {
        n = node(P, JN_CONST);
        n->val = t->kind == JT_INT ? jv_int(t->i) : jv_float(t->f);
        next(P);
    } else if (is_op(P, "(")) {
        next(P);
        n = parse_tuple(P, false, true, NULL, true);
        expect_op(P, ")");
    } else if (is_op(P, "[")) {
        next(P);
        nlist items = { 0 };
        while (!is_op(P, "]")) {
            if (items.n)
                expect_op(P, ",");
            if (is_op(P, "]"))
                break;
            nl_push(P, &items, parse_expression(P, true));
        }
        next(P);
        n = node(P, JN_LIST);
        n->items = items.v, n->n = items.n;
    } else if (is_op(P, "{")) {
        next(P);
        nlist items = { 0 };
        while (!is_op(P, "}")) {
            if (items.n)
                expect_op(P, ",");
            if (is_op(P, "}"))
                break;
            nl_push(P, &items, parse_expression(P, true));
            expect_op(P, ":");
            nl_push(P, &items, parse_expression(P, true));
        }
        next(P);
        n = node(P, JN_DICT);
        n->items = items.v, n->n = items.n;
    } else {
        fail_at(P, "unexpected token");
    }
    P->depth--;
    return n;
}

static jnode *parse_unary(parser *P, bool with_filter)
{
    jnode *n;
    enter(P);
    if (is_op(P, "-") || is_op(P, "+")) {
        n = node(P, is_op(P, "-") ? JN_NEG : JN_POS);
        next(P);
        n->a = parse_unary(P, false);
    } else {
        n = parse_primary(P);
    }
    n = parse_postfix(P, n);
    if (with_filter)
        n = parse_filter_expr(P, n);
    P->depth--;
    return n;
}

static jnode *binop(parser *P, const char *op, jnode *l, jnode *r)
{
    jnode *n = node(P, JN_BINOP);
    n->name = op, n->a = l, n->b = r;
    return n;
}

static jnode *parse_pow(parser *P)
{
    jnode *l = parse_unary(P, true);
    while (is_op(P, "**")) {
        next(P);
        l = binop(P, "**", l, parse_unary(P, true));
    }
    return l;
}

static jnode *parse_math2(parser *P)
{
    jnode *l = parse_pow(P);
    for (;;) {
        const char *op = is_op(P, "*") ? "*" : is_op(P, "/") ? "/" : is_op(P, "//") ? "//" : is_op(P, "%") ? "%" : NULL;
        if (!op)
            return l;
        next(P);
        l = binop(P, op, l, parse_pow(P));
    }
}

static jnode *parse_concat(parser *P)
{
    jnode *first = parse_math2(P);
    if (!is_op(P, "~"))
        return first;
    nlist args = { 0 };
    nl_push(P, &args, first);
    while (skip_op(P, "~"))
        nl_push(P, &args, parse_math2(P));
    jnode *n = node(P, JN_CONCAT);
    n->items = args.v, n->n = args.n;
    return n;
}

static jnode *parse_math1(parser *P)
{
    jnode *l = parse_concat(P);
    for (;;) {
        const char *op = is_op(P, "+") ? "+" : is_op(P, "-") ? "-" : NULL;
        if (!op)
            return l;
        next(P);
        l = binop(P, op, l, parse_concat(P));
    }
}

static jnode *parse_compare(parser *P)
{
    jnode *first = parse_math1(P);
    nlist operands = { 0 };
    const char **ops = NULL;
    size_t cap = 0;
    for (;;) {
        static const char *const cmp[] = { "==", "!=", "<", "<=", ">", ">=" };
        const char *op = NULL;
        for (size_t k = 0; k < VC_ARRAY_LEN(cmp) && !op; k++)
            if (is_op(P, cmp[k]))
                op = cmp[k];
        if (op) {
            next(P);
        } else if (is_name(P, "in")) {
            next(P);
            op = "in";
        } else if (is_name(P, "not") && tok_is(peek(P, 1), JT_NAME, "in")) {
            next(P), next(P);
            op = "not in";
        } else {
            break;
        }
        if (!operands.n)
            nl_push(P, &operands, first);
        if (operands.n > cap) {
            cap = cap ? cap * 2 : 4;
            const char **no = jalloc_array(P->a, cap, sizeof *no);
            if (operands.n > 1)
                memcpy(no, ops, (operands.n - 1) * sizeof *no);
            ops = no;
        }
        ops[operands.n - 1] = op;
        nl_push(P, &operands, parse_math1(P));
    }
    if (!operands.n)
        return first;
    jnode *n = node(P, JN_COMPARE);
    n->items = operands.v, n->n = operands.n, n->ops = ops;
    return n;
}

static jnode *parse_not(parser *P)
{
    if (is_name(P, "not")) {
        jnode *n = node(P, JN_NOT);
        next(P);
        enter(P);
        n->a = parse_not(P);
        P->depth--;
        return n;
    }
    return parse_compare(P);
}

static jnode *parse_and(parser *P)
{
    jnode *l = parse_not(P);
    while (skip_name(P, "and")) {
        jnode *n = node(P, JN_AND);
        n->a = l, n->b = parse_not(P);
        l = n;
    }
    return l;
}

static jnode *parse_or(parser *P)
{
    jnode *l = parse_and(P);
    while (skip_name(P, "or")) {
        jnode *n = node(P, JN_OR);
        n->a = l, n->b = parse_and(P);
        l = n;
    }
    return l;
}

static jnode *parse_condexpr(parser *P)
{
    jnode *e = parse_or(P);
    while (skip_name(P, "if")) {
        jnode *n = node(P, JN_COND);
        n->a = e;                       /* value if true */
        n->b = parse_or(P);             /* the test */
        if (skip_name(P, "else")) {
            enter(P);
            n->c = parse_condexpr(P);
            P->depth--;
        }
        e = n;
    }
    return e;
}

static jnode *parse_expression(parser *P, bool with_condexpr)
{
    enter(P);
    jnode *n = with_condexpr ? parse_condexpr(P) : parse_or(P);
    P->depth--;
    return n;
}

static bool tuple_end(parser *P, const char *extra_end)
{
    const jtok *t = cur(P);
    return t->kind == JT_VAR_END || t->kind == JT_BLOCK_END || t->kind == JT_EOF || is_op(P, ")") ||
           (extra_end && is_name(P, extra_end));
}

static jnode *parse_tuple(parser *P, bool simplified, bool with_condexpr, const char *extra_end, bool explicit)
{
    nlist args = { 0 };
    bool is_tuple = false;
    for (;;) {
        if (args.n)
            expect_op(P, ",");
        if (tuple_end(P, extra_end))
            break;
        nl_push(P, &args, simplified ? parse_primary(P) : parse_expression(P, with_condexpr));
        if (is_op(P, ","))
            is_tuple = true;
        else
            break;
    }
    if (!is_tuple) {
        if (args.n)
            return args.v[0];
        if (!explicit)
            fail_at(P, "expected an expression");
    }
    jnode *n = node(P, JN_TUPLE);
    n->items = args.v, n->n = args.n;
    return n;
}

/* ---- statements ---- */

static jnode *parse_body(parser *P, const char *const *ends);

static bool at_end_tag(parser *P, const char *const *ends)
{
    if (cur(P)->kind != JT_BLOCK_BEGIN || !ends)
        return false;
    for (size_t k = 0; ends[k]; k++)
        if (tok_is(peek(P, 1), JT_NAME, ends[k]))
            return true;
    return false;
}

static jnode *parse_assign_target(parser *P, bool with_namespace, const char *extra_end)
{
    jnode *t;
    if (with_namespace && cur(P)->kind == JT_NAME && tok_is(peek(P, 1), JT_OP, ".")) {
        t = node(P, JN_GETATTR);
        jnode *ns = node(P, JN_NAME);
        ns->name = expect_name(P);
        next(P);
        t->a = ns;
        t->name = expect_name(P);
        return t;
    }
    t = parse_tuple(P, true, true, extra_end, false);
    bool ok = t->kind == JN_NAME;
    if (t->kind == JN_TUPLE) {
        ok = true;
        for (size_t k = 0; k < t->n; k++)
            ok = ok && t->items[k]->kind == JN_NAME;
    }
    if (!ok)
        jfail(P->a, "template line %d: can't assign to this expression", t->line);
    return t;
}

/* ( name [= default], ... ) of a macro or a call block. */
static void parse_signature(parser *P, jnode *m)
{
    expect_op(P, "(");
    nlist defs = { 0 };
    const char **names = NULL;
    size_t cap = 0;
    bool any_default = false;
    while (!is_op(P, ")")) {
        if (defs.n)
            expect_op(P, ",");
        const char *name = expect_name(P);
        jnode *def = NULL;
        if (skip_op(P, "=")) {
            def = parse_expression(P, true);
            any_default = true;
        } else if (any_default) {
            jfail(P->a, "template line %d: non-default argument follows default argument", cur(P)->line);
        }
        if (defs.n == cap) {
            cap = cap ? cap * 2 : 4;
            const char **nn = jalloc_array(P->a, cap, sizeof *nn);
            if (defs.n)
                memcpy(nn, names, defs.n * sizeof *nn);
            names = nn;
        }
        names[defs.n] = name;
        nl_push(P, &defs, def);
    }
    next(P);
    m->kwnames = names, m->kwvals = defs.v, m->nkw = defs.n;
}

static void expect_end_tag(parser *P, const char *name)
{
    next(P);                                      /* {% */
    next(P);                                      /* the name */
    (void)name;
    expect_block_end(P);
}

static jnode *parse_if(parser *P)
{
    jnode *n = node(P, JN_IF);
    n->a = parse_tuple(P, false, false, NULL, false);
    expect_block_end(P);
    static const char *const ends[] = { "elif", "else", "endif", NULL };
    n->b = parse_body(P, ends);
    if (!at_end_tag(P, ends))
        jfail(P->a, "template line %d: unexpected end of template, expected 'endif'", cur(P)->line);
    next(P);
    const jtok *t = cur(P);
    next(P);
    if (tok_is(t, JT_NAME, "elif")) {
        jnode *body = node(P, JN_BODY);
        body->items = jalloc(P->a, sizeof *body->items);
        body->items[0] = parse_if(P);
        body->n = 1;
        n->c = body;
        return n;
    }
    if (tok_is(t, JT_NAME, "else")) {
        expect_block_end(P);
        static const char *const end[] = { "endif", NULL };
        n->c = parse_body(P, end);
        if (!at_end_tag(P, end))
            jfail(P->a, "template line %d: unexpected end of template, expected 'endif'", cur(P)->line);
        expect_end_tag(P, "endif");
        return n;
    }
    expect_block_end(P);
    return n;
}

static jnode *parse_for(parser *P)
{
    jnode *n = node(P, JN_FOR);
    n->a = parse_assign_target(P, false, "in");
    if (!skip_name(P, "in"))
        fail_at(P, "expected 'in'");
    n->b = parse_tuple(P, false, false, "recursive", false);
    if (skip_name(P, "if"))
        n->c = parse_expression(P, true);
    n->flag = skip_name(P, "recursive");
    expect_block_end(P);
    static const char *const ends[] = { "endfor", "else", NULL };
    n->d = parse_body(P, ends);
    if (!at_end_tag(P, ends))
        jfail(P->a, "template line %d: unexpected end of template, expected 'endfor'", cur(P)->line);
    if (tok_is(peek(P, 1), JT_NAME, "else")) {
        next(P), next(P);
        expect_block_end(P);
        static const char *const end[] = { "endfor", NULL };
        jnode *els = parse_body(P, end);
        if (!at_end_tag(P, end))
            jfail(P->a, "template line %d: unexpected end of template, expected 'endfor'", cur(P)->line);
        n->items = jalloc(P->a, sizeof *n->items);
        n->items[0] = els;
        n->n = 1;
    }
    expect_end_tag(P, "endfor");
    return n;
}

static jnode *parse_block_body(parser *P, const char *end)
{
    const char *ends[] = { end, NULL };
    jnode *body = parse_body(P, ends);
    if (!at_end_tag(P, ends))
        jfail(P->a, "template line %d: unexpected end of template, expected '%s'", cur(P)->line, end);
    expect_end_tag(P, end);
    return body;
}

static jnode *parse_statement(parser *P)
{
    next(P);                                      /* {% */
    const jtok *t = cur(P);
    if (t->kind != JT_NAME)
        fail_at(P, "expected a tag name");
    const char *tag = tok_str(P, t);
    int line = t->line;
    next(P);
    jnode *n;
    if (strcmp(tag, "if") == 0) {
        return parse_if(P);
    } else if (strcmp(tag, "for") == 0) {
        return parse_for(P);
    } else if (strcmp(tag, "set") == 0) {
        jnode *target = parse_assign_target(P, true, NULL);
        if (skip_op(P, "=")) {
            n = node(P, JN_SET);
            n->a = target;
            n->b = parse_tuple(P, false, true, NULL, false);
            expect_block_end(P);
            return n;
        }
        n = node(P, JN_SETBLOCK);
        n->a = target;
        if (is_op(P, "|"))
            n->c = parse_filter(P, NULL, false);
        expect_block_end(P);
        n->b = parse_block_body(P, "endset");
        return n;
    } else if (strcmp(tag, "macro") == 0) {
        n = node(P, JN_MACRO);
        n->name = expect_name(P);
        parse_signature(P, n);
        expect_block_end(P);
        n->b = parse_block_body(P, "endmacro");
        return n;
    } else if (strcmp(tag, "call") == 0) {
        n = node(P, JN_CALLBLOCK);
        if (is_op(P, "("))
            parse_signature(P, n);
        n->a = parse_expression(P, true);
        if (n->a->kind != JN_CALL)
            jfail(P->a, "template line %d: expected a call after 'call'", line);
        expect_block_end(P);
        n->b = parse_block_body(P, "endcall");
        return n;
    } else if (strcmp(tag, "filter") == 0) {
        n = node(P, JN_FILTERBLOCK);
        n->a = parse_filter(P, NULL, true);
        expect_block_end(P);
        n->b = parse_block_body(P, "endfilter");
        return n;
    } else if (strcmp(tag, "break") == 0 || strcmp(tag, "continue") == 0) {
        n = node(P, tag[0] == 'b' ? JN_BREAK : JN_CONTINUE);
        expect_block_end(P);
        return n;
    } else if (strcmp(tag, "generation") == 0) {
        /* transformers' AssistantTracker: the body renders as is (as a call block) */
        n = node(P, JN_CALLBLOCK);
        expect_block_end(P);
        n->b = parse_block_body(P, "endgeneration");
        return n;
    }
    jfail(P->a, "template line %d: encountered unknown tag '%s'", line, tag);
}

static jnode *parse_body(parser *P, const char *const *ends)
{
    nlist items = { 0 };
    jnode *body = node(P, JN_BODY);
    enter(P);
    for (;;) {
        const jtok *t = cur(P);
        if (t->kind == JT_EOF)
            break;
        if (t->kind == JT_DATA) {
            jnode *d = node(P, JN_DATA);
            d->val = jv_str(t->s, t->n);
            nl_push(P, &items, d);
            next(P);
        } else if (t->kind == JT_VAR_BEGIN) {
            next(P);
            jnode *o = node(P, JN_OUTPUT);
            o->a = parse_tuple(P, false, true, NULL, false);
            if (cur(P)->kind != JT_VAR_END)
                fail_at(P, "expected the end of the print statement");
            next(P);
            nl_push(P, &items, o);
        } else if (t->kind == JT_BLOCK_BEGIN) {
            if (at_end_tag(P, ends))
                break;
            nl_push(P, &items, parse_statement(P));
        } else {
            fail_at(P, "unexpected token");
        }
    }
    P->depth--;
    body->items = items.v, body->n = items.n;
    return body;
}

/* ---- compile-time checks ---- */

static void check(jarena *a, const jnode *n, bool soft, bool in_loop, int depth);

static void check_list(jarena *a, jnode *const *v, size_t k, bool soft, bool in_loop, int depth)
{
    for (size_t i = 0; i < k; i++)
        check(a, v[i], soft, in_loop, depth);
}

static void check(jarena *a, const jnode *n, bool soft, bool in_loop, int depth)
{
    if (!n)
        return;
    if (depth > 4 * MAX_DEPTH)
        jfail(a, "template: nested too deep");
    depth++;
    switch (n->kind) {
    case JN_FILTER:
    case JN_TEST:
        if (!soft && !(n->kind == JN_FILTER ? jfilter_known(n->name) : jtest_known(n->name)))
            jfail(a, "template line %d: no %s named '%s'", n->line, n->kind == JN_FILTER ? "filter" : "test", n->name);
        break;
    case JN_COND:
        soft = true;
        break;
    case JN_IF:
        check(a, n->a, true, in_loop, depth);
        check(a, n->b, true, in_loop, depth);
        check(a, n->c, true, in_loop, depth);
        return;
    case JN_FOR:
        check(a, n->b, soft, in_loop, depth);
        check(a, n->c, false, true, depth);
        check(a, n->d, false, true, depth);
        check_list(a, n->items, n->n, false, in_loop, depth);
        return;
    case JN_MACRO:
        check_list(a, n->kwvals, n->nkw, false, false, depth);
        check(a, n->b, false, false, depth);
        return;
    case JN_CALLBLOCK:
        check(a, n->a, soft, in_loop, depth);
        check_list(a, n->kwvals, n->nkw, false, false, depth);
        check(a, n->b, false, false, depth);
        return;
    case JN_SETBLOCK:
    case JN_FILTERBLOCK:
        soft = false;
        break;
    case JN_BREAK:
    case JN_CONTINUE:
        if (!in_loop)
            jfail(a, "template line %d: '%s' outside loop", n->line, n->kind == JN_BREAK ? "break" : "continue");
        return;
    default:
        break;
    }
    check(a, n->a, soft, in_loop, depth);
    check(a, n->b, soft, in_loop, depth);
    check(a, n->c, soft, in_loop, depth);
    check(a, n->d, soft, in_loop, depth);
    check_list(a, n->items, n->n, soft, in_loop, depth);
    if (n->kind != JN_MACRO)
        check_list(a, n->kwvals, n->nkw, soft, in_loop, depth);
}

jnode *jparse(jarena *a, const jtok *toks, size_t n)
{
    parser P = { a, toks, n, 0, 0 };
    jnode *body = parse_body(&P, NULL);
    if (cur(&P)->kind != JT_EOF)
        fail_at(&P, "unexpected tag");
    check(a, body, false, false, 0);
    return body;
}
