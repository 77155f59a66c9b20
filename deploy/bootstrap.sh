#!/usr/bin/env bash
# Installs everything coex needs into the clone: a virtualenv (.venv) with coex and its
# test tools, and the Kafka broker's jars (.coex/kafka/libs). Safe to run again.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "bootstrap: Python 3.11+ is required ($python is $("$python" --version 2>&1))" >&2; exit 1; }
command -v java >/dev/null || { echo "bootstrap: Java 17+ is required for the local Kafka broker" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >&2
.venv/bin/python -m pip install -q -e '.[dev]' >&2
deploy/kafka-local.sh fetch
echo "bootstrap: ready (.venv/bin/coex)" >&2
