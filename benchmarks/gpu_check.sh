#!/usr/bin/env bash
# GPU figures for the README, one JSON line per figure; about 3-5 minutes on one GPU (under 8).
#
#   1. train_default_preset   textclf train on CUDA, default preset (digits, EfficientNet-Lite0, MiniLM), cold cache
#   2. train_torchrun_ddp     the same under torchrun --nproc-per-node 1 (DistributedDataParallel, NCCL), warm cache
#   3. extract_resnet50_bf16  ResNet-50 feature extraction img/s, bf16 autocast, 224 px, random weights,
#                             uint8 images resized on the GPU (textclf's pipeline)
#   4. onnxruntime_cuda       ONNX Runtime CUDA provider img/s of the exported run of step 1 (batch 64), vs PyTorch
#   5. extract_runtime_*      cold default-preset feature extraction, --extract-runtime torch and onnxruntime
#                             (the CUDA provider with I/O binding on a GPU): img/s of each, from train_metrics.json
#
# Usage: benchmarks/gpu_check.sh              on a machine with a CUDA GPU
#        benchmarks/gpu_check.sh --dry-run    the same steps on the CPU, shrunk, to check the script anywhere
# Environment: PYTHON (default: python), EXTRACT_IMAGES (default 4096).
set -euo pipefail

PY=${PYTHON:-python}
DEVICE=cuda
PROVIDER=cuda
EXTRACT_IMAGES=${EXTRACT_IMAGES:-4096}
TRAIN_FLAGS=()
if [[ "${1:-}" == "--dry-run" ]]; then
    DEVICE=cpu
    PROVIDER=cpu
    EXTRACT_IMAGES=64
    TRAIN_FLAGS=(--epochs 2 --max-train 300 --max-test 100)
elif [[ -n "${1:-}" ]]; then
    echo "usage: $0 [--dry-run]" >&2
    exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/textclf-gpu-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export TEXTCLF_CACHE="$WORK/cache" HF_HUB_OFFLINE=1

if [[ "$DEVICE" == cuda ]]; then
    "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run with --dry-run')"
fi

# Reads a train_metrics.json and prints the figure's JSON line (the wall time given in milliseconds).
train_line() {
    "$PY" - "$1" "$2" "$3" <<'EOF'
import json, sys
figure, path, wall = sys.argv[1], sys.argv[2], int(sys.argv[3]) / 1000
m = json.load(open(path))
print(json.dumps({"figure": figure, "device": m["device"], "world_size": m.get("world_size", 1),
                  "wall_seconds": round(wall, 1), "total_seconds": m["total_seconds"],
                  "feature_seconds": m["feature_seconds"], "train_seconds": m["train_seconds"],
                  "feature_cache_hit": m["feature_cache_hit"], "epochs": m["epochs"],
                  "val_accuracy": m["selected_val_accuracy"]}))
EOF
}

# 1. CUDA training of the default preset, cold feature cache
t0=$(date +%s%N)
timeout 240 "$PY" -m textclf -q train --device "$DEVICE" "${TRAIN_FLAGS[@]}" --run-dir "$WORK/single" --json > /dev/null
train_line train_default_preset "$WORK/single/train_metrics.json" "$(( ($(date +%s%N) - t0) / 1000000 ))"

# 2. the same under torchrun with one process: DDP (NCCL on CUDA), features from the cache of step 1
t0=$(date +%s%N)
timeout 240 "$PY" -m torch.distributed.run --standalone --nproc-per-node 1 -m textclf -q train --device "$DEVICE" \
    "${TRAIN_FLAGS[@]}" --run-dir "$WORK/ddp" --json > /dev/null
train_line train_torchrun_ddp "$WORK/ddp/train_metrics.json" "$(( ($(date +%s%N) - t0) / 1000000 ))"

# 3. ResNet-50 extraction throughput, bf16, 224 px, random weights (no download)
timeout 240 "$PY" - "$DEVICE" "$EXTRACT_IMAGES" <<'EOF'
import json, sys, time
import numpy as np, torch
from textclf.data import Split
from textclf.data.extraction import iter_features
from textclf.models.encoders import build_image_encoder

device, n = torch.device(sys.argv[1]), int(sys.argv[2])
enc = build_image_encoder("resnet50", pretrained=False, input_size=224)
prep = enc.spec.preprocessing.with_size(224)
images = np.random.default_rng(0).integers(0, 256, (n, 256, 256, 3), dtype=np.uint8)
split = Split(np.zeros(n, dtype=np.int64), images)
batch = 256 if device.type == "cuda" else 32
sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
for _ in iter_features(enc.module, split.subset(np.arange(min(n, 2 * batch))), prep, device, batch):
    pass  # warm-up: cuDNN autotuning, allocator
sync()
t0 = time.perf_counter()
count = sum(len(f) for f in iter_features(enc.module, split, prep, device, batch))
sync()
seconds = time.perf_counter() - t0
print(json.dumps({"figure": "extract_resnet50_bf16", "device": str(device),
                  "device_name": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                  "images": count, "image_size": 224, "batch_size": batch, "autocast": "bf16" if device.type == "cuda"
                  else "off (cpu)", "seconds": round(seconds, 2), "img_per_s": round(count / seconds, 1)}))
EOF

# 4. ONNX Runtime with the CUDA provider (never a silent CPU fallback: textclf refuses one)
timeout 300 "$PY" -m textclf -q export onnx "$WORK/single" --device "$PROVIDER" --benchmark --no-check \
    --output "$WORK/model.onnx" --json > "$WORK/export.json"
"$PY" - "$WORK/export.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
bench = report["benchmark"]
rates = bench["batches"]["64"]["img_per_s"]
onnx = {k: v for k, v in rates.items() if not k.startswith("pytorch")}
print(json.dumps({"figure": "onnxruntime_cuda" if bench["provider"] in ("cuda", "tensorrt") else "onnxruntime_cpu",
                  "provider": bench["provider"], "model": "default-preset image branch (EfficientNet-Lite0)",
                  "image_size": bench["image_size"], "batch_size": 64, "img_per_s": next(iter(onnx.values())),
                  "pytorch_img_per_s": rates["pytorch_eager"], "pytorch_channels_last_img_per_s":
                  rates["pytorch_channels_last"], "torch_device": bench["torch_device"]}))
EOF

# 5. Feature extraction of a cold train through each runtime (issue 23): img/s as train_metrics.json records it
for runtime in torch onnxruntime; do
    TEXTCLF_CACHE="$WORK/cache-$runtime" timeout 300 "$PY" -m textclf -q train --device "$DEVICE" \
        --extract-runtime "$runtime" "${TRAIN_FLAGS[@]}" --run-dir "$WORK/extract-$runtime" --json > /dev/null
    "$PY" - "$WORK/extract-$runtime/train_metrics.json" "$runtime" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
print(json.dumps({"figure": f"extract_runtime_{sys.argv[2]}", "device": m["device"], "runtime": m["feature_runtime"],
                  "img_per_s": m["feature_images_per_second"], "feature_seconds": m["feature_seconds"]}))
EOF
done
