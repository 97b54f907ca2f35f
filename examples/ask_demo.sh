#!/usr/bin/env bash
# Asks the bundled demo model about the example scenes: one question per stdin line.
set -eu
cd "$(dirname "$0")/.."
V=${VLMCHAT:-build/vlmchat}
for img in examples/scene*.png; do
    echo "== $img"
    printf '%s\n' "Describe the image." "How many shapes are there?" "What color is the shape on the left?" \
        "What shape is on the right?" | "$V" --image "$img"
done
