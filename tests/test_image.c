/* test_image.c - image decoding and resampling against PIL and transformers.
 *
 * tests/fixtures/images (tools/make_image_fixtures.py) holds small generated
 * JPEGs and PNGs of every kind and, in reference.bin, the pixels transformers'
 * load_image produced for each, PIL's resize of one image with every filter,
 * and transformers' rescale+normalize of a resized image.
 */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "harness.h"
#include "image/image.h"
#include "image/resize.h"

static unsigned char *blob;
static size_t blob_len;

static const unsigned char *ref_data(json_t *entry, size_t want)
{
    json_t *d = json_object_get(entry, "data");
    size_t off = (size_t)json_integer_value(json_array_get(d, 0)), len = (size_t)json_integer_value(json_array_get(d, 1));
    if (len != want || off > blob_len || len > blob_len - off)
        return NULL;
    return blob + off;
}

/* Counts differing bytes; *worst gets the largest difference. */
static size_t compare(const uint8_t *a, const uint8_t *b, size_t n, int *worst)
{
    size_t bad = 0;
    *worst = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) {
            bad++;
            *worst = VC_MAX(*worst, abs(a[i] - b[i]));
        }
    return bad;
}

static void test_decode(json_t *ref)
{
    const char *name;
    json_t *e;
    json_object_foreach(json_object_get(ref, "decoded"), name, e)
    {
        /* 16-bit grayscale: Pillow's I;16 -> RGB clips every value above 255,
         * so load_image returns a nearly white image. vlmchat keeps the high
         * byte instead, the real gray level -- the same as la.png's gray. */
        if (strcmp(name, "gray16.png") == 0)
            e = json_object_get(json_object_get(ref, "decoded"), "la.png");
        char rel[256];
        snprintf(rel, sizeof rel, "images/%s", name);
        vc_image img;
        int rc = vc_image_load(fixture(rel), NULL, &img);
        CHECK(rc == 0, "%s: %s", name, vc_error());
        if (rc != 0)
            continue;
        int w = (int)json_integer_value(json_object_get(e, "width")), h = (int)json_integer_value(json_object_get(e, "height"));
        CHECK(img.width == w && img.height == h, "%s: %dx%d, want %dx%d", name, img.width, img.height, w, h);
        const unsigned char *want = ref_data(e, (size_t)w * h * 3);
        if (want && img.width == w && img.height == h) {
            int worst;
            size_t bad = compare(img.rgb, want, (size_t)w * h * 3, &worst);
            CHECK(bad == 0, "%s: %zu bytes differ from transformers' load_image (max %d)", name, bad, worst);
        }
        vc_image_free(&img);
    }
}

static void test_resize(json_t *ref)
{
    vc_image src;
    if (vc_image_load(fixture("images/photo.jpg"), NULL, &src) != 0) {
        CHECK(0, "photo.jpg: %s", vc_error());
        return;
    }
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(ref, "resized"), i, c)
    {
        int w = (int)json_integer_value(json_object_get(c, "width")), h = (int)json_integer_value(json_object_get(c, "height"));
        const char *label = json_string_value(json_object_get(c, "filter"));
        vc_image out;
        int rc = vc_image_resize(&src, w, h, (vc_resample)json_integer_value(json_object_get(c, "resample")), &out);
        CHECK(rc == 0, "%s %dx%d: %s", label, w, h, vc_error());
        const unsigned char *want = ref_data(c, (size_t)w * h * 3);
        if (rc == 0 && want) {
            int worst;
            size_t bad = compare(out.rgb, want, (size_t)w * h * 3, &worst);
            CHECK(bad == 0, "%s %dx%d: %zu bytes differ from PIL (max %d)", label, w, h, bad, worst);
        }
        vc_image_free(&out);
    }
    json_t *n = json_object_get(ref, "normalized");
    int w = (int)json_integer_value(json_object_get(n, "width")), h = (int)json_integer_value(json_object_get(n, "height"));
    float mean[3], std[3];
    for (int k = 0; k < 3; k++) {
        mean[k] = (float)json_number_value(json_array_get(json_object_get(n, "mean"), (size_t)k));
        std[k] = (float)json_number_value(json_array_get(json_object_get(n, "std"), (size_t)k));
    }
    vc_image small;
    float *chw = malloc((size_t)w * h * 3 * sizeof *chw);
    const unsigned char *raw = ref_data(n, (size_t)w * h * 3 * sizeof(float));
    float *want = malloc((size_t)w * h * 3 * sizeof *want);   /* the blob offset may not be float-aligned */
    if (raw)
        memcpy(want, raw, (size_t)w * h * 3 * sizeof *want);
    if (vc_image_resize(&src, w, h, VC_RESAMPLE_BICUBIC, &small) == 0 && raw) {
        vc_image_normalize(&small, json_number_value(json_object_get(n, "scale")), mean, std, chw);
        float worst = 0;
        for (int k = 0; k < w * h * 3; k++)
            worst = fmaxf(worst, fabsf(chw[k] - want[k]));
        CHECK(worst < 1e-6f, "normalized pixels differ from transformers by %g", worst);
        vc_image_free(&small);
    }
    free(chw);
    free(want);
    vc_image_free(&src);
}

