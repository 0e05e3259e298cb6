#!/usr/bin/env bash
# The Python package in CI: a fresh venv, the package built from the repository with the
# README's one command, and its pytest suite (crates/emobridge-py/tests).
#
#   tools/ci/python.sh            # venv in target/py-venv (recreated)
#
# The build reuses the workspace target/ (release profile), so the dependencies compiled by
# `cargo test --release` are not compiled again; only pyo3/numpy and the bindings are new.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
VENV=${EMOBRIDGE_PY_VENV:-$ROOT/target/py-venv}
PYTHON=${PYTHON:-python3}
started=$(date +%s)

rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
"$VENV/bin/pip" install --quiet maturin numpy pandas pytest

# maturin's build hook runs the `maturin` binary from PATH: the venv's.
export PATH="$VENV/bin:$PATH"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
# --locked: the committed Cargo.lock, as everywhere else in CI.
export MATURIN_PEP517_ARGS="--locked"
# The README's command (with the venv's maturin instead of a download into an isolated one).
"$VENV/bin/pip" install --no-build-isolation ./crates/emobridge-py
built=$(date +%s)

"$VENV/bin/python" -c "import emobridge; print('emobridge', emobridge.__version__)"
"$VENV/bin/python" -m pytest -q crates/emobridge-py/tests
echo "python package: venv + build $((built - started)) s, tests $(( $(date +%s) - built )) s"
