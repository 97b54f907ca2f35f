#!/usr/bin/env bash
# test_malformed.sh - the malformed-input table (tests/cli/malformed.py).
cd "$(dirname "$0")/../.." && exec python3 tests/cli/malformed.py "${VLMCHAT:-build/vlmchat}"