static void expect_refused(const char *label, const uint8_t *data, size_t len, const vc_image_limits *lim)
{
    vc_image img;
    vc_error_clear();
    int rc = vc_image_decode(data, len, label, lim, &img);
    CHECK(rc != 0, "%s: accepted", label);
    if (rc == 0)
        vc_image_free(&img);
    CHECK(vc_error_code() == VC_EXIT_INPUT && strstr(vc_error(), label), "%s: error %d '%s'", label, vc_error_code(),
          vc_error());
}

static void test_bad_images(void)
{
    size_t jl, pl;
    char *jpg = vc_read_file(fixture("images/photo.jpg"), &jl), *png = vc_read_file(fixture("images/rgb.png"), &pl);
    if (!jpg || !png)
        return;
    expect_refused("truncated.jpg", (uint8_t *)jpg, jl / 2, NULL);
    expect_refused("truncated.png", (uint8_t *)png, pl / 2, NULL);
    expect_refused("header-only.jpg", (uint8_t *)jpg, 20, NULL);
    expect_refused("text.txt", (const uint8_t *)"hello, world", 12, NULL);
    expect_refused("empty", (const uint8_t *)"", 0, NULL);
    vc_image_limits tight = vc_image_default_limits();
    tight.max_side = 64;
    expect_refused("too-wide.jpg", (uint8_t *)jpg, jl, &tight);
    expect_refused("too-wide.png", (uint8_t *)png, pl, &tight);
    /* a PNG header claiming 100000 x 100000 pixels: refused before any allocation */
    unsigned char *bomb = malloc(pl);
    memcpy(bomb, png, pl);
    const unsigned char big[8] = { 0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0 };
    memcpy(bomb + 16, big, 8);
    expect_refused("bomb.png", bomb, pl, NULL);
    /* the same for a JPEG: SOF0 dimensions */
    unsigned char *jb = malloc(jl);
    memcpy(jb, jpg, jl);
    for (size_t i = 2; i + 9 < jl; i++)
        if (jb[i] == 0xff && (jb[i + 1] == 0xc0 || jb[i + 1] == 0xc2)) {
            jb[i + 5] = 0xff, jb[i + 6] = 0xf0, jb[i + 7] = 0xff, jb[i + 8] = 0xf0;
            break;
        }
    expect_refused("bomb.jpg", jb, jl, NULL);
    /* corrupt JPEG body */
    memcpy(jb, jpg, jl);
    memset(jb + jl / 3, 0xff, 64);
    vc_image img;
    if (vc_image_decode(jb, jl, "garbled.jpg", NULL, &img) == 0)
        vc_image_free(&img);   /* libjpeg may recover from a garbled scan; it must not crash */
    CHECK(1, "garbled JPEG survived");
    free(bomb);
    free(jb);
    free(jpg);
    free(png);
    CHECK(vc_image_load("/nonexistent.png", NULL, &img) != 0 && strstr(vc_error(), "/nonexistent.png"),
          "missing file: %s", vc_error());
    vc_image src = { 2, 2, (uint8_t[12]){ 0 } };
    CHECK(vc_image_resize(&src, 0, 5, VC_RESAMPLE_BICUBIC, &img) != 0, "resize to 0 refused");
}

int main(void)
{
    json_error_t err;
    json_t *ref = json_load_file(fixture("images/reference.json"), 0, &err);
    CHECK(ref != NULL, "images/reference.json: %s", err.text);
    blob = (unsigned char *)vc_read_file(fixture("images/reference.bin"), &blob_len);
    CHECK(blob != NULL, "reference.bin");
    if (ref && blob) {
        test_decode(ref);
        test_resize(ref);
    }
    test_bad_images();
    free(blob);
    json_decref(ref);
    return harness_finish("test_image");
}
