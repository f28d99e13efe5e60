#!/usr/bin/env bash
# `make demo`: runs the packaged demo (expects `source env.sh` done, as the Makefile does).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
exec gcf-demo --out out/demo "$@"
