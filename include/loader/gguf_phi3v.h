/* gguf_phi3v.h - Phi-3-V (Phi-3-vision, Phi-3.5-vision) as one GGUF file.
 *
 * llama.cpp defines no layout for Phi-3-V, so `vlmchat convert` writes one
 * file that holds both halves (src/app/convert.c writes it, man/vlmchat.1
 * documents it): general.architecture "phi3" with llama.cpp's phi3.* text
 * keys and tensors, and the image side under the vlmchat.phi3v namespace:
 *
 *   vlmchat.phi3v.image_size, patch_size, embedding_length,
 *     feed_forward_length, block_count, attention.head_count   u32
 *   vlmchat.phi3v.attention.layer_norm_epsilon                 f32
 *   vlmchat.phi3v.hidden_act        string (quick_gelu for CLIP ViT-L/14-336)
 *   vlmchat.phi3v.layer_idx         i32: the hidden_states index the
 *       features come from, 0..block_count (HF's img_processor.layer_idx -2
 *       on a 24-layer tower is stored as 23, and only those 23 blocks are)
 *   vlmchat.phi3v.num_crops         u32 (the processor's, 1..64)
 *   vlmchat.phi3v.image_mean, image_std   f32[3]
 * and tensors v.patch_embd.weight, v.class_embd, v.position_embd.weight,
 * v.pre_ln.{weight,bias}, v.blk.N.{attn_q,attn_k,attn_v,attn_out,ffn_up,
 * ffn_down}.{weight,bias}, v.blk.N.{ln1,ln2}.{weight,bias} (CLIP's, ffn_up is
 * fc1), v.glb_GN and v.sub_GN (4 * embedding_length floats), mm.0 and mm.2
 * (img_projection's two Linear layers, weight and bias).
 *
 * Every key is read with its exact GGUF type and bounded before use; a
 * malformed file fails with VC_EXIT_MODEL naming the file and the key.
 */
#ifndef VC_LOADER_GGUF_PHI3V_H
#define VC_LOADER_GGUF_PHI3V_H

#include <jansson.h>
#include <stdbool.h>

#include "loader/gguf.h"

/* True if the file carries the vlmchat.phi3v namespace (any of its keys). */
bool vc_gguf_phi3v_present(const vc_gguf *g);

/* Reads and checks the vlmchat.phi3v keys of g (opened from path) and
 * renames its v.* and mm.* tensors to the HF checkpoint's names
 * (model.vision_embed_tokens.*), which the phi3_v family binds. On success
 * *config is the config.json the family loads from (model_type phi3_v,
 * embd_layer, img_processor, vision_config) and *processor the image
 * processor settings (num_crops, image_mean, image_std); the caller frees
 * both (json_decref). On failure nothing needs freeing (tensor names may
 * already be changed). */
int vc_gguf_phi3v_read(vc_gguf *g, const char *path, json_t **config, json_t **processor);

#endif
