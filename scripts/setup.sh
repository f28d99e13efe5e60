#!/usr/bin/env bash
# One-shot, idempotent set-up of gcf_ros on a fresh x86-64 Debian/Ubuntu machine:
#   1. system packages (apt): Python 3.11 with venv and headers, a C/C++ toolchain and CMake for the
#      interface build, libusb for open3d;
#   2. the project virtual environment .venv (Python 3.11) with the pinned requirements.txt;
#   3. the ROS 2 interface packages in msg/ built into .venv (scripts/build_interfaces.sh);
#   4. gcf_ros itself, installed in editable mode.
# Each step records a stamp (hash of its inputs) under .venv/.stamps and is skipped when unchanged, so
# a second run with everything in place takes seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${GCF_VENV:-$ROOT/.venv}"
STAMPS="$VENV/.stamps"
PYTHON_BIN="${PYTHON:-python3.11}"

_t0=$SECONDS
step() { printf '\n\033[1m[setup] %s\033[0m\n' "$*"; }
took() { printf '[setup]   done in %ds\n' "$((SECONDS - $1))"; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
stamp_ok() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@";
  elif command -v sudo >/dev/null; then sudo "$@";
  else echo "[setup] need root for: $*  (install these packages or run as root)" >&2; exit 1; fi
}

# --- 1. system packages ---------------------------------------------------------------------------
apt_needed=()
have_lib() { ldconfig -p | grep -q "$1"; }
command -v "$PYTHON_BIN" >/dev/null || apt_needed+=(python3.11 python3.11-venv python3.11-dev)
command -v cmake >/dev/null || apt_needed+=(cmake)
command -v make >/dev/null || apt_needed+=(make)
command -v g++ >/dev/null || apt_needed+=(g++)
have_lib 'libusb-1.0.so.0' || apt_needed+=(libusb-1.0-0)
have_lib 'libgomp.so.1' || apt_needed+=(libgomp1)
if ((${#apt_needed[@]})); then
  step "apt: installing ${apt_needed[*]}"
  t=$SECONDS
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "${apt_needed[@]}" >/dev/null
  took $t
else
  step "apt: system packages present"
fi
if ! "$PYTHON_BIN" -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
  step "apt: Python headers missing, installing python3.11-dev"
  as_root apt-get install -y -qq --no-install-recommends python3.11-dev python3.11-venv >/dev/null
fi

# --- 2. virtual environment -----------------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  step "venv: creating $VENV with $("$PYTHON_BIN" --version)"
  "$PYTHON_BIN" -m venv "$VENV"
fi
PY="$VENV/bin/python"
req_hash=$(hash_of "$ROOT/requirements.txt")
if stamp_ok requirements "$req_hash"; then
  step "pip: requirements.txt unchanged, skipping"
else
  step "pip: installing requirements.txt (torch + PyTorch3D + open3d + ROS 2 Jazzy wheels; ~3 min, ~6 GB on a cold cache)"
  t=$SECONDS
  "$PY" -m pip install --disable-pip-version-check --progress-bar off -r "$ROOT/requirements.txt" \
    | grep -E '^(Successfully|ERROR)' || true
  "$PY" -m pip check
  took $t
  stamp_set requirements "$req_hash"
fi

# --- 3. ROS 2 interfaces --------------------------------------------------------------------------
msg_hash=$(cd "$ROOT" && hash_of $(find msg scripts/build_interfaces.sh scripts/cmake -type f | sort) <(echo "$req_hash"))
if stamp_ok interfaces "$msg_hash"; then
  step "interfaces: msg/ unchanged, skipping"
else
  step "interfaces: building gcf_ros_msgs (and tf2_msgs, vision_msgs where no wheel provides them)"
  t=$SECONDS
  VENV="$VENV" bash "$ROOT/scripts/build_interfaces.sh"
  took $t
  stamp_set interfaces "$msg_hash"
fi

# --- 4. the package itself ------------------------------------------------------------------------
pkg_hash=$(hash_of "$ROOT/setup.py" "$ROOT/setup.cfg" "$ROOT/package.xml")
if stamp_ok package "$pkg_hash"; then
  step "gcf_ros: editable install unchanged, skipping"
else
  step "gcf_ros: editable install"
  "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT"
  stamp_set package "$pkg_hash"
fi

# --- check --------------------------------------------------------------------------------------
# shellcheck source=/dev/null
source "$ROOT/env.sh"
python -c "import rclpy, gcf_ros_msgs.msg, tf2_msgs.msg, vision_msgs.msg, torch, pytorch3d, open3d, gcf_ros" \
  || { echo "[setup] import check failed" >&2; exit 1; }
step "ready in $((SECONDS - _t0))s  (venv: $VENV)"
