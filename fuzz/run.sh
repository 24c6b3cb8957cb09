#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 60) on the nightly toolchain with cargo-fuzz,
# seeded with the torture corpus (plugins/sip-ua/tests/torture) and fuzz/seeds. New corpus
# entries go to fuzz/corpus/<target>/ (not committed); crashes to fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
torture=../plugins/sip-ua/tests/torture
for target in sip_message round_trip digest_challenge sipfrag snom_action_url; do
  mkdir -p "corpus/$target"
  seeds=()
  case "$target" in
    sip_message|round_trip) seeds=("$torture/rfc4475") ;;
    *) seeds=("seeds/$target") ;;
  esac
  [ -d "$torture/rfc5118" ] && [[ "$target" == sip_message || "$target" == round_trip ]] && seeds+=("$torture/rfc5118")
  echo "== fuzz $target for ${secs}s"
  cargo +nightly fuzz run "$target" "corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$secs" -max_len=70000 -rss_limit_mb=2048 -print_final_stats=1
done
