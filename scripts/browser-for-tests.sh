#!/usr/bin/env bash
# Installs Chromium from Debian's packages for the report's browser test (integration_tests/test_report_browser.py),
# unless a Chromium is already installed. Without one that test is skipped (SOURCE_USAGE_REQUIRE_BROWSER=1 fails it).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "browser-for-tests: $(chromium --version 2>/dev/null) is installed"
  exit 0
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null
echo "browser-for-tests: installed $(chromium --version 2>/dev/null)"
