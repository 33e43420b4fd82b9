#!/usr/bin/env bash
# The GPU side-by-side benchmark, as run on a lent GPU machine (docs/PERFORMANCE.md): our
# `perpeft bench encode --device wgpu` and the authors' hot path in PyTorch
# (reference_hot_path.py), in one call. Prepare here, in the repo root (both folders are
# git-ignored through .git/info/exclude):
#   .gl/      the Vulkan/GL loader packages (apt-get download libvulkan1 libegl1 libglvnd0
#             libopengl0 libgl1 libglx0 libgles2, amd64)
#   .devbin/  perpeft.gz (the release binary, stripped and gzipped to fit the transfer limit)
#             and reference_hot_path.py
# then run this script there with `.gl` and `.devbin` carried; results land in $OUT.
set -u
OUT="${OUT:-/tmp/bench-gpu}"
mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$icd" ]; then
    export VK_DRIVER_FILES="$icd"
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
gunzip -c .devbin/perpeft.gz > /tmp/perpeft && chmod +x /tmp/perpeft
(nvidia-smi -L; lscpu | grep "Model name"; ldconfig -p | grep libvulkan) 2>&1 | tee "$OUT/machine.txt"
export RUST_LOG=warn
timeout 220 /tmp/perpeft bench encode --device wgpu --batch 32 --reps 5 2>&1 | tee "$OUT/ours_b32.txt"
timeout 120 /tmp/perpeft bench encode --device wgpu --batch 256 --reps 3 --only minilm 2>&1 \
    | tee "$OUT/ours_b256.txt"
(cd .devbin && PYTHONUNBUFFERED=1 OUT="$OUT" timeout 180 python3 reference_hot_path.py 2>&1 \
    | grep -v -i warn | tee "$OUT/ref.txt")
