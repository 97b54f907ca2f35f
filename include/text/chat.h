/* chat.h - chat prompt formats.
 *
 * vlmchat does not run Jinja: it recognizes which well-known format a
 * model's chat_template implements (from marker strings in the template
 * text) and renders that format in C.  The format can be forced by name
 * (--template, or "template" in a preset).  Rendering must equal what
 * transformers' apply_chat_template produces; tests compare token ids.
 */
#ifndef VC_TEXT_CHAT_H
#define VC_TEXT_CHAT_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    VC_CHAT_RAW,       /* no template: the prompt as given */
    VC_CHAT_CHATML,    /* <|im_start|>role\n...<|im_end|>\n */
    VC_CHAT_PHI3,      /* <|role|>\n...<|end|>\n */
    VC_CHAT_MISTRAL,   /* <s>[INST] ... [/INST]answer</s> */
    VC_CHAT_LLAMA2,    /* <s>[INST] <<SYS>>...<</SYS>> ... [/INST] answer </s> */
    VC_CHAT_LLAMA3,    /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
    VC_CHAT_LLAVA_MISTRAL, /* [INST] <image>\n... [/INST] answer</s> ; BOS from the tokenizer */
    VC_CHAT_IDEFICS3       /* <|im_start|>User:<image>...<end_of_utterance>\nAssistant: (SmolVLM) */
} vc_chat_format;

typedef struct {
    const char *role;      /* "system", "user" or "assistant" */
    const char *content;
    int n_images;          /* images attached to this message, placed before its text */
} vc_chat_msg;

typedef struct {
    vc_chat_format format;
    char *bos, *eos;       /* token texts the template writes ("<s>", "</s>") */
    char *default_system;  /* a system prompt the template inserts when none is given */
    char *image_text;      /* what stands for one image in a message, e.g. "<image>\n" */
    bool image_numbered;   /* image_text holds one %d: the image's 1-based number in the conversation */
    bool add_special;      /* encode the rendered text with the tokenizer's special tokens (BOS) */
} vc_chat;

/* Recognizes the format of a Jinja chat template (NULL/unknown: RAW). */
vc_chat_format vc_chat_detect(const char *template_text);
/* Format by name ("chatml", "phi3", "mistral", "llama2", "llama3", "llava-mistral", "raw"); -1 if unknown. */
int vc_chat_format_from_name(const char *name);
const char *vc_chat_format_name(vc_chat_format f);
/* Fills chat from a template text (detect + default system prompt). */
int vc_chat_init(vc_chat *chat, const char *template_text, const char *bos, const char *eos);
void vc_chat_free(vc_chat *chat);
/* Sets the format (and what follows from it, such as add_special). */
void vc_chat_set_format(vc_chat *chat, vc_chat_format f);
/* Sets the text that stands for one image (copied). */
int vc_chat_set_image_text(vc_chat *chat, const char *text);

/* Renders messages as the prompt text; add_generation_prompt appends the
 * assistant header. Returns a malloc'd string or NULL. */
char *vc_chat_render(const vc_chat *chat, const vc_chat_msg *msgs, size_t n, bool add_generation_prompt);
/* The token text that ends an assistant turn ("<|end|>", ...), or NULL. */
const char *vc_chat_end_of_turn(const vc_chat *chat);

#endif
