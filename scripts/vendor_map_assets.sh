#!/usr/bin/env bash
# Re-fetches the JavaScript/CSS the map pages use from the npm registry and
# copies the distribution files (with their licences) into map_ui/static/vendor.
# The pages never link a CDN: government networks and the tests are offline.
# Versions are pinned here and listed in map_ui/static/VENDORED.md.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST="$ROOT/map_ui/static/vendor"
PACKAGES=("leaflet@1.9.4" "leaflet-draw@1.0.4")

command -v npm >/dev/null 2>&1 || { echo "npm is needed to fetch the map assets" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for pkg in "${PACKAGES[@]}"; do
  (cd "$work" && npm pack --silent "$pkg" >/dev/null)
done

unpack() {  # tarball, target folder
  mkdir -p "$work/$2" && tar -xzf "$work/$1" -C "$work/$2"
}
unpack leaflet-1.9.4.tgz leaflet
unpack leaflet-draw-1.0.4.tgz leaflet-draw

rm -rf "$DEST/leaflet" "$DEST/leaflet-draw"
mkdir -p "$DEST/leaflet/images" "$DEST/leaflet-draw/images"
cp "$work/leaflet/package/dist/leaflet.js" "$work/leaflet/package/dist/leaflet.css" \
   "$work/leaflet/package/LICENSE" "$DEST/leaflet/"
cp "$work/leaflet/package/dist/images/"*.png "$DEST/leaflet/images/"
cp "$work/leaflet-draw/package/dist/leaflet.draw.js" \
   "$work/leaflet-draw/package/dist/leaflet.draw.css" "$DEST/leaflet-draw/"
cp "$work/leaflet-draw/package/dist/images/"* "$DEST/leaflet-draw/images/"
# The leaflet-draw tarball declares "license": "MIT" in package.json but ships no
# licence file; the upstream MIT-LICENSE.md text is reproduced here.
if [ -f "$work/leaflet-draw/package/MIT-LICENSE.md" ]; then
  cp "$work/leaflet-draw/package/MIT-LICENSE.md" "$DEST/leaflet-draw/LICENSE"
else
  cat > "$DEST/leaflet-draw/LICENSE" <<'LICENSE'
Copyright 2012-2017 Jon West, Jacob Toye, and Leaflet

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of
the Software, and to permit persons to whom the Software is furnished to do so,
subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS
FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER
IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
LICENSE
fi
echo "vendored into $DEST: ${PACKAGES[*]}"
