/* chat.c - see include/text/chat.h */
#include "text/chat.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/common.h"
#include "text/utf8.h"

static const char *const names[] = { "raw", "chatml", "phi3", "mistral", "llama2", "llama3", "llava-mistral", "idefics3" };

const char *vc_chat_format_name(vc_chat_format f) { return names[f]; }

int vc_chat_format_from_name(const char *name)
{
    for (size_t i = 0; i < VC_ARRAY_LEN(names); i++)
        if (strcmp(name, names[i]) == 0)
            return (int)i;
    return -1;
}

vc_chat_format vc_chat_detect(const char *t)
{
    if (!t)
        return VC_CHAT_RAW;
    if (strstr(t, "<|start_header_id|>"))
        return VC_CHAT_LLAMA3;
    if (strstr(t, "<end_of_utterance>"))
        return VC_CHAT_IDEFICS3;
    if (strstr(t, "<|im_start|>"))
        return VC_CHAT_CHATML;
    if (strstr(t, "<|end|>") && (strstr(t, "<|user|>") || strstr(t, "'<|' + message['role'] + '|>'")))
        return VC_CHAT_PHI3;
    if (strstr(t, "[INST]") && strstr(t, "<image>"))
        return VC_CHAT_LLAVA_MISTRAL;
    if (strstr(t, "<<SYS>>"))
        return VC_CHAT_LLAMA2;
    if (strstr(t, "[INST]"))
        return VC_CHAT_MISTRAL;
    return VC_CHAT_RAW;
}

int vc_chat_set_template(vc_chat *chat, const char *template_text)
{
    vc_jinja *t;
    if (vc_jinja_parse(template_text, strlen(template_text), &t) != 0) {
        vc_fail_code(VC_EXIT_MODEL, "chat template: %s", vc_error());
        return -1;
    }
    vc_jinja_free(chat->jinja);
    chat->jinja = t;
    chat->format = vc_chat_detect(template_text);
    chat->add_special = false;
    return 0;
}

int vc_chat_init(vc_chat *chat, const char *template_text, const char *bos, const char *eos)
{
    memset(chat, 0, sizeof *chat);
    vc_chat_set_format(chat, vc_chat_detect(template_text));
    chat->bos = vc_strdup(bos ? bos : "");
    chat->eos = vc_strdup(eos ? eos : "");
    if (!chat->bos || !chat->eos)
        return -1;
    return template_text ? vc_chat_set_template(chat, template_text) : 0;
}

int vc_chat_set_tokens(vc_chat *chat, const char *unk, const char *pad)
{
    free(chat->unk);
    free(chat->pad);
    chat->unk = unk ? vc_strdup(unk) : NULL;
    chat->pad = pad ? vc_strdup(pad) : NULL;
    return (unk && !chat->unk) || (pad && !chat->pad) ? -1 : 0;
}

void vc_chat_set_format(vc_chat *chat, vc_chat_format f)
{
    vc_jinja_free(chat->jinja);
    chat->jinja = NULL;
    chat->format = f;
    /* LLaVA's template writes no BOS: the processor's tokenizer call adds it */
    chat->add_special = f == VC_CHAT_LLAVA_MISTRAL || f == VC_CHAT_IDEFICS3;
}

bool vc_chat_add_special(const vc_chat *chat, const char *text)
{
    if (!chat->jinja)
        return chat->add_special || chat->format == VC_CHAT_RAW;
    if (!chat->parts)
        return false;
    return !(chat->bos && chat->bos[0] && strncmp(text, chat->bos, strlen(chat->bos)) == 0);
}

int vc_chat_set_image_text(vc_chat *chat, const char *text)
{
    free(chat->image_text);
    chat->image_text = vc_strdup(text);
    return chat->image_text ? 0 : -1;
}

void vc_chat_free(vc_chat *chat)
{
    vc_jinja_free(chat->jinja);
    free(chat->unk);
    free(chat->pad);
    free(chat->image_text);
    free(chat->bos);
    free(chat->eos);
    memset(chat, 0, sizeof *chat);
}

const char *vc_chat_end_of_turn(const vc_chat *chat)
{
    switch (chat->format) {
    case VC_CHAT_CHATML: return "<|im_end|>";
    case VC_CHAT_PHI3: return "<|end|>";
    case VC_CHAT_IDEFICS3: return "<end_of_utterance>";
    case VC_CHAT_LLAMA3: return "<|eot_id|>";
    default: return NULL;
    }
}

static void put_trimmed(vc_buf *b, const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    vc_buf_append(b, s, n);
}

/* Message i's images (as the model's placeholder text), then its text.
 * Numbered placeholders count the images of the messages before it. */
