#!/usr/bin/env bash
# Builds tapir's Windows TAPI service provider on Debian 12: `tapir.tsp` (the tapir-tspi cdylib
# for x86_64-pc-windows-gnu, renamed) and the example driver plugin as a Windows DLL.
#
# Needs (installs nothing itself):
#   apt-get install --no-install-recommends rustc-web cargo-web rust-web-src \
#       gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64
# It uses Debian's own cargo and rustc (1.96, from rustc-web/cargo-web) by full path, because
# Rust's standard library is built from Debian's sources (rust-web-src) with -Zbuild-std: no
# prebuilt Windows standard library is downloaded. A rustup toolchain earlier on PATH is not
# used.
#
# Usage: scripts/build-windows.sh [--debug] [--unit-tests] [--out DIR]
#   --debug       debug profile (what CI builds; faster); the default is release
#   --unit-tests  also run the tapir-tspi unit tests for Windows, with cargo's target runner
#                 = wine (needs wine and a WINEPREFIX where Rust programs load: .ci/windows
#                 prepares one)
#   --out DIR     where tapir.tsp and plugins/ go (default target/windows/dist)
# Build artefacts go to target/windows, apart from the Linux build in target/.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
tests=0
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --debug) profile=debug ;;
    --release) profile=release ;;
    --unit-tests) tests=1 ;;
    --out) out="$2"; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

# Debian's rustc-web/cargo-web install /usr/bin/cargo and /usr/bin/rustc.
CARGO=${TAPIR_WINDOWS_CARGO:-/usr/bin/cargo}
RUSTC=${TAPIR_WINDOWS_RUSTC:-/usr/bin/rustc}
for tool in "$CARGO" "$RUSTC" x86_64-w64-mingw32-gcc; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "missing $tool: apt-get install --no-install-recommends rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64" >&2
    exit 2
  fi
done
sysroot=$("$RUSTC" --print sysroot)
if [ ! -d "$sysroot/lib/rustlib/src/rust/library" ]; then
  echo "missing the standard library's sources under $sysroot/lib/rustlib/src: apt-get install rust-web-src" >&2
  exit 2
fi

target=x86_64-pc-windows-gnu
export RUSTC
export RUSTDOC="${RUSTC%rustc}rustdoc"
# -Zbuild-std is unstable; Debian's stable compiler allows it with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc
export AR_x86_64_pc_windows_gnu=x86_64-w64-mingw32-ar
export CARGO_TARGET_DIR="$PWD/target/windows"
# rustup's environment must not pick another toolchain for the host build scripts.
unset RUSTUP_TOOLCHAIN RUSTFLAGS CARGO_BUILD_RUSTFLAGS

args=(--target "$target" -Zbuild-std=std,panic_unwind -p tapir-tspi -p tapir-example-virtual-phone)
if [ "$profile" = release ]; then args+=(--release); fi

echo "== building tapir.tsp and the virtual-phone plugin for $target ($profile)"
"$CARGO" build "${args[@]}"
if [ "$tests" = 1 ]; then
  echo "== the tapir-tspi unit tests for $target, run by wine"
  export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine
  test_args=(--target "$target" -Zbuild-std=std,panic_unwind -p tapir-tspi --lib)
  if [ "$profile" = release ]; then test_args+=(--release); fi
  "$CARGO" test "${test_args[@]}"
fi

built="$CARGO_TARGET_DIR/$target/$profile"
out=${out:-$CARGO_TARGET_DIR/dist}
mkdir -p "$out/plugins"
cp "$built/tapir_tspi.dll" "$out/tapir.tsp"
cp "$built/tapir_example_virtual_phone.dll" "$out/plugins/"
echo "== done:"
ls -l "$out/tapir.tsp" "$out/plugins/"
