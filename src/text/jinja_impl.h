/* jinja_impl.h - internals of the Jinja interpreter (include/text/jinja.h).
 *
 * Memory: everything a phase allocates (tokens and the syntax tree while
 * parsing, values while rendering) comes from one arena that is freed in one
 * go, so values need no reference counts.  Values are immutable once built,
 * except namespaces, which `{% set ns.x = ... %}` changes in place.
 *
 * Errors: deep inside the parser or the evaluator a failure records its
 * message (vc_fail_code) and longjmps back to the public entry point, which
 * frees the arena and returns -1.  Nothing outside the arena is allocated
 * between the setjmp and a longjmp, so nothing leaks.
 */
#ifndef VC_TEXT_JINJA_IMPL_H
#define VC_TEXT_JINJA_IMPL_H

#include <jansson.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- arena and error exit ---- */

typedef struct jblock jblock;
typedef struct {
    jblock *head;
    size_t total, limit;   /* bytes handed out so far, and the most allowed */
    jmp_buf *jmp;          /* where a failure goes */
} jarena;

/* Records the message (one line, exit class VC_EXIT_INPUT) and longjmps. */
_Noreturn void jfail(jarena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Zeroed memory from the arena; fails (longjmp) over the limit. */
void *jalloc(jarena *a, size_t n);
/* n elements of size sz, overflow-checked. */
void *jalloc_array(jarena *a, size_t count, size_t sz);
void jarena_free(jarena *a);

/* A growable string in the arena. */
typedef struct {
    jarena *a;
    char *s;
    size_t n, cap;
} jstrbuf;
void jsb_put(jstrbuf *b, const char *s, size_t n);
void jsb_puts(jstrbuf *b, const char *s);
void jsb_putc(jstrbuf *b, char c);
void jsb_printf(jstrbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- values ---- */

typedef enum {
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT, JV_FUNC, JV_LOOP
} jtype;

typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jfunc jfunc;
typedef struct jloop jloop;

typedef struct {
    jtype t;
    size_t n;              /* JV_STR: byte length */
    union {
        bool b;
        int64_t i;
        double f;
        const char *s;     /* JV_STR (not NUL-terminated); JV_UNDEF: what was missing, or NULL */
        jlist *l;
        jdict *d;
        jfunc *fn;
        jloop *loop;
    } u;
    bool safe;             /* JV_STR: a markupsafe.Markup (what |safe returns): + escapes plain strings */
} jv;

/* What a list value is in Python: a list, or an iterator or view with its
 * own rules (no len() for a generator, always true, not JSON). */
typedef enum { JL_LIST, JL_GEN, JL_ITEMS, JL_KEYS, JL_VALUES } jlview;

struct jlist {
    size_t n;
    jv *v;
    bool tuple;            /* prints as (a, b) */
    jlview view;
};

struct jdict {
    size_t n, cap;
    jv *keys, *vals;       /* in insertion order */
    bool ns;               /* a namespace() object: attribute assignment allowed */
};

typedef struct jnode jnode;
typedef struct jframe jframe;

typedef enum {
    JF_GLOBAL,             /* range, dict, namespace, raise_exception, strftime_now, cycler, joiner */
    JF_METHOD,             /* a method bound to self */
    JF_MACRO,              /* a macro, or a call block's caller() */
    JF_CYCLER_NEXT,        /* cycler.next() */
    JF_JOINER              /* a joiner's call */
} jfkind;

struct jfunc {
    jfkind kind;
    const char *name;
    jv self;               /* JF_METHOD: the receiver; JF_CYCLER/JF_JOINER: state */
    const jnode *node;     /* JF_MACRO: the macro or call block */
    jframe *closure;       /* JF_MACRO: the scope it was defined in */
    jv caller;             /* JF_MACRO: the caller() passed to it, if any */
    int *state;            /* cycler position, joiner "used" flag */
};

struct jloop {
    const jlist *items;
    size_t index0;
    int depth;             /* 1 for the outermost loop */
    const jnode *node;     /* the recursive for loop, for loop(...) */
    jframe *frame;         /* the scope around the loop, for loop(...) */
    int *changed_state;    /* loop.changed: whether a value was seen */
    jv changed_last;
};

static inline jv jv_undef(const char *why) { jv v = { JV_UNDEF, 0, { .s = why }, false }; return v; }
static inline jv jv_none(void) { jv v = { JV_NONE, 0, { .i = 0 }, false }; return v; }
static inline jv jv_bool(bool b) { jv v = { JV_BOOL, 0, { .b = b }, false }; return v; }
static inline jv jv_int(int64_t i) { jv v = { JV_INT, 0, { .i = i }, false }; return v; }
static inline jv jv_float(double f) { jv v = { JV_FLOAT, 0, { .f = f }, false }; return v; }
static inline jv jv_str(const char *s, size_t n) { jv v = { JV_STR, n, { .s = s }, false }; return v; }

jv jv_cstr(jarena *a, const char *s);              /* copies */
jv jv_strdup(jarena *a, const char *s, size_t n);  /* copies */
jv jv_list(jarena *a, size_t n);                   /* n undefined elements, filled by the caller */
jv jv_dict(jarena *a);
/* Sets key to val (replacing an equal key, else appending). */
void jdict_set(jarena *a, jdict *d, jv key, jv val);
/* The value of key, or NULL. */
jv *jdict_get(const jdict *d, jv key);
jv *jdict_gets(const jdict *d, const char *key);

bool jv_truthy(jv v);
bool jv_is_num(jv v);        /* bool, int or float (Python numbers) */
double jv_num(jv v);
/* Python ==. */
bool jv_eq(jv a, jv b);
/* Python <, <= ...: -1, 0, 1; fails (TypeError) for unorderable types. */
int jv_cmp(jarena *a, jv x, jv y, const char *op);
/* The Python type name ("str", "int", "dict", "Undefined", ...). */
const char *jv_type_name(jv v);

/* str() and repr() as Python writes them. */
void jv_str_to(jstrbuf *b, jv v);
void jv_repr_to(jstrbuf *b, jv v);
jv jv_to_str(jarena *a, jv v);
/* markupsafe.escape of a plain string: & < > " ' as entities. */
jv jv_escape(jarena *a, jv s);
/* Python's repr(float). */
void jfloat_repr(char *out, size_t size, double f);

/* json.dumps(v, ensure_ascii, indent, separators, sort_keys): indent NULL for none. */
typedef struct {
    bool ensure_ascii, sort_keys;
    const char *indent;          /* NULL: one line */
    const char *item_sep, *key_sep;
} jjson_opts;
void jv_json_to(jarena *a, jstrbuf *b, jv v, const jjson_opts *o, int level);
/* A jansson value as a Jinja value (copied into the arena). */
jv jv_from_json(jarena *a, const json_t *j);

/* ---- text helpers ---- */

/* Decodes one UTF-8 code point at s (n bytes left); *len gets its length
 * (invalid bytes decode as themselves, one byte). */
uint32_t jutf8_next(const char *s, size_t n, size_t *len);
void jutf8_put(jstrbuf *b, uint32_t cp);
/* Python's str.isspace for one code point. */
bool jpy_space(uint32_t cp);
/* Number of code points. */
size_t jutf8_count(const char *s, size_t n);

/* ---- syntax tree ---- */

typedef enum {
    /* expressions */
    JN_CONST, JN_NAME, JN_LIST, JN_TUPLE, JN_DICT, JN_GETATTR, JN_GETITEM, JN_SLICE, JN_CALL, JN_FILTER, JN_TEST,
    JN_NEG, JN_POS, JN_NOT, JN_AND, JN_OR, JN_BINOP, JN_CONCAT, JN_COMPARE, JN_COND,
    /* statements */
    JN_BODY, JN_DATA, JN_OUTPUT, JN_IF, JN_FOR, JN_SET, JN_SETBLOCK, JN_MACRO, JN_CALLBLOCK, JN_FILTERBLOCK,
    JN_BREAK, JN_CONTINUE
} jnkind;

struct jnode {
    jnkind kind;
    int line;
    const char *name;      /* NAME, GETATTR, FILTER, TEST, MACRO; BINOP/COMPARE: operators */
    jnode *a, *b, *c, *d;
    jnode **items;         /* BODY statements, LIST/TUPLE elements, CALL/FILTER/TEST positional args,
                              DICT keys and values alternately, COMPARE operands */
    size_t n;
    jnode **kwvals;        /* CALL/FILTER/TEST keyword arguments, MACRO defaults (NULL: none) */
    const char **kwnames;  /* their names; MACRO/CALLBLOCK parameter names */
    size_t nkw;
    const char **ops;      /* COMPARE: the n-1 operators */
    bool flag;             /* TEST: negated; FOR: recursive; (unused elsewhere) */
    jv val;                /* CONST */
};

/* Tokens. */
typedef enum { JT_EOF, JT_DATA, JT_VAR_BEGIN, JT_VAR_END, JT_BLOCK_BEGIN, JT_BLOCK_END, JT_NAME, JT_STRING,
               JT_INT, JT_FLOAT, JT_OP } jtok_kind;

typedef struct {
    jtok_kind kind;
    int line;
    const char *s;         /* DATA, NAME, STRING (decoded), OP */
    size_t n;
    int64_t i;
    double f;
} jtok;

/* Splits src into tokens (whitespace control applied to the data). */
void jlex(jarena *a, const char *src, size_t len, jtok **toks, size_t *n);
/* Parses the tokens into a JN_BODY. */
jnode *jparse(jarena *a, const jtok *toks, size_t n);

/* Whether a filter or test of this name exists. */
bool jfilter_known(const char *name);
bool jtest_known(const char *name);

/* ---- evaluation ---- */

typedef struct jctx jctx;
struct jframe {
    jframe *parent;
    size_t n, cap;
    const char **names;
    jv *vals;
};

struct jctx {
    jarena *a;
    jframe *globals;
    int depth;             /* macro call nesting */
    long steps;            /* loop iterations and calls so far */
    jv block_input;        /* what a {% filter %} block or {% set x | f %} feeds its filters */
};

jv jeval(jctx *c, jframe *f, const jnode *e);
/* Renders statements into out; returns 0, or JN_BREAK / JN_CONTINUE. */
int jexec(jctx *c, jframe *f, const jnode *body, jstrbuf *out);
jv jcall(jctx *c, jv fn, const jv *args, size_t nargs, const char **kwn, const jv *kwv, size_t nkw, int line);
jframe *jframe_new(jarena *a, jframe *parent);
void jframe_set(jarena *a, jframe *f, const char *name, jv v);
jv *jframe_lookup(jframe *f, const char *name);

/* Attribute (a.b) and item (a[b]) access as jinja2's sandbox does them. */
jv jgetattr(jctx *c, jv obj, const char *name, int line);
jv jgetitem(jctx *c, jv obj, jv key, int line);
/* A filter or a test applied to v. */
jv jfilter(jctx *c, jframe *f, const char *name, jv v, const jv *args, size_t nargs, const char **kwn,
           const jv *kwv, size_t nkw, int line);
bool jtest(jctx *c, const char *name, jv v, const jv *args, size_t nargs, int line);
/* A method of a str, dict or list (NULL name: not a method). */
bool jmethod_exists(jv self, const char *name, bool *unsafe);
jv jmethod_call(jctx *c, jv self, const char *name, const jv *args, size_t nargs, const char **kwn,
                const jv *kwv, size_t nkw, int line);
/* The global functions (range, namespace, ...). */
void jglobals_install(jctx *c, jframe *g);
jv jglobal_call(jctx *c, jfunc *fn, const jv *args, size_t nargs, const char **kwn, const jv *kwv, size_t nkw,
                int line);
/* The elements a for loop or a filter iterates over (fails for non-iterables). */
jlist *jiter(jctx *c, jv v, int line);
/* Python string % args. */
jv jpercent_format(jctx *c, jv fmt, jv args, int line);
/* Undefined values fail when used: raises "'x' is undefined". */
_Noreturn void jundef_fail(jctx *c, jv v, int line);

#endif
