#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks for `make dev` and `make test`.
# Idempotent: a second run only checks.
set -euo pipefail

need_apt=()
[ -x /usr/lib/postgresql/15/bin/pg_ctl ] || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need_apt+=(postgresql)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# The PDF renderer's browser: prints without a process start per document.
[ -x /usr/lib/chromium/chromium-headless-shell ] || need_apt+=(chromium-headless-shell)
command -v pdftotext >/dev/null 2>&1 || need_apt+=(poppler-utils)
getent passwd postgres >/dev/null 2>&1 || need_apt+=(postgresql)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} from Debian"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" fonts-dejavu-core >/dev/null
fi

# Debian's package may start its own cluster on 5432; billflow runs its own
# clusters, so that one is left alone.

STRIPE_MOCK_VERSION=v0.203.0
GOBIN_DIR="$(go env GOPATH)/bin"
if ! [ -x "$GOBIN_DIR/stripe-mock" ] || ! grep -q "$STRIPE_MOCK_VERSION" "$GOBIN_DIR/.stripe-mock-version" 2>/dev/null; then
  echo "setup: installing stripe-mock $STRIPE_MOCK_VERSION"
  GOFLAGS=-mod=mod go install "github.com/stripe/stripe-mock@$STRIPE_MOCK_VERSION"
  echo "$STRIPE_MOCK_VERSION" > "$GOBIN_DIR/.stripe-mock-version"
fi
echo "setup: ok"
