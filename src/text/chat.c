/* chat.c - see include/text/chat.h */
#include "text/chat.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/common.h"

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

/* A ChatML template may write a system turn itself when the conversation has
 * none (SmolLM2 does): find '<|im_start|>system\n' ... '<|im_end|>' inside a
 * string literal and keep the text between. */
static char *template_default_system(const char *t)
{
    const char *marker = "<|im_start|>system\\n";
    const char *p = t ? strstr(t, marker) : NULL;
    if (!p)
        return NULL;
    p += strlen(marker);
    const char *end = strstr(p, "<|im_end|>");
    if (!end || memchr(p, '{', (size_t)(end - p)) || memchr(p, '\'', (size_t)(end - p)))
        return NULL;                           /* not a plain literal */
    vc_buf b = { 0 };
    for (const char *s = p; s < end; s++) {   /* undo the \n escapes of the literal */
        if (s[0] == '\\' && s + 1 < end && s[1] == 'n') {
            vc_buf_putc(&b, '\n');
            s++;
        } else {
            vc_buf_putc(&b, *s);
        }
    }
    return vc_buf_take(&b, NULL);
}

int vc_chat_init(vc_chat *chat, const char *template_text, const char *bos, const char *eos)
{
    memset(chat, 0, sizeof *chat);
    vc_chat_set_format(chat, vc_chat_detect(template_text));
    chat->bos = vc_strdup(bos ? bos : "");
    chat->eos = vc_strdup(eos ? eos : "");
    if (chat->format == VC_CHAT_CHATML && template_text && strstr(template_text, "!= 'system'"))
        chat->default_system = template_default_system(template_text);
    return chat->bos && chat->eos ? 0 : -1;
}

void vc_chat_set_format(vc_chat *chat, vc_chat_format f)
{
    chat->format = f;
    /* LLaVA's template writes no BOS: the processor's tokenizer call adds it */
    chat->add_special = f == VC_CHAT_LLAVA_MISTRAL || f == VC_CHAT_IDEFICS3;
}

int vc_chat_set_image_text(vc_chat *chat, const char *text)
{
    free(chat->image_text);
    chat->image_text = vc_strdup(text);
    return chat->image_text ? 0 : -1;
}

void vc_chat_free(vc_chat *chat)
{
    free(chat->image_text);
    free(chat->bos);
    free(chat->eos);
    free(chat->default_system);
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
static void put_content(const vc_chat *c, vc_buf *b, const vc_chat_msg *all, size_t i)
{
    const vc_chat_msg *m = &all[i];
    int number = 1;
    for (size_t j = 0; j < i; j++)
        number += all[j].n_images;
    const char *mark = c->image_numbered && c->image_text ? strstr(c->image_text, "%d") : NULL;
    for (int k = 0; k < m->n_images && c->image_text; k++) {
        if (mark) {
            vc_buf_append(b, c->image_text, (size_t)(mark - c->image_text));
            vc_buf_printf(b, "%d", number + k);
            vc_buf_puts(b, mark + 2);
        } else {
            vc_buf_puts(b, c->image_text);
        }
    }
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
    if (c->default_system && (n == 0 || strcmp(m[0].role, "system") != 0))
        vc_buf_printf(b, "<|im_start|>system\n%s<|im_end|>\n", c->default_system);
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

char *vc_chat_render(const vc_chat *c, const vc_chat_msg *m, size_t n, bool gen)
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
