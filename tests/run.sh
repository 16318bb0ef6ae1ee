#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what the tests and barebox's CI envs
# drive (QEMU, socat, cross compilers, build tools: tests/packages-debian.txt) with apt-get and
# bbv with its test extras with pip, then ruff, the documentation site (mkdocs --strict) and
# pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Debian packages: tests/packages-debian.txt, the one list ('#' comments, blank-separated).
mapfile -t APT_PACKAGES < <(sed -e 's/#.*//' tests/packages-debian.txt | tr -s ' \t' '\n' \
    | grep -v '^$')
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# lava-run (tests/integration/test_export.py) keeps its job files in /var/lib/lava/dispatcher/tmp; the
# tests also fetch lava-server's .deb with `apt-get download` for its device-type templates.
if [ ! -w /var/lib/lava/dispatcher/tmp ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo mkdir -p /var/lib/lava/dispatcher/tmp
    [ "$(id -u)" -eq 0 ] || $sudo chown "$(id -u)" /var/lib/lava/dispatcher/tmp
fi

# lava-server's device-type templates (qemu.jinja2, base.jinja2) for the lava-run test: from
# its .deb, unpacked, not installed. Cached; a failure here stops the run instead of a skip.
lava_types="${XDG_CACHE_HOME:-$HOME/.cache}/bbv-tests/lava-server"
if [ ! -f "$lava_types/root/usr/share/lava-server/device-types/qemu.jinja2" ]; then
    mkdir -p "$lava_types"
    (cd "$lava_types" && rm -f lava-server_*.deb && apt-get download -q lava-server \
        && dpkg -x lava-server_*.deb root)
fi
export BBV_LAVA_DEVICE_TYPES="$lava_types/root/usr/share/lava-server/device-types"

# bbv itself: an editable install of this tree, unless bbv is installed another way (a plain
# `pip install .`), which stays as it is: only the test extras are installed then, and the
# tests run this tree's code through PYTHONPATH.
install=$(python3 tests/install_kind.py)
echo "tests/run.sh: bbv is $install"
if [ "$install" = "installed from a copy (kept; testing this tree through PYTHONPATH)" ]; then
    # shellcheck disable=SC2046
    python3 -m pip install -q --disable-pip-version-check $(python3 tests/install_kind.py --extras)
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    python3 -m pip install -q --disable-pip-version-check -e '.[test]'
fi
python3 -m ruff check .
# The documentation site, strictly: a broken link or anchor, a page missing from the nav, or a
# command without its --help page fails (docs/hooks/bbv_help.py).
site="$(mktemp -d)"
trap 'rm -rf "$site"' EXIT
NO_MKDOCS_2_WARNING=1 python3 -m mkdocs build --strict --quiet -d "$site"
python3 -m pytest -q -ra "$@"
