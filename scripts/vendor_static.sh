#!/usr/bin/env bash
# Refresh the Leaflet that the map page ships with, from the npm registry: scripts/vendor_leaflet.sh [VERSION]
# It replaces api/static/leaflet-*/ with leaflet-VERSION/ (leaflet.js, leaflet.css, images/, LICENSE, VERSION,
# SHA256SUMS) and points api/static/index.html at it. Commit the result: installs never fetch anything.
set -euo pipefail
VERSION="${1:-1.9.4}"
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "leaflet@${VERSION}" >/dev/null && tar xzf "leaflet-${VERSION}.tgz")
target="api/static/leaflet-${VERSION}"
rm -rf api/static/leaflet-*
mkdir -p "${target}/images"
cp "${work}/package/dist/leaflet.js" "${work}/package/dist/leaflet.css" "${target}/"
cp "${work}/package/dist/images/"*.png "${target}/images/"
cp "${work}/package/LICENSE" "${target}/LICENSE"
echo "${VERSION}" > "${target}/VERSION"
(cd "${target}" && sha256sum leaflet.js leaflet.css images/*.png > SHA256SUMS)
sed -i -E "s#/static/leaflet-[0-9][^/]*/#/static/leaflet-${VERSION}/#g" api/static/index.html
echo "vendored Leaflet ${VERSION} in ${target}"
