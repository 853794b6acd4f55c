#!/usr/bin/env bash
# Installs the Debian packages the tests talk to, if any is missing (needs root, as on CI).
set -euo pipefail
# chromium (+ a font) drives the web console's browser tests through playwright-core; nothing downloads a browser.
packages=(dovecot-imapd dovecot-lmtpd dovecot-sqlite dovecot-pgsql chromium fonts-liberation)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system Dovecot on install; the tests run their own on other ports.
systemctl disable --now dovecot >/dev/null 2>&1 || true
