#!/usr/bin/env bash
# Builds the connector image from the repository's Dockerfile: `make image` and the image tests run this.
#
#   IMAGE       tag to build (default airbyte/source-usage:dev)
#   BASE_IMAGE  base to build FROM (default: the Dockerfile's, Airbyte's python-connector-base that
#               metadata.yaml pins); e.g. source-usage/local-base:bookworm from scripts/local-base-image.sh
#   DOCKER_BUILD_NETWORK  network of the build's RUN steps (default host: the package index is reached
#               the way this machine reaches it, and an engine without a bridge network builds too)
#
# Proxy variables of the environment (http_proxy, https_proxy, no_proxy, upper or lower case) are passed
# to the build as build arguments, which Docker keeps out of the image. The image the tag named before is
# removed when the build replaced it, so repeated builds do not pile up untagged images.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-airbyte/source-usage:dev}"
args=(build --network "${DOCKER_BUILD_NETWORK:-host}" --tag "$IMAGE")
[ -n "${BASE_IMAGE:-}" ] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
for name in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [ -n "${!name:-}" ] && args+=(--build-arg "$name")
done

previous="$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
start=$(date +%s)
docker "${args[@]}" .
seconds=$(( $(date +%s) - start ))
current="$(docker image inspect --format '{{.Id}}' "$IMAGE")"
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  docker image rm "$previous" >/dev/null 2>&1 || true
fi
size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
base="${BASE_IMAGE:-the default base}"
echo "build-image: $IMAGE FROM $base: $((size / 1000000)) MB, built in ${seconds} s"
