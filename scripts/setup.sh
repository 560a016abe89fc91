# Sourced by scripts/run and scripts/test: installs what this machine is missing, quickly
# when nothing is. Debian 12 packages; the Swift toolchain is expected on PATH.
set -euo pipefail

NETACCT_PACKAGES=(
    libbpf-dev  # libbpf 1.1 headers and library (pulls libelf-dev, zlib1g-dev)
    pkg-config
    util-linux  # setpriv, used by the tests to run netacct without privileges
    iproute2
)

netacct_install_packages() {
    local missing=()
    for package in "${NETACCT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if ((${#missing[@]})); then
        echo "setup: installing ${missing[*]}" >&2
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if ! command -v swift >/dev/null; then
        echo "setup: no Swift toolchain on PATH (Swift >= 6.1 is needed: https://www.swift.org/install/linux/)" >&2
        exit 1
    fi
}
