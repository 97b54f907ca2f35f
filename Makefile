# vlmchat - build, test and install.
#   make              build build/vlmchat
#   make check        the README's test command: `make test` then `make test-asan`
#   make test         unit + fidelity + CLI tests (valgrind on the scripted path included)
#   make test-asan    the same tests built with AddressSanitizer + UBSan
#   make fuzz-smoke   libFuzzer targets (clang) for GGUF, safetensors, tokenizer.json, tokenizing, images
#   make bench        speed and memory table (+ build/bench.jsonl) on random-weight models of real dimensions
#   make install      install binary, man page and presets under $(PREFIX)

PREFIX   ?= /usr/local
BUILD    ?= build
CC       ?= cc
PKGS      = jansson libpcre2-8 libpng libsixel readline ncurses libmicrohttpd
# `make BLAS=1`: prefill and the vision tower through OpenBLAS's sgemm (about
# 3x faster image encoding). Off by default: Debian's OpenBLAS starts a thread
# server that spins forever when a tight `ulimit -v` denies its buffers, and
# the memory tests run under one.
BLAS     ?= 0
ifeq ($(BLAS),1)
CFLAGS_BLAS = -DVC_HAVE_BLAS $(shell pkg-config --cflags openblas)
LDLIBS_BLAS = $(shell pkg-config --libs openblas)
endif
OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
CFLAGS   += $(CFLAGS_BLAS) -DVLMCHAT_DATADIR=\"$(PREFIX)/share/vlmchat\" -std=c11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Iinclude -Isrc \
            $(shell pkg-config --cflags $(PKGS))
LDLIBS   += $(shell pkg-config --libs $(PKGS)) $(LDLIBS_BLAS) -ljpeg -lm -lpthread
ifeq ($(FUZZ),1)
CFLAGS   += -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
endif
ifeq ($(SAN),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif

LIB_SRC   = $(sort $(wildcard src/core/*.c src/loader/*.c src/text/*.c src/model/*.c src/image/*.c src/vision/*.c src/tui/*.c src/serve/*.c)) \
            $(filter-out src/app/main.c,$(sort $(wildcard src/app/*.c)))
LIB_OBJ   = $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC  = $(sort $(wildcard tests/test_*.c))
TEST_BIN  = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

all: $(BUILD)/vlmchat

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libvlmchat.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/vlmchat: $(BUILD)/src/app/main.o $(BUILD)/libvlmchat.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/harness.o $(BUILD)/libvlmchat.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

tests-build: $(TEST_BIN) $(BUILD)/vlmchat

test: tests-build
	@BUILD=$(BUILD) bash tests/run.sh

test-asan:
	$(MAKE) BUILD=build-asan SAN=1 OPT=-O1 test

check:
	$(MAKE) test
	$(MAKE) test-asan
	$(MAKE) fuzz-smoke

# libFuzzer targets (clang): `make fuzz` builds them, `make fuzz-smoke` runs each for 15 s,
# `bash tests/fuzz/run.sh 600` for the long runs.
FUZZ_BIN = $(patsubst tests/fuzz/%.c,$(BUILD)/%,$(sort $(wildcard tests/fuzz/fuzz_*.c)))

fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang FUZZ=1 OPT=-O1 fuzz-targets

fuzz-targets: $(FUZZ_BIN)

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(BUILD)/libvlmchat.a
	$(CC) $(CFLAGS) -fsanitize=fuzzer,address,undefined $< $(BUILD)/libvlmchat.a -o $@ $(LDLIBS)

fuzz-smoke: fuzz
	BUILD=build-fuzz bash tests/fuzz/run.sh 15

# Speed and memory on random-weight models of real dimensions (not a test: nothing is asserted).
# A type ending in +float runs with --float-act (float activations; 8-bit is the default).
BENCH_MODELS ?= smolvlm-256m
BENCH_TYPES  ?= bf16 q8_0+float q8_0 q4_0+float q4_0
bench: $(BUILD)/vlmchat
	@for m in $(BENCH_MODELS); do for t in $(BENCH_TYPES); do \
	    q=$${t%+float}; f=; [ "$$q" = "$$t" ] || f=--float-act; \
	    $(BUILD)/vlmchat bench $$m --quant $$q $$f || exit 1; \
	    $(BUILD)/vlmchat bench $$m --quant $$q $$f --json >>$(BUILD)/bench.jsonl || exit 1; done; done
	@echo "JSON lines in $(BUILD)/bench.jsonl"

# GMAC/s of the integer matrix products (interleaved and stored rows; not a test).
$(BUILD)/bench_int8: tools/bench_int8.c $(BUILD)/libvlmchat.a
	$(CC) $(CFLAGS) $< $(BUILD)/libvlmchat.a -o $@ $(LDLIBS)

install: $(BUILD)/vlmchat
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/vlmchat/configs
	install -m 755 $(BUILD)/vlmchat $(DESTDIR)$(PREFIX)/bin/vlmchat
	install -m 644 man/vlmchat.1 $(DESTDIR)$(PREFIX)/share/man/man1/vlmchat.1
	cp -r configs/demo $(DESTDIR)$(PREFIX)/share/vlmchat/configs/
	install -m 644 configs/*.json $(DESTDIR)$(PREFIX)/share/vlmchat/configs/

clean:
	rm -rf build build-asan build-fuzz

.PHONY: all check test test-asan tests-build install clean fuzz fuzz-targets fuzz-smoke bench
.SECONDARY:
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
