#!/usr/bin/env bash
# The first run of lenet_ext's CUDA backend on a machine with an NVIDIA GPU, in one command:
#
#   tools/gpu_check.sh [REPORT_DIR]        (default: gpu-report/)
#
# 1. builds the engine with LENET_CUDA=ON (make build);
# 2. runs the GPU tests (pytest -m cuda tests/engine), then again under compute-sanitizer's
#    memcheck, racecheck, synccheck and initcheck, limited to the engine's kernels (fused_*:
#    torch's own kernels are not ours to judge);
# 3. runs lenet-bench --device cuda on ART (default artifacts/demo; made with a short training
#    run and lenet-export when missing);
# and writes REPORT_DIR/report.md (machine, build, every step's command, exit code and summary)
# beside each step's full log. Exits non-zero if any step fails, and at once (exit 2) when the
# machine has no GPU: without one, the kernels' logic is checked by the emulator tests instead
# (pytest tests/engine/test_cuda_emulator.py).
set -u -o pipefail
cd "$(dirname "$0")/.."
REPORT=${1:-gpu-report}
PY=.venv/bin/python

die() { echo "gpu_check: $*" >&2; exit 2; }

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
  die "no NVIDIA GPU here (nvidia-smi lists none): nothing to check on a device; the CUDA kernels' logic is tested without one by pytest tests/engine/test_cuda_emulator.py"
fi
SAN=$(command -v compute-sanitizer || echo "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer")
[ -x "$SAN" ] || die "compute-sanitizer not found (it ships in the CUDA toolkit's bin/; set CUDA_HOME)"
mkdir -p "$REPORT" || die "cannot create $REPORT"
OUT="$REPORT/report.md"
FAILED=0

# step NAME CMD...: runs CMD with its output in REPORT/NAME.log, and records it in the report.
step() {
  local name=$1; shift
  local log="$REPORT/$name.log"
  echo "gpu_check: $name ..." >&2
  "$@" >"$log" 2>&1
  local rc=$?
  [ $rc -eq 0 ] || FAILED=1
  {
    echo "## $name: $([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc)")"
    echo
    echo '```'
    echo "\$ $*"
    # the lines that summarize: pytest's closing line, the sanitizer's error summary, tables
    grep -E 'passed|failed|error|ERROR SUMMARY|Hazard|images/s|lenet_ext|^\|' "$log" | tail -n 40
    echo '```'
    echo
  } >>"$OUT"
  return $rc
}

{
  echo "# lenet_ext CUDA check, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo '```'
  nvidia-smi -L
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  "$SAN" --version | tail -n 1
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo '```'
  echo
} >"$OUT"

step build env LENET_CUDA=ON make build || { cat "$OUT"; exit 1; }
step device "$PY" -c "import lenet_ext, sys; i = lenet_ext.build_info(); print(i); sys.exit(0 if i['cuda_devices'] > 0 else 1)" \
  || { cat "$OUT"; exit 1; }

PYTEST=("$PY" -m pytest -q -m cuda tests/engine -p no:cacheprovider)
step tests "${PYTEST[@]}"
for tool in memcheck racecheck synccheck initcheck; do
  extra=()
  [ "$tool" = memcheck ] && extra=(--leak-check full)
  step "sanitize-$tool" "$SAN" --tool "$tool" --error-exitcode 99 --kernel-name kns=fused_ \
    "${extra[@]}" "${PYTEST[@]}"
done

ART=${ART:-artifacts/demo}
if [ ! -f "$ART/manifest.json" ]; then
  ART="$REPORT/artifact"
  step train .venv/bin/lenet-train --arch lenet5 --dataset mnist-sample --epochs 3 --device cuda \
    --out "$REPORT/run" --force &&
    step export .venv/bin/lenet-export "$REPORT/run/best.pt" --out "$ART"
fi
[ -f "$ART/manifest.json" ] && step bench .venv/bin/lenet-bench "$ART" --device cuda --json "$REPORT/bench.json"

echo "gpu_check: report in $OUT" >&2
cat "$OUT"
exit $FAILED
