#!/usr/bin/env bash
# Builds, without Docker Hub, a base image equivalent to Airbyte's python-connector-base from Debian's
# packages, for `make image BASE_IMAGE=...` and the image tests on a machine that cannot pull Airbyte's:
#
#   scripts/local-base-image.sh [TAG]          default TAG: source-usage/local-base:bookworm
#
# debootstrap makes a minimal Debian bookworm root file system with Python 3.11 and CA certificates
# (from the mirror of this machine's apt sources, or $DEBIAN_MIRROR), `docker import` turns it into an
# image, and scripts/local-base.Dockerfile adds the airbyte user, a virtualenv first on PATH and this
# machine's CA bundle. Needs root, debootstrap and a running Docker engine; takes about a minute.
set -euo pipefail

TAG="${1:-source-usage/local-base:bookworm}"
SUITE=bookworm
HERE="$(cd "$(dirname "$0")" && pwd)"

die() { echo "local-base-image: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed)"

debian_mirror() {
  # The first Debian archive (not the security one) named in apt's sources, one-line or deb822 format.
  local uri
  uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -v '^\s*#' | grep -oE '(https?|ftp)://[^ ]+' | sed 's:/*$::' | grep -E '/debian$' | head -n 1 || true)"
  echo "${uri:-http://deb.debian.org/debian}"
}
MIRROR="${DEBIAN_MIRROR:-$(debian_mirror)}"
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
[ -r "$CA_BUNDLE" ] || die "no CA bundle at $CA_BUNDLE"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/local-base.XXXXXX")"
ROOTFS_IMAGE="source-usage/local-base-rootfs:$SUITE"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

start=$(date +%s)
echo "local-base-image: debootstrap $SUITE from $MIRROR"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$WORK/rootfs" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 \
  || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

# What an image does not need: downloaded packages, package lists, documentation, manuals, translations.
rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/* \
  "$WORK"/rootfs/usr/share/doc/* "$WORK"/rootfs/usr/share/man/* "$WORK"/rootfs/usr/share/info/* \
  "$WORK"/rootfs/var/log/*.log "$WORK"/rootfs/var/cache/debconf/*-old
find "$WORK/rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'C.*' -exec rm -rf {} + 2>/dev/null || true

echo "local-base-image: importing the root file system as $ROOTFS_IMAGE"
tar -C "$WORK/rootfs" -c . | docker import - "$ROOTFS_IMAGE" >/dev/null

mkdir "$WORK/context"
cp "$CA_BUNDLE" "$WORK/context/ca-certificates.crt"
echo "local-base-image: building $TAG"
docker build --quiet --network host \
  --build-arg "ROOTFS_IMAGE=$ROOTFS_IMAGE" \
  --label "io.source-usage.local-base.mirror=$MIRROR" \
  --label "io.source-usage.local-base.recipe=$(cat "$0" "$HERE/local-base.Dockerfile" | sha256sum | cut -c1-16)" \
  -f "$HERE/local-base.Dockerfile" -t "$TAG" "$WORK/context" >/dev/null
docker image rm "$ROOTFS_IMAGE" >/dev/null 2>&1 || true

size=$(docker image inspect -f '{{.Size}}' "$TAG")
echo "local-base-image: built $TAG ($((size / 1000000)) MB) in $(( $(date +%s) - start )) s"
