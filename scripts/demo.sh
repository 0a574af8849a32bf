#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: installs what is missing, brings the lab up and
# runs the dialler's demo on it. The lab stays up afterwards (`.venv/bin/dialler lab down`).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/dialler demo "$@"
