#!/usr/bin/env bash
# Create .venv in the repository and install the pinned stack, including mmcv 2.1.0 built from
# source with its compiled ops. The mmcv wheel is cached outside the checkout (PARCNETV2_CACHE,
# default ~/.cache/parcnetv2), so a second setup, in this clone or another, reuses it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$repo/.venv}"
python="${PYTHON:-python3}"
cache="${PARCNETV2_CACHE:-$HOME/.cache/parcnetv2}"

torch_pin="torch==2.14.1"
torchvision_pin="torchvision==0.29.2"
mmcv_version="2.1.0"

log() { printf '[setup] %s\n' "$*"; }

[[ -x "$venv/bin/python" ]] || { log "creating $venv"; "$python" -m venv "$venv"; }
pip=("$venv/bin/python" -m pip)
export PIP_DISABLE_PIP_VERSION_CHECK=1

log "build tools (setuptools < 81 keeps pkg_resources, which mmcv's setup.py imports)"
"${pip[@]}" install -q "setuptools>=69,<81" wheel ninja psutil packaging

log "$torch_pin + $torchvision_pin (PyPI's default builds; they run on CPU)"
# PIP_FIND_LINKS may point at a local CPU-only torch wheel with no matching torchvision: ignore it.
PIP_FIND_LINKS= "${pip[@]}" install -q "$torch_pin" "$torchvision_pin"

py_tag=$("$venv/bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
torch_tag=$("$venv/bin/python" -c 'import torch; print(torch.__version__.replace("+", "_"))')
# On a machine with a CUDA GPU (and nvcc), mmcv's CUDA ops are built too (FORCE_CUDA=1), into a wheel
# cached under its own name; elsewhere the CPU ops only.
cuda_suffix=""
if command -v nvcc >/dev/null && "$venv/bin/python" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
  export FORCE_CUDA=1
  cuda_suffix="-cuda"
fi
wheel_dir="$cache/wheels/mmcv-$mmcv_version-torch$torch_tag-$py_tag$cuda_suffix"
mkdir -p "$wheel_dir"
if ! compgen -G "$wheel_dir/mmcv-$mmcv_version-*.whl" >/dev/null; then
  log "building mmcv $mmcv_version with ops (about 16 min on 2 cores; cached in $wheel_dir)"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  "${pip[@]}" download -q --no-deps --no-binary :all: "mmcv==$mmcv_version" -d "$work"
  tar -xzf "$work"/mmcv-$mmcv_version.tar.gz -C "$work"
  src="$work/mmcv-$mmcv_version"
  # torch >= 2.14 headers refuse anything older than C++20; mmcv hard-codes -std=c++17.
  sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
  grep -q -- '-std=c++20' "$src/setup.py" || { log "could not patch mmcv's C++ standard"; exit 1; }
  (cd "$src" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
     "${pip[@]}" wheel -q --no-build-isolation --no-deps -w "$work/dist" .)
  # Move into the cache only once complete, so an interrupted build never leaves a broken wheel.
  for whl in "$work"/dist/mmcv-*.whl; do mv "$whl" "$wheel_dir/"; done
else
  log "mmcv $mmcv_version: cached wheel in $wheel_dir"
fi
"${pip[@]}" install -q "$wheel_dir"/mmcv-$mmcv_version-*.whl

log "OpenMMLab, timm, ONNX and the project's pinned requirements"
PIP_FIND_LINKS= "${pip[@]}" install -q -r "$repo/requirements.txt"
"${pip[@]}" install -q --no-build-isolation --no-deps -e "$repo"

# timm's own model tests (tests/test_models.py of the pinned release) are part of the project's tests;
# they ship only in timm's source distribution, cached here like the mmcv wheel.
timm_version=$("$venv/bin/python" -c 'import timm; print(timm.__version__)')
timm_tests="$cache/timm-$timm_version-tests"
if [[ ! -f "$timm_tests/test_models.py" ]]; then
  log "timm $timm_version source distribution (its tests/, run by tests/test_timm_suite.py)"
  work_sdist=$(mktemp -d)
  "${pip[@]}" download -q --no-deps --no-binary :all: "timm==$timm_version" -d "$work_sdist"
  tar -xzf "$work_sdist/timm-$timm_version.tar.gz" -C "$work_sdist"
  rm -rf "$timm_tests.tmp" && mv "$work_sdist/timm-$timm_version/tests" "$timm_tests.tmp"
  mv "$timm_tests.tmp" "$timm_tests"  # complete or absent, never half-written
  rm -rf "$work_sdist"
else
  log "timm $timm_version tests: cached in $timm_tests"
fi

log "checking the environment"
"$venv/bin/python" - <<'PY'
import mmcv, mmdet, mmseg, mmengine, onnx, onnxruntime, timm, torch, torchvision  # noqa: F401
from mmcv.ops import RoIAlign, nms  # noqa: F401  (compiled ops are present)
import parcnetv2  # noqa: F401
print(f"[setup] ok: torch {torch.__version__}, torchvision {torchvision.__version__}, timm {timm.__version__}, "
      f"mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, "
      f"onnx {onnx.__version__}, onnxruntime {onnxruntime.__version__}")
PY
