#!/bin/sh
# The dialler image's entrypoint: `exec dialler "$@"`, after one step containers need.
# Secrets reach containers as environment variables, but the config's api.tokens_file is a
# file: $DIALLER_API_TOKEN (one token, or several separated by white space) is written to
# $DIALLER_TOKENS_FILE (default /run/dialler/api-tokens), readable by this user only.
set -eu
if [ -n "${DIALLER_API_TOKEN:-}" ]; then
  umask 077
  set -f  # split the tokens on white space, but never expand a `*` in one
  printf '%s\n' $DIALLER_API_TOKEN > "${DIALLER_TOKENS_FILE:-/run/dialler/api-tokens}"
fi
exec dialler "$@"
