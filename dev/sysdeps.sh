#!/usr/bin/env bash
# Install the system packages privwatch needs (Debian): Java 17, Maven, Prometheus, Alertmanager, a C
# compiler with Python's headers for the mypyc build of the detectors (dev/native/build.py), and Chromium
# with its driver for the triage app's browser test (tests/test_triage_browser.py).
# Idempotent and silent when everything is already present. Runs as root (no sudo).
set -euo pipefail

missing=()

java_major() {
    # Prints the major version of the java on PATH (or $JAVA_HOME), empty when none.
    local java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
    command -v "$java" >/dev/null 2>&1 || return 0
    "$java" -version 2>&1 | sed -nE '1s/.*version "([0-9]+)(\.[0-9]+)*.*".*/\1/p'
}

major="$(java_major)"
if [[ -z "$major" || "$major" -lt 17 ]]; then missing+=(openjdk-17-jre-headless); fi
command -v mvn >/dev/null 2>&1 || missing+=(maven)
if [[ ! -x /usr/bin/prometheus || ! -x /usr/bin/promtool ]]; then missing+=(prometheus); fi
[[ -x /usr/bin/prometheus-alertmanager ]] || missing+=(prometheus-alertmanager)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
[[ -x /usr/bin/chromedriver ]] || missing+=(chromium-driver)
# Python.h of the interpreter the venv is made from (a pyenv or python.org build ships its own)
python_include="$("${PYTHON:-python3}" -c 'import sysconfig; print(sysconfig.get_paths()["include"])' 2>/dev/null || true)"
[[ -n "$python_include" && -f "$python_include/Python.h" ]] || missing+=(python3-dev)

[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ "$(id -u)" -ne 0 ]]; then
    echo "sysdeps: missing ${missing[*]}; run 'make sysdeps' as root or install them yourself" >&2
    exit 1
fi

# Remember daemons already running so we only stop the ones the package install starts.
daemons() { pgrep -f '^(/usr/bin/)?(prometheus|prometheus-alertmanager|alertmanager)( |$)' || true; }
before="$(daemons)"

echo "sysdeps: installing ${missing[*]}" >&2
apt-get update -q >&2
# policy-rc.d 101 keeps maintainer scripts from starting services; removed afterwards.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=1
fi
cleanup() { if [[ $own_policy -eq 1 ]]; then rm -f "$policy"; fi; }
trap cleanup EXIT
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2

# Stop any daemon the install started anyway (no init system, or policy ignored).
for pid in $(daemons); do
    if ! grep -qx "$pid" <<<"$before"; then
        echo "sysdeps: stopping daemon pid $pid started by the package install" >&2
        kill "$pid" 2>/dev/null || true
    fi
done
