#!/usr/bin/env bash
# Debian packages the local stack needs: a container registry, a daemonless image builder, and what
# scripts/base_image.py builds the base image with (mmdebstrap; patchelf and strip relocate the Python),
# PostgreSQL 15, the engine of the emulator's RDS postgres instances, and Chromium, the headless browser
# tests/integration/test_hosted_ui.py opens the self-hosted Prefect server's UI with.
set -euo pipefail
PACKAGES=(docker-registry podman buildah fuse-overlayfs uidmap mmdebstrap patchelf binutils postgresql-15 chromium)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
if [[ $(id -u) -eq 0 ]]; then
  echo "system-deps: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "system-deps: missing Debian packages. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
