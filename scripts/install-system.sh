#!/usr/bin/env bash
# Installs the system packages the server and its tests need, when missing:
# PostgreSQL + PostGIS (the embedded database), GDAL's command-line tools
# (ogrinfo/ogr2ogr: client tests and the ingest benchmark) and the venv module.
# Debian/Ubuntu only; elsewhere it says what to install and stops.
set -euo pipefail

PY=${PY:-python3}
missing=()

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] && ! command -v initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
major=""
if [ -n "$pg_bin" ]; then
  major=$(basename "$(dirname "$pg_bin")")
elif command -v apt-cache >/dev/null 2>&1; then
  major=15
fi
if [ -n "$major" ] && [ ! -f "/usr/share/postgresql/$major/extension/postgis.control" ]; then
  missing+=("postgresql-$major-postgis-3")
fi
command -v ogr2ogr >/dev/null 2>&1 || missing+=(gdal-bin)
"$PY" -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
# a CJK font: Chinese labels on the supervision charts (PNG)
[ -d /usr/share/fonts/truetype/wqy ] || missing+=(fonts-wqy-microhei)
if [ "${GIS_INSTALL_BROWSER:-1}" = 1 ]; then  # chromium: map page tests
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages: ${missing[*]} (install PostgreSQL 15+ with PostGIS 3, GDAL tools)" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "missing system packages: ${missing[*]}; run as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
echo "installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
