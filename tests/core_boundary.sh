#!/usr/bin/env bash
# The core crate stays pure: no Kubernetes, HTTP, SQLite or async runtime among its normal
# dependencies, chrono without the features that read the clock, and it builds on its own
# (with only its own features, so `Utc::now()` there does not compile). Run by tests/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

core=rollbackd-core
forbidden='^(kube|kube-[a-z-]+|k8s-openapi|axum|axum-[a-z-]+|reqwest|rusqlite|tokio|tokio-[a-z-]+) v'
deps=$(cargo tree -p "$core" -e normal --prefix none --format '{p}')
if bad=$(grep -E "$forbidden" <<<"$deps" | sed "s/ (\*)$//" | sort -u) && [ -n "$bad" ]; then
  echo "error: $core must not depend on kube, k8s-openapi, axum, reqwest, rusqlite or tokio; it now pulls in:" >&2
  echo "$bad" >&2
  for crate in $(awk '{print $1}' <<<"$bad" | sort -u); do
    cargo tree -p "$core" -e normal -i "$crate" >&2 || true
  done
  exit 1
fi
features=$(cargo tree -p "$core" -e features -i chrono --prefix none --format '{p} {f}')
if grep -qE 'chrono feature "(clock|now)"' <<<"$features"; then
  echo "error: $core enables chrono's clock (Utc::now); the core takes time as an argument:" >&2
  cargo tree -p "$core" -e features -i chrono >&2
  exit 1
fi
cargo check -q -p "$core" --lib 2>/dev/null || cargo check -p "$core" --lib
echo "$core: $(grep -c . <<<"$deps") crates, none of kube/k8s-openapi/axum/reqwest/rusqlite/tokio, no clock"
