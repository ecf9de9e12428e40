#!/usr/bin/env bash
# Installs what `cargo run --release -p immilink-bench --bin gateway-bench` needs besides Rust:
# Debian's nginx (the proxy the gateway is compared with) and the wrk load generator.
# Idempotent; uses sudo only when not run as root.
set -euo pipefail

if [ -x /usr/sbin/nginx ] && command -v wrk >/dev/null 2>&1; then
    echo "nginx and wrk are already installed:"
    /usr/sbin/nginx -v
    command -v wrk
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "bench/setup.sh: not root and no sudo; install nginx and wrk as root" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq

# Whichever Debian package provides /usr/sbin/nginx on this release: `nginx` itself on bookworm
# (12.x point releases) and later; `nginx-light` (the smallest flavour) on older releases where
# `nginx` is only a metapackage.
has_candidate() {
    local candidate
    candidate=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}')
    [ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}
if has_candidate nginx; then
    NGINX_PKG=nginx
elif has_candidate nginx-light; then
    NGINX_PKG=nginx-light
else
    echo "bench/setup.sh: neither nginx nor nginx-light is available from apt" >&2
    exit 1
fi

$SUDO apt-get install -y --no-install-recommends "$NGINX_PKG" wrk

# The package may start a system nginx on port 80 where init scripts run; the benchmark starts its
# own on a free port and does not need it.
/usr/sbin/nginx -v
command -v wrk
