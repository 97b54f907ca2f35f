/* messages.c - see include/app/messages.h */
#include "app/messages.h"

#include <stdlib.h>
#include <string.h>

#include "app/template.h"
#include "core/base64.h"
#include "core/common.h"
#include "image/image.h"

/* Where an image part's picture is: its URL or path, or NULL. */
static const char *image_source(json_t *part, const char *type)
{
    if (strcmp(type, "image_url") == 0) {
        json_t *u = json_object_get(part, "image_url");
        return json_is_string(u) ? json_string_value(u) : json_string_value(json_object_get(u, "url"));
    }
    const char *keys[] = { "image", "path", "url" };
    for (size_t i = 0; i < VC_ARRAY_LEN(keys); i++)
        if (json_is_string(json_object_get(part, keys[i])))
            return json_string_value(json_object_get(part, keys[i]));
    return NULL;
}

/* Decodes (data: URL) or loads (path) an image and encodes it. */
static int encode_source(const vc_model *m, const char *src, const char *where, vc_image_embd *out)
{
    if (strncmp(src, "data:", 5) == 0) {
        const char *comma = strchr(src, ',');
        if (!comma || !strstr(src, ";base64"))
            return vc_fail_code(VC_EXIT_INPUT, "%s: only base64 data: URLs carry images", where);
        size_t n = strlen(comma + 1), len;
        uint8_t *bytes = vc_malloc(vc_base64_max_decoded(n) + 1);
        if (!bytes)
            return -1;
        int rc = vc_base64_decode(comma + 1, n, bytes, &len);
        vc_image img;
        if (rc == 0)
            rc = vc_image_decode(bytes, len, where, NULL, &img);
        free(bytes);
        if (rc == 0) {
            rc = vc_model_encode_pixels(m, &img, out);
            vc_image_free(&img);
        }
        return rc;
    }
    if (strncmp(src, "file://", 7) == 0)
        src += 7;
    else if (strstr(src, "://"))
        return vc_fail_code(VC_EXIT_INPUT, "%s: remote URLs are not fetched; give a file path or a data: URL", where);
    return vc_model_encode_image(m, src, out);
}

/* Checks one message and rewrites its image parts as {"type": "image"}. */
static int normalize(const vc_model *m, json_t *msg, size_t i, vc_messages *out)
{
    char where[64];
    snprintf(where, sizeof where, "--messages[%zu]", i);
    if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "role")))
        return vc_fail_code(VC_EXIT_INPUT, "%s: a message is an object with a \"role\" string", where);
    json_t *content = json_object_get(msg, "content");
    if (!content || json_is_string(content) || json_is_null(content))
        return 0;
    if (!json_is_array(content))
        return vc_fail_code(VC_EXIT_INPUT, "%s: content must be a string or a list of parts", where);
    size_t k;
    json_t *part;
    json_array_foreach(content, k, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        if (!type)
            return vc_fail_code(VC_EXIT_INPUT, "%s.content[%zu]: a part needs a \"type\"", where, k);
        if (strcmp(type, "text") == 0) {
            if (!json_is_string(json_object_get(part, "text")))
                return vc_fail_code(VC_EXIT_INPUT, "%s.content[%zu]: a text part needs a \"text\" string", where, k);
            continue;
        }
        if (strcmp(type, "image_url") != 0 && strcmp(type, "image") != 0)
            continue;                               /* passed to the template as it is */
        const char *src = image_source(part, type);
        if (!src)
            return vc_fail_code(VC_EXIT_INPUT, "%s.content[%zu]: an image part needs a path or a data: URL", where, k);
        if (out->n_images >= 64)
            return vc_fail_code(VC_EXIT_INPUT, "%s: more than 64 images", where);
        if (m) {
            vc_image_embd *grown = vc_realloc(out->images, ((size_t)out->n_images + 1) * sizeof *grown);
            if (!grown)
                return -1;
            out->images = grown;
            memset(&grown[out->n_images], 0, sizeof *grown);
            char part_where[96];
            snprintf(part_where, sizeof part_where, "%s.content[%zu]", where, k);
            if (encode_source(m, src, part_where, &out->images[out->n_images]) != 0)
                return -1;
        }
        out->n_images++;
        if (json_array_set_new(content, k, json_pack("{ss}", "type", "image")) != 0)
            return vc_fail("out of memory");
    }
    return 0;
}

int vc_messages_load(const char *path, const vc_model *m, vc_messages *out)
{
    memset(out, 0, sizeof *out);
    out->messages = vc_read_json_array(path, "--messages");
    if (!out->messages)
        return -1;
    if (json_array_size(out->messages) == 0) {
        vc_messages_free(out);
        return vc_fail_code(VC_EXIT_INPUT, "--messages %s: no messages", path);
    }
    size_t i;
    json_t *msg;
    json_array_foreach(out->messages, i, msg)
        if (normalize(m, msg, i, out) != 0) {
            vc_messages_free(out);
            return -1;
        }
    return 0;
}

void vc_messages_free(vc_messages *msgs)
{
    for (int i = 0; msgs->images && i < msgs->n_images; i++)
        vc_image_embd_free(&msgs->images[i]);
    free(msgs->images);
    json_decref(msgs->messages);
    memset(msgs, 0, sizeof *msgs);
}
