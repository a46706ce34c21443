#!/usr/bin/env bash
# One command installs everything Stacklab needs on a fresh Debian 12 / Ubuntu machine:
# system packages (QEMU, Chromium for the browser tests, image tools), npm packages, and
# the demo guests (built from Debian packages, cached outside the repo).
# Run as root (or it uses sudo for the apt part).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

PACKAGES=(
  qemu-system-arm qemu-system-x86 qemu-utils qemu-user-static   # the emulators
  chromium                                                       # lab-mode end-to-end tests
  mmdebstrap e2fsprogs mtools dosfstools fdisk cpio busybox-static fakeroot # guests, images
  xz-utils zstd bzip2 gzip zip unzip curl file                     # codecs, bench baselines
  proot patchelf util-linux git python3 make g++                   # user mode, bundle, node-pty
  flex bison bc libelf-dev                                         # the x86-64 demo kernel
)

echo "==> system packages"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"
# arm64 kernels and Debian's arm64 QEMU go into the demo guests: let apt fetch arm64 packages.
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  $SUDO apt-get update -q
fi

echo "==> npm packages"
# Electron's binary comes from outside the npm registry; fetch it separately so an
# offline machine still installs (the app then runs in lab mode). npm install, not npm ci:
# npm ci rejects a lock file written with omit-lockfile-registry-resolved (the setting
# here), which leaves other platforms' optional packages out; the lock file still pins.
ELECTRON_SKIP_BINARY_DOWNLOAD=1 npm install --no-audit --no-fund
if ! (cd node_modules/electron && timeout 300 node install.js >/dev/null 2>&1); then
  echo "note: Electron's binary could not be downloaded (offline?); 'npm start' will use lab mode"
fi

echo "==> QEMU bundle (resources/qemu/linux-<arch>, relocatable, from Debian's QEMU)"
npm run --silent bundle:qemu

echo "==> demo guests"
npm run --silent guests

echo "==> done. Run the tests with: npm test    Start the app with: npm start"
