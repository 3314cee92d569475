#!/usr/bin/env bash
# Set up everything Desktop Chat needs on Debian/Ubuntu, then run the app or the checks.
#   ./dev.sh app    install, then open the window
#   ./dev.sh test   install, then ruff, mypy and the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

# Qt's xcb/EGL platform libraries and fonts for the window; Xvfb, dbus and
# gnome-keyring for the screenshot and Secret Service tests; desktop-file-utils
# and appstream to validate the desktop entry and metainfo; gcc to link the
# trimmed ICU data library of the PyInstaller bundle (see build.spec).
SYSTEM_PACKAGES=(
  python3-venv libegl1 libgl1 libopengl0 libfontconfig1 libxkbcommon0 libxkbcommon-x11-0
  libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render-util0 libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libdbus-1-3
  fonts-dejavu-core fonts-noto-color-emoji xvfb xauth dbus gnome-keyring libsecret-tools
  desktop-file-utils appstream gcc
)

install_system_packages() {
  local missing=()
  for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
      echo "dev.sh: please install as root: apt-get install ${missing[*]}" >&2; return 1
    fi
  fi
  echo "dev.sh: installing system packages: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_python_packages() {
  local python="${PYTHON:-python3.11}"
  command -v "$python" >/dev/null || python=python3
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  # pip's build chatter goes to a log; it is shown only if the install fails.
  if ! { .venv/bin/python -m pip install -q --upgrade pip &&
         .venv/bin/python -m pip install -q -e ".[dev]"; } > .venv/pip.log 2>&1; then
    cat .venv/pip.log >&2
    echo "dev.sh: installing the Python packages failed (log above)" >&2
    return 1
  fi
}

case "${1:-}" in
  app)
    install_system_packages
    install_python_packages
    shift
    exec .venv/bin/desktop-chat "$@"
    ;;
  test)
    install_system_packages
    install_python_packages
    shift
    .venv/bin/ruff check .
    .venv/bin/ruff format --check .
    .venv/bin/mypy
    status=0
    .venv/bin/python -m pytest "$@" || status=$?
    # pytest exits 5 when it collected no tests: that is a failure here.
    if [ "$status" -eq 5 ]; then echo "dev.sh: no tests were collected" >&2; exit 1; fi
    [ "$status" -eq 0 ] || exit "$status"
    # The suite renders offscreen; the screenshots are taken again on a real X
    # server (Xvfb, xcb platform, as on a desktop) and written to screenshots/.
    if [ $# -eq 0 ]; then
      xvfb-run -a -s "-screen 0 1280x1024x24" env QT_QPA_PLATFORM=xcb \
        .venv/bin/python -m pytest -q -p no:cacheprovider tests/gui/test_screenshots.py
    fi
    ;;
  *)
    echo "usage: ./dev.sh app | ./dev.sh test [pytest args]" >&2
    exit 2
    ;;
esac
