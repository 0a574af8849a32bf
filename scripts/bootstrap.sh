#!/usr/bin/env bash
# Install what the dialler, its lab and its tests need on Debian 12, then the Python environment.
# Idempotent: installed packages are not fetched again; the venv is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap: run as root (the lab needs debootstrap, chroot and an unprivileged PostgreSQL user)" >&2
  exit 1
fi

# postgresql-15: the lab's and the integration tests' database (initdb/pg_ctl);
# sip-tester: SIPp, the lab's carrier; debootstrap: builds the Asterisk 22 root file system;
# python3-venv: the project's environment.
# prometheus: promtool, which checks and unit-tests the shipped alert rules;
# docker-compose: validates docker/docker-compose.yml without an engine.
# chromium: the browser the console tests drive through Playwright (its own download is not
# reachable here; Playwright 1.65 drives Debian's Chromium 156).
packages=(python3 python3-venv python3-dev gcc postgresql-15 sip-tester debootstrap
          ca-certificates tar util-linux procps prometheus docker-compose chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
echo "bootstrap: ready (.venv)" >&2
