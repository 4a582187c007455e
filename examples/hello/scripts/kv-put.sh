#!/usr/bin/env bash
# Store one key. Attributes arrive as environment variables ($key, $value)
# and as JSON in $DTK_ATTRIBUTES.
mkdir -p "$DTK_DATA_DIR/kv"
printf '%s\n' "$value" > "$DTK_DATA_DIR/kv/$key"
echo "stored $key=$value in $DTK_DATA_DIR/kv"
