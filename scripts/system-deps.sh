#!/usr/bin/env bash
# Installs the Debian packages the tests talk to, if any is missing (needs root, as on CI).
set -euo pipefail
# chromium (+ a font) drives the web console's browser tests through playwright-core; nothing downloads a browser.
# postfix and swaks: tests/postfix runs a private Postfix (its own config and queue) as orgmail's smarthost
# and as the MX in front of Dovecot (postfix-pgsql / postfix-sqlite: its lookups of orgmail's views).
# The Perl modules give swaks STARTTLS, implicit TLS and AUTH (the submission tests).
packages=(dovecot-imapd dovecot-lmtpd dovecot-sqlite dovecot-pgsql chromium fonts-liberation postfix postfix-pgsql
  postfix-sqlite swaks libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl)
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
# Postfix's installer asks what kind of mail server this is: "No configuration" writes no main.cf
# and sets up no system mail server (the tests write their own configuration elsewhere).
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system Dovecot (and may start a system Postfix) on install; the tests run their own
# on other ports, with their own configuration.
systemctl disable --now dovecot >/dev/null 2>&1 || true
systemctl disable --now postfix >/dev/null 2>&1 || true
if command -v postfix >/dev/null && [ -f /etc/postfix/main.cf ] && postfix status >/dev/null 2>&1; then
  postfix stop >/dev/null 2>&1 || true
fi