/* The placeholder text of the conversation's image `number` (from 1). */
static void put_image(const vc_chat *c, vc_buf *b, int number)
{
    const char *mark = c->image_numbered ? strstr(c->image_text, "%d") : NULL;
    if (!mark) {
        vc_buf_puts(b, c->image_text);
        return;
    }
    vc_buf_append(b, c->image_text, (size_t)(mark - c->image_text));
    vc_buf_printf(b, "%d", number);
    vc_buf_puts(b, mark + 2);
}

static void put_content(const vc_chat *c, vc_buf *b, const vc_chat_msg *all, size_t i)
{
    const vc_chat_msg *m = &all[i];
    int number = 1;
    for (size_t j = 0; j < i; j++)
        number += all[j].n_images;
    for (int k = 0; k < m->n_images && c->image_text; k++)
        put_image(c, b, number + k);
    vc_buf_puts(b, m->content);
}

static void render_llava_mistral(const vc_chat *c, vc_buf *b, const vc_chat_msg *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].role, "system") == 0) {
            vc_buf_printf(b, "<<SYS>>\n%s\n<</SYS>>\n\n", m[i].content);
        } else if (strcmp(m[i].role, "user") == 0) {
            vc_buf_puts(b, "[INST] ");
            put_content(c, b, m, i);
            vc_buf_puts(b, " [/INST]");
        } else {
            vc_buf_printf(b, " %s%s ", m[i].content, c->eos);
        }
    }
}

/* SmolVLM: roles capitalized, ":" directly before a leading image, ": " before text. */
static void render_idefics3(const vc_chat *c, vc_buf *b, const vc_chat_msg *m, size_t n, bool gen)
{
    vc_buf_puts(b, "<|im_start|>");
    for (size_t i = 0; i < n; i++) {
        vc_buf_putc(b, (char)toupper((unsigned char)m[i].role[0]));
        vc_buf_puts(b, m[i].role + 1);
        vc_buf_puts(b, m[i].n_images > 0 ? ":" : ": ");
        put_content(c, b, m, i);
        vc_buf_puts(b, "<end_of_utterance>\n");
    }
    if (gen)
        vc_buf_puts(b, "Assistant:");
}

static void render_chatml(const vc_chat *c, vc_buf *b, const vc_chat_msg *m, size_t n, bool gen)
{
    for (size_t i = 0; i < n; i++) {
        vc_buf_printf(b, "<|im_start|>%s\n", m[i].role);
        put_content(c, b, m, i);
        vc_buf_puts(b, "<|im_end|>\n");
    }
    if (gen)
        vc_buf_puts(b, "<|im_start|>assistant\n");
}

static void render_phi3(const vc_chat *c, vc_buf *b, const vc_chat_msg *m, size_t n, bool gen)
{
    for (size_t i = 0; i < n; i++) {
        vc_buf_printf(b, "<|%s|>\n", m[i].role);
        put_content(c, b, m, i);
        vc_buf_puts(b, "<|end|>\n");
    }
    if (gen && (n == 0 || strcmp(m[n - 1].role, "assistant") != 0))
        vc_buf_puts(b, "<|assistant|>\n");
}

/* Mistral has no system role: a system message is prepended to the first
 * user message, separated by a blank line. */
static void render_mistral(const vc_chat *c, vc_buf *b, const vc_chat_msg *m, size_t n)
{
    const char *system = NULL;
    vc_buf_puts(b, c->bos);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].role, "system") == 0) {
            system = m[i].content;
        } else if (strcmp(m[i].role, "user") == 0) {
            vc_buf_puts(b, "[INST] ");
            if (system) {
                vc_buf_printf(b, "%s\n\n", system);
                system = NULL;
            }
            put_content(c, b, m, i);
            vc_buf_puts(b, " [/INST]");
        } else {
            vc_buf_printf(b, "%s%s", m[i].content, c->eos);
        }
    }
}

static void render_llama2(const vc_chat *c, vc_buf *b, const vc_chat_msg *m, size_t n)
{
    const char *system = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(m[i].role, "system") == 0) {
            system = m[i].content;
        } else if (strcmp(m[i].role, "user") == 0) {
            vc_buf_printf(b, "%s[INST] ", c->bos);
            if (system) {
                vc_buf_puts(b, "<<SYS>>\n");
                put_trimmed(b, system);
                vc_buf_puts(b, "\n<</SYS>>\n\n");
                system = NULL;
            }
            put_trimmed(b, m[i].content);
            vc_buf_puts(b, " [/INST]");
        } else {
            vc_buf_putc(b, ' ');
            put_trimmed(b, m[i].content);
            vc_buf_printf(b, " %s", c->eos);
        }
    }
}

