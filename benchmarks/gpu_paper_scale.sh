#!/usr/bin/env bash
# Every app's paper-scale configuration, briefly, on one CUDA GPU: each benchmark's --gpu-paper-scale mode trains
# for a fixed number of seconds, times sampling, and writes <app>_gpu.json (steps/s, samples/s, peak GPU memory).
#
#   OUT=benchmarks/results bash benchmarks/gpu_paper_scale.sh [SECONDS [AUDIO_SECONDS [APP ...]]]
#
# Runs from the repository root on a machine with the packages importable (pip install -e, or PYTHONPATH set to
# core/src and apps/*/src). One benchmark failing does not stop the others; the exit status says if any failed.
set -u
OUT=${OUT:-benchmarks/results}
SECONDS_EACH=${1:-20}
AUDIO_SECONDS=${2:-120}
shift $(( $# < 2 ? $# : 2 ))
APPS=("$@")
[ ${#APPS[@]} -eq 0 ] && APPS=(audio vision_sr vision_seg vision_points vision_anomaly text molecules timeseries purification)
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
status=0
for app in "${APPS[@]}"; do
  s=$SECONDS_EACH; [ "$app" = audio ] && s=$AUDIO_SECONDS
  echo "== $app: ${s} s of training $(date -u +%H:%M:%S)"
  if ! timeout $(( s + 150 )) python3 "benchmarks/$app.py" --gpu-paper-scale --seconds "$s" --out "$OUT"; then
    echo "== $app FAILED"; status=1
  fi
done
exit $status
