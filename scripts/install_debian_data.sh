#!/usr/bin/env bash
# Debian packages that ship data uqcompress reads: dataset-fashion-mnist (Fashion-MNIST idx files under
# /usr/share/datasets/fashion-mnist/, the real photo set of the pretrained image models). `make setup` runs this.
# It installs what is missing where apt-get is usable (as root, or with sudo that needs no password) and otherwise
# prints the one command to run; it never fails the set-up (data=fashion_mnist then names what is missing, and under
# CI the Fashion-MNIST tests fail rather than skip).
set -u
missing=()
[ -f /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ] || missing+=(dataset-fashion-mnist)
[ ${#missing[@]} -eq 0 ] && exit 0
install="apt-get install -y -qq ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
  echo "uqcompress: no apt-get here: for Fashion-MNIST put its four idx .gz files in a folder and set data.root=DIR"
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"
else echo "uqcompress: to install Fashion-MNIST (31 MB) run: sudo $install"; exit 0
fi
echo "uqcompress: installing ${missing[*]} (Debian; 31 MB)"
# a fresh machine may have no package lists yet: update once and try again
$SUDO $install >/dev/null 2>&1 || { $SUDO apt-get update -qq && $SUDO $install >/dev/null; } \
  || echo "uqcompress: could not install ${missing[*]}; run: sudo apt-get update && sudo $install"
exit 0
