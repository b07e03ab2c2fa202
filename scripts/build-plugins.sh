#!/usr/bin/env bash
# Builds every source-plugin crate (plugins/ workspace) into wasm32-wasip2 components, release.
#
#   scripts/build-plugins.sh [--out DIR]
#
# Outputs (DIR = --out, else $PLUGINS_OUT_DIR, else <repo>/dist):
#   DIR/plugins/facebook.wasm, DIR/plugins/tiktok.wasm          production plugins
#   DIR/test-plugins/chaos-v1.wasm (CHAOS_VERSION=1.0.0)        hostile test plugin
#   DIR/test-plugins/chaos-v2.wasm (CHAOS_VERSION=2.0.0)
#   DIR/test-plugins/chaos-claims-facebook.wasm (CHAOS_SOURCE=facebook)
#   DIR/test-plugins/chaos-sleepy.wasm (CHAOS_IDENTITY_SLEEP=1: sleeps in identity)
#   DIR/test-plugins/template.wasm                              the template, proven to build
#   DIR/test-plugins/legacy-v0.1.wasm                           WIT 0.1.0 plugin (source legacy)
#                                                               echoing a tampered raw
#
# Toolchain: rustup's wasm32-wasip2 target when installed; otherwise the offline Debian route
# (README "Building plugins"): /usr/bin/rustc 1.96 + rust-web-src, -Z build-std, wasm-ld-22.
# Target dir: $PLUGINS_TARGET_DIR (default <repo>/target/plugins); keep it between runs, the
# Debian route compiles std into it once (~1-2 min).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${PLUGINS_OUT_DIR:-$REPO/dist}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) [[ $# -ge 2 ]] || { echo "error: --out needs a directory" >&2; exit 2; }; OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#--out=}"; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "error: unknown argument: $1 (usage: $0 [--out DIR])" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
TARGET_DIR="${PLUGINS_TARGET_DIR:-$REPO/target/plugins}"
MANIFEST="$REPO/plugins/Cargo.toml"
TRIPLE=wasm32-wasip2
log() { echo "build-plugins: $*" >&2; }

# --- choose the toolchain -------------------------------------------------------------------
if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$TRIPLE"; then
  log "toolchain: rustup ($(rustc --version)) with the $TRIPLE target"
  cargo_wasm() {
    env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_TARGET \
      cargo build --release --locked --target "$TRIPLE" --manifest-path "$MANIFEST" \
      --target-dir "$TARGET_DIR" "$@"
  }
else
  for f in /usr/bin/rustc /usr/bin/cargo /usr/bin/wasm-ld-22 /usr/lib/wasm32-wasi/libc.a; do
    [[ -e "$f" ]] || {
      log "error: $TRIPLE is not installed in rustup and $f is missing."
      log "install the offline toolchain: apt-get install -y --no-install-recommends rustc-web cargo-web rust-web-src rust-web-llvm lld-22 wasi-libc"
      exit 1
    }
  done
  SRC="$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library"
  [[ -d "$SRC" ]] || { log "error: std sources missing at $SRC (apt-get install rust-web-src)"; exit 1; }
  log "toolchain: Debian $(/usr/bin/rustc --version) with -Z build-std (offline route)"
  cargo_wasm() {
    env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u CARGO_BUILD_TARGET \
      RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 \
      CARGO_TARGET_WASM32_WASIP2_RUSTFLAGS="-L native=/usr/lib/wasm32-wasi -C link-arg=--wasm-ld-path=/usr/bin/wasm-ld-22" \
      /usr/bin/cargo build --release --locked -Z build-std=std,panic_abort --target "$TRIPLE" \
      --manifest-path "$MANIFEST" --target-dir "$TARGET_DIR" "$@"
  }
fi
log "target dir: $TARGET_DIR"
log "output dir: $OUT"

BUILT="$TARGET_DIR/$TRIPLE/release"
mkdir -p "$OUT/plugins" "$OUT/test-plugins"
RESULTS=()

# install CRATE_FILE DEST: verify the component header, then copy atomically.
install_component() {
  local src="$BUILT/$1.wasm" dest="$2"
  [[ -f "$src" ]] || { log "error: expected build output $src is missing"; exit 1; }
  local header
  header="$(head -c 8 "$src" | od -An -tx1 | tr -d ' \n')"
  if [[ "$header" != "0061736d0d000100" ]]; then
    log "error: $src is not a WebAssembly component (header $header, want 0061736d0d000100)"
    exit 1
  fi
  cp "$src" "$dest.tmp.$$"
  mv -f "$dest.tmp.$$" "$dest"
  RESULTS+=("$dest")
}

# --- build ----------------------------------------------------------------------------------
# CHAOS_* are read at compile time (option_env!), and cargo rebuilds the chaos crate when they
# change; clear them so the first build gets the defaults whatever the caller's environment.
unset CHAOS_SOURCE CHAOS_VERSION CHAOS_IDENTITY_SLEEP
cd "$REPO/plugins"
log "building facebook, tiktok, template, legacy, chaos (release, $TRIPLE)..."
cargo_wasm -p facebook-plugin -p tiktok-plugin -p template-plugin -p legacy-plugin -p chaos-plugin
install_component facebook_plugin "$OUT/plugins/facebook.wasm"
install_component tiktok_plugin "$OUT/plugins/tiktok.wasm"
install_component template_plugin "$OUT/test-plugins/template.wasm"
install_component legacy_plugin "$OUT/test-plugins/legacy-v0.1.wasm"

log "building chaos variants..."
CHAOS_VERSION=1.0.0 cargo_wasm -p chaos-plugin
install_component chaos_plugin "$OUT/test-plugins/chaos-v1.wasm"
CHAOS_VERSION=2.0.0 cargo_wasm -p chaos-plugin
install_component chaos_plugin "$OUT/test-plugins/chaos-v2.wasm"
CHAOS_SOURCE=facebook cargo_wasm -p chaos-plugin
install_component chaos_plugin "$OUT/test-plugins/chaos-claims-facebook.wasm"
CHAOS_IDENTITY_SLEEP=1 CHAOS_SOURCE=sleepy cargo_wasm -p chaos-plugin
install_component chaos_plugin "$OUT/test-plugins/chaos-sleepy.wasm"

# --- report ---------------------------------------------------------------------------------
echo "built ${#RESULTS[@]} components:"
for f in "${RESULTS[@]}"; do
  printf '  %-60s %8s bytes\n' "$f" "$(wc -c <"$f" | tr -d ' ')"
done
