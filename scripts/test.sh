#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: installs what is missing, brings the lab up
# (PostgreSQL 15, Asterisk 22 in a chroot, a SIPp carrier), then lint, types and every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh

echo "test: ruff" >&2
.venv/bin/ruff check daemon tests bench
.venv/bin/ruff format --check daemon tests bench
echo "test: mypy" >&2
.venv/bin/mypy
echo "test: import contracts" >&2
.venv/bin/lint-imports

echo "test: lab up" >&2
.venv/bin/dialler lab up >/dev/null

echo "test: pytest" >&2
set +e
.venv/bin/pytest "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "test: pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit $rc