static void render_llama3(const vc_chat *c, vc_buf *b, const vc_chat_msg *m, size_t n, bool gen)
{
    vc_buf_puts(b, c->bos);
    for (size_t i = 0; i < n; i++) {
        vc_buf_printf(b, "<|start_header_id|>%s<|end_header_id|>\n\n", m[i].role);
        put_trimmed(b, m[i].content);
        vc_buf_puts(b, "<|eot_id|>");
    }
    if (gen)
        vc_buf_puts(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static char *render_builtin(const vc_chat *c, const vc_chat_msg *m, size_t n, bool gen)
{
    vc_buf b = { 0 };
    switch (c->format) {
    case VC_CHAT_CHATML: render_chatml(c, &b, m, n, gen); break;
    case VC_CHAT_PHI3: render_phi3(c, &b, m, n, gen); break;
    case VC_CHAT_MISTRAL: render_mistral(c, &b, m, n); break;
    case VC_CHAT_LLAMA2: render_llama2(c, &b, m, n); break;
    case VC_CHAT_LLAMA3: render_llama3(c, &b, m, n, gen); break;
    case VC_CHAT_LLAVA_MISTRAL: render_llava_mistral(c, &b, m, n); break;
    case VC_CHAT_IDEFICS3: render_idefics3(c, &b, m, n, gen); break;
    case VC_CHAT_RAW:
        for (size_t i = 0; i < n; i++)
            vc_buf_puts(&b, m[i].content);
        break;
    }
    return vc_buf_take(&b, NULL);
}

json_t *vc_chat_template_vars(json_t *messages, const json_t *tools, bool gen, const char *bos, const char *eos,
                              const char *unk, const char *pad)
{
    json_t *v = json_object();
    if (!v || !messages) {
        json_decref(v);
        json_decref(messages);
        vc_fail("out of memory");
        return NULL;
    }
    int rc = json_object_set_new(v, "messages", messages);
    rc |= json_object_set_new(v, "tools", tools ? json_deep_copy(tools) : json_null());
    rc |= json_object_set_new(v, "documents", json_null());
    rc |= json_object_set_new(v, "add_generation_prompt", json_boolean(gen));
    const char *keys[] = { "bos_token", "eos_token", "unk_token", "pad_token" };
    const char *vals[] = { bos, eos, unk, pad };
    for (int i = 0; i < 4; i++)
        if (vals[i])
            rc |= json_object_set_new(v, keys[i], json_string(vals[i]));
    if (rc) {
        json_decref(v);
        vc_fail("out of memory");
        return NULL;
    }
    return v;
}

static char *render_template(const vc_chat *c, json_t *messages, const json_t *tools, bool gen)
{
    json_t *vars = vc_chat_template_vars(messages, tools, gen, c->bos && c->bos[0] ? c->bos : NULL,
                                         c->eos && c->eos[0] ? c->eos : NULL, c->unk, c->pad);
    if (!vars)
        return NULL;
    char *out;
    size_t len;
    int rc = vc_jinja_render(c->jinja, vars, &out, &len);
    json_decref(vars);
    if (rc != 0)
        return NULL;
    if (strlen(out) != len) {
        free(out);
        vc_fail_code(VC_EXIT_INPUT, "the chat template rendered a NUL byte");
        return NULL;
    }
    return out;
}

/* Message i as the template sees it: images first as {"type": "image"},
 * then the text; or, for string content, the images' placeholder text
 * before the text (as put_content writes it). */
static json_t *message_json(const vc_chat *c, const vc_chat_msg *all, size_t i, json_t *fields)
{
    const vc_chat_msg *m = &all[i];
    json_t *o = json_object(), *content;
    if (!c->parts) {
        vc_buf b = { 0 };
        put_content(c, &b, all, i);
        char *text = vc_buf_take(&b, NULL);
        content = text ? json_string(text) : NULL;
        free(text);
    } else {
        content = json_array();
        for (int k = 0; k < m->n_images; k++)
            json_array_append_new(content, json_pack("{ss}", "type", "image"));
        json_array_append_new(content, json_pack("{ssss}", "type", "text", "text", m->content));
    }
    if (!o || !content || json_object_set_new(o, "role", json_string(m->role)) ||
        json_object_set_new(o, "content", content)) {
        json_decref(o);
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(fields, key, v)
        if (strcmp(key, "role") != 0 && strcmp(key, "content") != 0 && json_object_set(o, key, v) != 0) {
            json_decref(o);
            return NULL;
        }
    return o;
}

char *vc_chat_render(const vc_chat *c, const vc_chat_msg *m, size_t n, bool gen)
{
    return vc_chat_render_tools(c, m, n, NULL, NULL, gen);
}

char *vc_chat_render_tools(const vc_chat *c, const vc_chat_msg *m, size_t n, json_t *const *fields,
                           const json_t *tools, bool gen)
{
    if (!c->jinja)
        return render_builtin(c, m, n, gen);
    for (size_t i = 0; i < n; i++) {          /* JSON strings (the template's values) are UTF-8 */
        size_t bad;
        if (!vc_utf8_valid(m[i].content, strlen(m[i].content), &bad) ||
            !vc_utf8_valid(m[i].role, strlen(m[i].role), &bad)) {
            vc_fail_code(VC_EXIT_INPUT, "input is not valid UTF-8 (bad byte at offset %zu)", bad);
            return NULL;
        }
    }
    json_t *msgs = json_array();
    for (size_t i = 0; msgs && i < n; i++)
        if (json_array_append_new(msgs, message_json(c, m, i, fields ? fields[i] : NULL)) != 0) {
            json_decref(msgs);
            msgs = NULL;
        }
    if (!msgs) {
        vc_fail("out of memory");
        return NULL;
    }
    return render_template(c, msgs, tools, gen);
}

/* For a processor's template: string contents as one text part. */
static json_t *with_parts(const json_t *messages)
{
    json_t *out = json_deep_copy(messages);
    size_t i;
    json_t *msg;
    json_array_foreach(out, i, msg) {
        json_t *content = json_object_get(msg, "content");
        if (json_is_string(content))
            json_object_set_new(msg, "content",
                                json_pack("[{ssss}]", "type", "text", "text", json_string_value(content)));
    }
    return out;
}

/* For a template of string contents (Phi-3-V's): parts joined into one
 * string, each image part as the image's placeholder text, numbered through
 * the conversation where the family numbers them. */
static json_t *with_strings(const vc_chat *c, const json_t *messages)
{
    json_t *out = json_deep_copy(messages);
    size_t i;
    json_t *msg;
    int number = 1;
    json_array_foreach(out, i, msg) {
        json_t *content = json_object_get(msg, "content");
        if (!json_is_array(content))
            continue;
        vc_buf b = { 0 };
        size_t k;
        json_t *part;
        json_array_foreach(content, k, part) {
            const char *type = json_string_value(json_object_get(part, "type"));
            if (type && strcmp(type, "image") == 0 && c->image_text) {
                put_image(c, &b, number++);
            } else if (type && strcmp(type, "text") == 0 && json_is_string(json_object_get(part, "text"))) {
                vc_buf_puts(&b, json_string_value(json_object_get(part, "text")));
            }
        }
        char *text = vc_buf_take(&b, NULL);
        if (!text || json_object_set_new(msg, "content", json_string(text)) != 0) {
            free(text);
            json_decref(out);
            return NULL;
        }
        free(text);
    }
    return out;
}

char *vc_chat_render_json(const vc_chat *c, const json_t *messages, const json_t *tools, bool gen)
{
    if (!json_is_array(messages)) {
        vc_fail_code(VC_EXIT_INPUT, "messages: expected a JSON array");
        return NULL;
    }
    if (c->jinja) {
        json_t *msgs = c->parts ? with_parts(messages) : with_strings(c, messages);
        if (!msgs) {
            vc_fail("out of memory");
            return NULL;
        }
        return render_template(c, msgs, tools, gen);
    }
    /* the built-in format: text parts joined, image parts counted */
    size_t n = json_array_size(messages);
    vc_chat_msg *m = vc_calloc(n + 1, sizeof *m);
    vc_buf *texts = vc_calloc(n + 1, sizeof *texts);
    char *out = NULL;
    int rc = m && texts ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *msg = json_array_get(messages, i), *content = json_object_get(msg, "content");
        m[i].role = json_string_value(json_object_get(msg, "role"));
        if (!m[i].role)
            rc = vc_fail_code(VC_EXIT_INPUT, "messages[%zu]: no \"role\" string", i);
        if (json_is_string(content)) {
            vc_buf_puts(&texts[i], json_string_value(content));
        } else {
            size_t k;
            json_t *part;
            json_array_foreach(content, k, part) {
                const char *type = json_string_value(json_object_get(part, "type"));
                if (type && strcmp(type, "image") == 0)
                    m[i].n_images++;
                else if (type && strcmp(type, "text") == 0 && json_is_string(json_object_get(part, "text")))
                    vc_buf_puts(&texts[i], json_string_value(json_object_get(part, "text")));
            }
        }
        vc_buf_putc(&texts[i], 0);
        texts[i].len--;
        if (!vc_buf_ok(&texts[i]))
            rc = vc_fail("out of memory");
        m[i].content = texts[i].data ? texts[i].data : "";
    }
    if (rc == 0)
        out = render_builtin(c, m, n, gen);
    for (size_t i = 0; texts && i < n; i++)
        vc_buf_free(&texts[i]);
    free(texts);
    free(m);
    return out;
}
