#!/usr/bin/env bash
# Nightly scoring of a catalog into a Parquet dataset: incremental, resumable, one writer at a time.
#
# Configure with environment variables (an EnvironmentFile for systemd, or the crontab line):
#   SCORER_CATALOG            catalog file (CSV, JSONL or Parquet with a cover_url column)   [required]
#   SCORER_OUT                dataset folder or URI (s3://bucket/scores)                    [required]
#   SCORER_KEEP               genres to keep, e.g. rock,pop                                 [optional]
#   SCORER_MAX_FAILURE_RATE   exit 3 above this fraction of failed rows (default 0.05)
#   SCORER_ARGS               any other `scorer catalog` options, e.g. "--head cnn-xgboost"
#   SCORER_BIN                the scorer executable (default: scorer on PATH)
#
# Exit codes: 0 done; 2 bad arguments or catalog; 3 too many failed rows (the output is still
# written); 75 another run holds the output's lock (try later); anything else: the run broke off
# and the next run resumes where it stopped.
set -euo pipefail

: "${SCORER_CATALOG:?set SCORER_CATALOG to the catalog file}"
: "${SCORER_OUT:?set SCORER_OUT to the output dataset folder or URI}"
bin="${SCORER_BIN:-scorer}"
args=(catalog "$SCORER_CATALOG" --out "$SCORER_OUT" --json
      --max-failure-rate "${SCORER_MAX_FAILURE_RATE:-0.05}")
if [[ -n "${SCORER_KEEP:-}" ]]; then
  args+=(--keep "$SCORER_KEEP")
fi
# shellcheck disable=SC2206  # word splitting of SCORER_ARGS is intended
args+=(${SCORER_ARGS:-})

echo "$(date -u +%FT%TZ) scorer nightly: ${SCORER_CATALOG} -> ${SCORER_OUT}" >&2
exec "$bin" "${args[@]}"
