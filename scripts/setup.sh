# Sourced by scripts/demo and scripts/test: installs the Debian packages emmcsim needs (only
# when one is missing), then configures and builds a CMake preset.
#   emmcsim_install_deps [extra packages...]
#   emmcsim_build PRESET [cmake -D options...]

EMMCSIM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Everything comes from Debian bookworm.
EMMCSIM_PACKAGES=(
  cmake ninja-build g++ pkg-config
  libssl-dev libboost-dev libsystemc-dev
  libcli11-dev nlohmann-json3-dev libfmt-dev libspdlog-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  mmc-utils
)

emmcsim_install_deps() {
  local wanted=("${EMMCSIM_PACKAGES[@]}" "$@") missing=() p
  for p in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "emmcsim: installing ${missing[*]}" >&2
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

emmcsim_build() {
  local preset=$1
  shift
  (cd "$EMMCSIM_ROOT" && cmake --preset "$preset" "$@" >/dev/null && cmake --build --preset "$preset")
}
