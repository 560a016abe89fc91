# Sourced by scripts/run and scripts/test: installs what this machine is missing, quickly
# when nothing is. Debian 12 packages; the Swift toolchain is expected on PATH.
set -euo pipefail

# What building and running netacct needs.
NETACCT_RUN_PACKAGES=(
    libbpf-dev  # libbpf 1.1 headers and library (pulls libelf-dev, zlib1g-dev)
    libsqlite3-dev # the history file (netacct daemon --history)
    pkg-config
)

# What the test suite needs besides.
NETACCT_TEST_PACKAGES=(
    util-linux  # setpriv, used by the tests to run netacct without privileges
    iproute2
    python3     # Debian's /usr/bin/python3: the tests' client run as another user (setpriv)
    ethtool     # the nic tests change a veth's queue count (ethtool -L)
    nftables    # the latency tests drop and NAT with real firewall rules in their namespaces
    tmux        # the interactive top tests type keys and read the screen in a tmux session
    curl        # the metrics tests' HTTP requests
    prometheus  # the metrics tests scrape the daemon with a real Prometheus server; promtool checks
    qemu-system-x86 # the older-kernel tests boot Debian's 6.1 kernel package (scripts/vm)
    busybox-static  # … with an initramfs of busybox, netacct and a traffic generator
    cpio
    gcc libc6-dev   # the traffic generator, linked statically
    lintian     # the package test: lintian checks the .deb scripts/package builds
    man-db      # … and its man pages open (man -l)
    bash-completion # … and its bash completions load
    debootstrap zstd # … and it installs into a fresh Debian 12 root (scripts/debian-root)
    python3-venv    # the Kubernetes manifests' validator, from PyPI (netacct_install_python_tools)
)

# What the tests need from PyPI, pinned, in a virtual environment of the build directory.
NETACCT_TEST_PYTHON=(kubernetes-validate==1.37.0)

# Installs the Debian packages of a list (`run` or `test`, which includes `run`'s) that are
# missing, and checks that a Swift toolchain is on PATH.
netacct_install_packages() {
    local wanted=("${NETACCT_RUN_PACKAGES[@]}")
    if [ "${1:-run}" = test ]; then wanted+=("${NETACCT_TEST_PACKAGES[@]}"); fi
    local missing=()
    for package in "${wanted[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if ((${#missing[@]})); then
        echo "setup: installing ${missing[*]}" >&2
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if ! command -v swift >/dev/null; then
        echo "setup: no Swift toolchain on PATH (Swift >= 6.1 is needed: https://www.swift.org/install/linux/)" >&2
        exit 1
    fi
}

# Installs NETACCT_TEST_PYTHON into .build/test-python (made with Debian's python3), unless
# it is there already: the tests run .build/test-python/bin/kubernetes-validate.
netacct_install_python_tools() {
    local venv=.build/test-python
    local installed; installed="$("$venv/bin/python" -m pip freeze 2>/dev/null || true)"
    local missing=()
    for requirement in "${NETACCT_TEST_PYTHON[@]}"; do grep -qixF "$requirement" <<< "$installed" || missing+=("$requirement"); done
    if ((${#missing[@]})); then
        echo "setup: installing ${missing[*]} into $venv" >&2
        [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
        "$venv/bin/python" -m pip install -q --disable-pip-version-check "${missing[@]}" >&2
    fi
}

# Every release build uses these flags, so that no two commands rebuild each other's
# products. They make the binary self-contained and the daemon small (BENCHMARKS.md, memory):
# - --static-swift-stdlib links in the parts of the Swift runtime netacct uses instead of
#   loading the toolchain's shared libraries whole (it also runs without a toolchain);
# - lld with packed relative relocations (DT_RELR, glibc >= 2.36): 10 KiB of relocations
#   instead of 1.2 MiB read at every start;
# - no dynamic symbol table for the executable's own functions (Swift exports them all by
#   default; nothing looks them up, but the dynamic loader's lookups touch them).
NETACCT_RELEASE_FLAGS=(-c release --static-swift-stdlib -Xswiftc -use-ld=lld
    -Xlinker -z -Xlinker pack-relative-relocs -Xlinker --no-export-dynamic)

netacct_build_release() {
    swift build "${NETACCT_RELEASE_FLAGS[@]}" "$@" >&2
}
