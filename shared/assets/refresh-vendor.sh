#!/usr/bin/env bash
# Refreshes vendor/ from the versions pinned in package.json (see README.vendor.md).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cp "$here/package.json" "$tmp/"
[ -f "$here/package-lock.json" ] && cp "$here/package-lock.json" "$tmp/"
(cd "$tmp" && npm install --no-audit --no-fund --silent)
m="$tmp/node_modules"
v="$here/vendor"
mkdir -p "$v/licenses"
cp "$m/chart.js/dist/chart.umd.js" "$v/chart.umd.min.js"
cp "$m/d3-array/dist/d3-array.min.js" "$m/d3-geo/dist/d3-geo.min.js" \
   "$m/topojson-client/dist/topojson-client.min.js" "$v/"
cp "$m/world-atlas/countries-110m.json" "$v/"
for p in chart.js d3-array d3-geo topojson-client world-atlas internmap; do
    cp "$m/$p"/LICENSE* "$v/licenses/$p.LICENSE"
done
cp "$tmp/package-lock.json" "$here/package-lock.json"
echo "vendor/ refreshed; rebuild grd to embed it"
