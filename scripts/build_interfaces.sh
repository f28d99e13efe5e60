#!/usr/bin/env bash
# Build the ROS 2 interface packages under msg/ into the project venv with the ament/rosidl CMake
# tooling that the Jazzy wheels install there. Vendored upstream packages (msg/vendor) are built only
# when no installed wheel provides them already.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
BUILD="$ROOT/build/interfaces"
PY="$VENV/bin/python"
JOBS="$(nproc)"

export AMENT_PREFIX_PATH="$VENV"
export CMAKE_PREFIX_PATH="$VENV"
export PATH="$VENV/bin:$PATH"

build_one() {
  local src="$1" name
  name="$(basename "$src")"
  echo "[interfaces] $name"
  rm -rf "${BUILD:?}/$name"
  mkdir -p "$BUILD/$name"
  if ! cmake -S "$src" -B "$BUILD/$name" \
      -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DCMAKE_PREFIX_PATH="$VENV" \
      -DPython3_EXECUTABLE="$PY" \
      -DPython3_FIND_VIRTUALENV=ONLY \
      -DBUILD_TESTING=OFF \
      -DCMAKE_PROJECT_INCLUDE="$ROOT/scripts/cmake/venv_fixups.cmake" \
      >"$BUILD/$name.configure.log" 2>&1; then
    tail -40 "$BUILD/$name.configure.log" >&2
    echo "[interfaces] cmake configure of $name failed (log: $BUILD/$name.configure.log)" >&2
    exit 1
  fi
  if ! cmake --build "$BUILD/$name" --target install -j "$JOBS" >"$BUILD/$name.build.log" 2>&1; then
    grep -E 'error|Error' "$BUILD/$name.build.log" | head -40 >&2
    echo "[interfaces] build of $name failed (log: $BUILD/$name.build.log)" >&2
    exit 1
  fi
}

# Provided by a wheel? Then keep the wheel's build and do not shadow it.
provided_by_wheel() {
  local pkg="$1"
  "$PY" - "$pkg" <<'PY'
import importlib.metadata as md, sys
pkg = sys.argv[1].replace("_", "-")
names = {f"ros-{pkg}", f"ros-jazzy-{pkg}"}
sys.exit(0 if any(d.metadata["Name"] in names for d in md.distributions()) else 1)
PY
}

for vendored in "$ROOT"/msg/vendor/*/; do
  name="$(basename "$vendored")"
  if provided_by_wheel "$name"; then
    echo "[interfaces] $name: provided by an installed wheel, not building the vendored copy"
  else
    build_one "${vendored%/}"
  fi
done
build_one "$ROOT/msg/gcf_ros_msgs"
