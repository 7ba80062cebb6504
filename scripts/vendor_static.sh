#!/usr/bin/env bash
# Refresh the web assets the HTTP server ships with, from the npm registry: Leaflet (the map page) and Swagger UI
# (the API docs at /docs). Versions are pinned here; change one and run `scripts/vendor_static.sh`, then commit the
# result: installs never fetch anything, and the pages work with no internet.
# Each lands in api/static/<package>-<version>/ with its licence, VERSION and SHA256SUMS, and the pages that load it
# (api/static/index.html, api/docs.py) are pointed at the new folder.
set -euo pipefail
LEAFLET_VERSION=1.9.4
SWAGGER_UI_VERSION=5.36.0
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# fetch PACKAGE VERSION: unpack the package's npm tarball into $work/PACKAGE
fetch() {
  mkdir -p "${work}/$1"
  (cd "${work}/$1" && npm pack --silent "$1@$2" >/dev/null && tar xzf "$1-$2.tgz")
}

# vendor PACKAGE VERSION FILE...: copy FILEs (relative to the package) into api/static/PACKAGE-VERSION/
vendor() {
  local package="$1" version="$2" target="api/static/$1-$2"
  shift 2
  rm -rf "api/static/${package}-"*
  mkdir -p "${target}"
  for file in "$@"; do
    local placed="${target}/${file#dist/}"
    mkdir -p "$(dirname "${placed}")"
    cp "${work}/${package}/package/${file}" "${placed}"
  done
  echo "${version}" > "${target}/VERSION"
  (cd "${target}" && find . -type f ! -name SHA256SUMS ! -name VERSION | sort | xargs sha256sum > SHA256SUMS)
  echo "vendored ${package} ${version} in ${target}"
}

fetch leaflet "${LEAFLET_VERSION}"
vendor leaflet "${LEAFLET_VERSION}" dist/leaflet.js dist/leaflet.css LICENSE \
  $(cd "${work}/leaflet/package" && ls dist/images/*.png)
sed -i -E "s#/static/leaflet-[0-9][^/]*/#/static/leaflet-${LEAFLET_VERSION}/#g" api/static/index.html

fetch swagger-ui-dist "${SWAGGER_UI_VERSION}"
vendor swagger-ui-dist "${SWAGGER_UI_VERSION}" swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css \
  LICENSE NOTICE
sed -i -E "s#^SWAGGER_UI = \"[^\"]*\"#SWAGGER_UI = \"swagger-ui-dist-${SWAGGER_UI_VERSION}\"#" api/docs.py
