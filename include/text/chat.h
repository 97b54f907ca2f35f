/* chat.h - chat prompts: the model's Jinja chat template, or a built-in format.
 *
 * A model that ships a chat template has it rendered by the Jinja
 * interpreter (text/jinja.h) exactly as transformers' apply_chat_template
 * renders it.  The built-in formats below serve only models without a
 * template (or when one is forced by name: --template NAME, a preset's
 * "template").  The format detected from marker strings in the template
 * text still names the turn-ending token that stops generation.
 */
#ifndef VC_TEXT_CHAT_H
#define VC_TEXT_CHAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "text/jinja.h"

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
    const char *role;      /* "system", "user", "assistant" or "tool" */
    const char *content;
    int n_images;          /* images attached to this message, placed before its text */
} vc_chat_msg;

typedef struct {
    vc_chat_format format;
    vc_jinja *jinja;       /* the compiled chat template; NULL: the built-in format renders */
    bool parts;            /* messages reach the template with content parts (a processor's template) */
    char *bos, *eos;       /* token texts the template writes ("<s>", "</s>") */
    char *unk, *pad;       /* more special token texts passed to the template (NULL: none) */
    char *image_text;      /* what stands for one image in a message, e.g. "<image>\n" */
    bool image_numbered;   /* image_text holds one %d: the image's 1-based number in the conversation */
    bool add_special;      /* encode the rendered text with the tokenizer's special tokens (BOS) */
} vc_chat;

/* Recognizes the format of a Jinja chat template (NULL/unknown: RAW). */
vc_chat_format vc_chat_detect(const char *template_text);
/* Format by name ("chatml", "phi3", "mistral", "llama2", "llama3", "llava-mistral", "raw"); -1 if unknown. */
int vc_chat_format_from_name(const char *name);
const char *vc_chat_format_name(vc_chat_format f);
/* Fills chat from a template text: compiles it (a syntax error fails, class
 * VC_EXIT_MODEL) and detects the format it resembles. NULL: no template. */
int vc_chat_init(vc_chat *chat, const char *template_text, const char *bos, const char *eos);
void vc_chat_free(vc_chat *chat);
/* Replaces the template with template_text (compiled); fails on a syntax error. */
int vc_chat_set_template(vc_chat *chat, const char *template_text);
/* Sets the unk/pad token texts passed to the template (copied; NULL: none). */
int vc_chat_set_tokens(vc_chat *chat, const char *unk, const char *pad);
/* Forces a built-in format: the template, if any, is no longer used. */
void vc_chat_set_format(vc_chat *chat, vc_chat_format f);
/* Sets the text that stands for one image (copied). */
int vc_chat_set_image_text(vc_chat *chat, const char *text);

/* Renders messages as the prompt text; add_generation_prompt appends the
 * assistant header. With a template, each message's images come before its
 * text as {"type": "image"} parts. Returns a malloc'd string or NULL. */
char *vc_chat_render(const vc_chat *chat, const vc_chat_msg *msgs, size_t n, bool add_generation_prompt);
/* The same with the tool schemas (NULL: none) passed to the template as
 * `tools`, as vc_chat_render_json passes them, and for message i the fields
 * of the object fields[i] (tool_calls, tool_call_id, name; fields or
 * fields[i] NULL: none) beside its role and content. The built-in formats
 * render the text only. */
char *vc_chat_render_tools(const vc_chat *chat, const vc_chat_msg *msgs, size_t n, json_t *const *fields,
                           const json_t *tools, bool add_generation_prompt);
/* Renders an OpenAI-style messages array (content a string or a list of
 * {"type": "text", "text"} / {"type": "image"} parts; other fields such as
 * tool_calls pass through) with the tool schemas (NULL: none). Without a
 * template the built-in format renders the text parts. */
char *vc_chat_render_json(const vc_chat *chat, const json_t *messages, const json_t *tools,
                          bool add_generation_prompt);
/* The variables transformers passes a chat template: messages (taken over),
 * tools (copied, else None), documents (None), add_generation_prompt, and
 * the special tokens given (NULL: left undefined). A new object or NULL. */
json_t *vc_chat_template_vars(json_t *messages, const json_t *tools, bool add_generation_prompt, const char *bos,
                              const char *eos, const char *unk, const char *pad);
/* Whether the rendered text is tokenized with the tokenizer's special
 * tokens (BOS): a processor's template (parts) unless the text already
 * starts with the BOS text; a text model's template never (the template
 * writes them); the built-in formats as each requires. */
bool vc_chat_add_special(const vc_chat *chat, const char *text);
/* The token text that ends an assistant turn ("<|end|>", ...), or NULL. */
const char *vc_chat_end_of_turn(const vc_chat *chat);

#endif
