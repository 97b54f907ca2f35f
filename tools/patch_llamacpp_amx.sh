#!/usr/bin/env bash
# patch_llamacpp_amx.sh - makes a llama.cpp checkout's AMX kernels run when
# built with gcc 12 (Debian 12's): gcc drops the stores that fill the tile
# configuration before _tile_loadconfig (it does not see ldtilecfg read
# them), the tiles are left unconfigured and the first tile instruction
# raises SIGILL. A compiler barrier naming the configuration keeps the
# stores. vlmchat's own AMX code (src/core/int8dot_amx.c) has the same one.
#
#   tools/patch_llamacpp_amx.sh LLAMA_CPP_SOURCE_DIR     (then rebuild it)
#
# llama.cpp is never part of this repository; this only edits a checkout
# used for comparisons (tools/compare_llamacpp.sh). Idempotent.
set -eu
f=${1:?usage: $0 LLAMA_CPP_SOURCE_DIR}/ggml/src/ggml-cpu/amx/mmq.cpp
[ -f "$f" ] || { echo "$f: not found" >&2; exit 1; }
grep -q 'vlmchat: keep the tile configuration' "$f" && exit 0
grep -q '^    _tile_loadconfig(&tc);' "$f" || { echo "$f: no _tile_loadconfig(&tc) to patch" >&2; exit 1; }
sed -i 's|^    _tile_loadconfig(&tc);|    __asm__ volatile("" : : "m"(tc) : "memory");   /* vlmchat: keep the tile configuration stores */\n    _tile_loadconfig(\&tc);|' "$f"
echo "patched $f"
