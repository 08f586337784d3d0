#!/usr/bin/env bash
# The Debian packages the demo and the tests use, installed when this machine can (root with
# apt-get); otherwise the exact command to run is printed and the make goal goes on (the tests
# that need a missing package skip or fail naming it).
#   tools/system_packages.sh            install what is missing
#   tools/system_packages.sh --list     print the packages, one line
set -uo pipefail

PACKAGES=(
  dataset-fashion-mnist   # Fashion-MNIST's 70,000 images (engine label agreement, --dataset fashion-mnist offline)
  xvfb xdotool x11-apps   # a virtual screen, keys and screenshots for the live-window test
  chromium                # the headless browser Playwright drives in lenet-serve's page test
  # Fonts of the digit reader's training data and held-out pages (lenet.digits.kit.fonts)
  fonts-dejavu-core fonts-liberation fonts-urw-base35 fonts-freefont-ttf fonts-noto-core
  fonts-comic-neue fonts-dancingscript fonts-kaushanscript fonts-ecolier-court fonts-klee
  fonts-joscelyn fonts-havana
)

if [ "${1:-}" = "--list" ]; then echo "${PACKAGES[*]}"; exit 0; fi

if ! command -v dpkg >/dev/null; then
  echo "system packages: not a Debian system; install the equivalents of: ${PACKAGES[*]}" >&2
  exit 0
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "system packages missing: ${missing[*]}" >&2
  echo "  install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 0
fi
echo "system packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q "${missing[@]}" >/tmp/lenet-apt.log 2>&1; then
  # The package lists of a fresh machine are often empty or stale: refresh them once and retry.
  apt-get update -q >>/tmp/lenet-apt.log 2>&1
  if ! apt-get install -y -q "${missing[@]}" >>/tmp/lenet-apt.log 2>&1; then
    echo "system packages: apt-get could not install ${missing[*]} (log: /tmp/lenet-apt.log)" >&2
    echo "  install them with: apt-get update && apt-get install -y ${missing[*]}" >&2
  fi
fi
exit 0
