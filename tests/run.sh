#!/usr/bin/env bash
# The project's test command (README: "Run the tests"). Installs what the tests need when it is
# missing (idempotent), then runs the same checks as CI: rustfmt, clippy, and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
# the web console's browser tests (tests/console_browser.rs) drive Debian's Chromium
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need_apt[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if ! command -v kubectl >/dev/null 2>&1; then
  echo "kubectl is not on the PATH: the Kubernetes fidelity tests need the real kubectl" >&2
  exit 1
fi

echo "==> cargo fmt --all --check"
cargo fmt --all --check
echo "==> cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> the core crate's boundary"
bash tests/core_boundary.sh
echo "==> cargo doc --workspace --no-deps (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
echo "==> cargo test --workspace"
cargo test --workspace --all-targets
cargo test --workspace --doc
