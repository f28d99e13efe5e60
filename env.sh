# Source me:  source env.sh
# Activates the project venv (.venv, made by `make setup`) and the ROS 2 Jazzy environment that the
# pip wheels need: shared-library paths, the ament index and the Fast DDS middleware.
# Safe to source more than once.

_gcf_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
_gcf_venv="${GCF_VENV:-$_gcf_root/.venv}"

if [ ! -x "$_gcf_venv/bin/python" ]; then
  echo "env.sh: no virtual environment at $_gcf_venv; run 'make setup' first" >&2
  return 1 2>/dev/null || exit 1
fi

export VIRTUAL_ENV="$_gcf_venv"
# Console scripts of gcf_ros install to lib/gcf_ros (the ament_python layout `ros2 run` expects).
# Each directory is checked on its own: an activated venv already has bin/ on PATH, not lib/gcf_ros.
for _d in "$_gcf_venv/bin" "$_gcf_venv/lib/gcf_ros"; do
  case ":$PATH:" in
    *":$_d:"*) ;;
    *) export PATH="$_d:$PATH" ;;
  esac
done

_gcf_site="$_gcf_venv/lib/python3.11/site-packages"
_gcf_ld="$_gcf_venv/lib"
for _d in "$_gcf_site"/ros_*.libs; do
  [ -d "$_d" ] && _gcf_ld="$_gcf_ld:$_d"
done
case ":${LD_LIBRARY_PATH:-}:" in
  *":$_gcf_venv/lib:"*) ;;
  *) export LD_LIBRARY_PATH="$_gcf_ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
esac
# Tell ros_wheels_bootstrapper (imported by some wheels) that the environment is already set, so it
# does not re-exec the interpreter.
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1

case ":${AMENT_PREFIX_PATH:-}:" in
  *":$_gcf_venv:"*) ;;
  *) export AMENT_PREFIX_PATH="$_gcf_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
esac
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"

unset _gcf_root _gcf_venv _gcf_site _gcf_ld _d
