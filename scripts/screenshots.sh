#!/usr/bin/env bash
# The dashboard's screenshots in docs/screenshots/ (the README shows some of them):
# bash scripts/screenshots.sh [pytest arguments...]
#
# Runs the browser tests (tests/test_dashboard_browser.py: headless chromium against
# `channelsync run` over a WooCommerce and a Shopify emulator) once with
# CHANNELSYNC_SCREENSHOTS set, so each page is saved as it is met: login, overview
# (desktop, and 390 px wide as on a phone), stock, a SKU with its chart, conflicts,
# orders and an order. A normal test run writes none. Needs Debian's chromium and
# chromium-driver (apt-get install chromium chromium-driver); nothing is downloaded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/_venv.sh
source scripts/_venv.sh
ensure_venv
export CHANNELSYNC_SCREENSHOTS="$PWD/docs/screenshots"
"$VENV_PY" -m pytest tests/test_dashboard_browser.py -q -p no:cacheprovider "$@"
ls -l "$CHANNELSYNC_SCREENSHOTS"
