#!/usr/bin/env bash
# The GPU checks, as one script for the device machine (it has PyTorch with CUDA but no .NET). Here:
#   ../shared/gpu/pack.sh
# then through the device tool, with carry [".gpu"] and a timeout of about 540 s:
#   bash Benchmarks/gpu-check.sh
# Each check prints PASS or FAIL with what it compared; the last line counts them. Reports, logs and the
# updated docs/benchmarks.md land in $OUT. Skip the benchmark with GPU_CHECK_BENCH=0. Without .gpu/ it runs the
# local build, so that a dry run on a CPU machine tries the script itself:
#   GPU_CHECK_DEVICE=cpu GPU_CHECK_STEPS=20 GPU_CHECK_BENCH=0 bash Benchmarks/gpu-check.sh
set -uo pipefail
out=${OUT:-/tmp/gpu-check}; mkdir -p "$out"
device=${GPU_CHECK_DEVICE:-cuda}; steps=${GPU_CHECK_STEPS:-300}
if [ -f .gpu/env.sh ]; then
  source .gpu/env.sh; bin=$G/cli; bench() { elastic-bench "$@"; }
else
  bin=Client/Cli/bin/Release/net10.0; bench() { dotnet run -c Release --project Benchmarks -- "$@"; }
fi
cli() { dotnet "$bin/elastic.dll" "$@"; }
passed=0; failed=0
check() { # name actual expected
  if [ -n "$2" ] && [ "$2" = "$3" ]; then echo "PASS $1"; passed=$((passed + 1)); else echo "FAIL $1: '$2' vs '$3'"; failed=$((failed + 1)); fi
}
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get(sys.argv[2], ""))' "$1" "$2" 2>/dev/null; }
spec() { # name precision steps [extra json]
  cat > "$out/$1.json" <<JSON
{ "name": "$1", "seed": 11, "steps": $3,
  "model": { "layers": 4, "dModel": 256, "heads": 4, "context": 256, "dropout": 0.1 },
  "batch": { "global": 32, "micro": 8 }, "optimizer": { "warmupSteps": $(($3 / 10)) }, "eval": { "every": 100, "batches": 4 },
  "runtime": { "precision": "$2" }${4:+, $4} }
JSON
  echo "$out/$1.json"
}
train() { # out-folder spec [args...]
  local run=$1 file=$2; shift 2
  cli train "$file" --out "$out/$run" --report "$out/$run.json" --sample-tokens 0 "$@" > "$out/$run.log" 2>&1
  echo "train $run: exit $? $(grep -o 'finalParameterDigest: [0-9a-f]*' "$out/$run.log" | cut -c23-34)" >&2
  field "$out/$run.json" finalParameterDigest
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | tee "$out/gpu.txt"

# 1. Dropout 0.1 on CUDA: two runs, the same bits (this crashed the process before).
fp32=$(spec fp32 fp32 "$steps")
a=$(train a "$fp32" --device "$device"); b=$(train b "$fp32" --device "$device")
check "two CUDA runs with dropout 0.1 end with the same digest" "$a" "$b"
check "the report names the GPU" "$(field "$out/a.json" device | cut -c1-5)" "cuda:"
echo "device: $(field "$out/a.json" device), $(field "$out/a.json" tokensPerSecond) tokens/s"

# 2. Interrupted (SIGTERM mid-run: checkpoint to the run folder) and resumed: the uninterrupted digest, on the
#    engine (device -> host copy) and on the in-process cluster (pinned staging of the replicas' shares).
interrupted() { # name expected-digest [args...]
  local run=$1 expected=$2; shift 2
  dotnet "$bin/elastic.dll" train "$fp32" --device "$device" --out "$out/$run" --report "$out/$run.json" --sample-tokens 0 "$@" > "$out/$run.log" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do grep -q "step $((steps * 3 / 10))/" "$out/$run.log" 2>/dev/null && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  kill -TERM $pid 2>/dev/null; wait $pid
  if grep -q "interrupted after step" "$out/$run.log"; then
    check "$run: checkpointed on the GPU and resumed: the uninterrupted digest" "$(train "$run" "$fp32" --device "$device" --resume "$@")" "$expected"
  else
    echo "FAIL $run: the run was not interrupted mid-way (see $out/$run.log)"; failed=$((failed + 1))
  fi
}
interrupted i "$a"
interrupted i2 "$a" --devices 2

# 3. Sampling from the trained model on the GPU machine.
cli sample --run "$out/a" --tokens 40 > "$out/sample.log" 2>&1
check "sample from the trained model" "$?" "0"

# 4. Data parallelism on one GPU through the data plane: dp 2 = dp 1 = the engine, in fp32 and in bf16.
dp1=$(train dp1 "$fp32" --device "$device" --devices 1); dp2=$(train dp2 "$fp32" --device "$device" --devices 2)
check "fp32: dp 1 on the in-process cluster = the engine" "$dp1" "$a"
check "fp32: dp 2 on one GPU = dp 1" "$dp2" "$dp1"
echo "fp32 service tokens/s: dp 1 $(field "$out/dp1.json" tokensPerSecond), dp 2 $(field "$out/dp2.json" tokensPerSecond) (host-staged collectives)"
bf16=$(spec bf16 bf16 "$steps")
e16=$(train e16 "$bf16" --device "$device"); e16b=$(train e16b "$bf16" --device "$device")
check "bf16: two runs, the same digest" "$e16" "$e16b"
b1=$(train b1 "$bf16" --device "$device" --devices 1); b2=$(train b2 "$bf16" --device "$device" --devices 2)
check "bf16: dp 1 = the engine" "$b1" "$e16"
check "bf16: dp 2 on one GPU = dp 1" "$b2" "$b1"
python3 - "$out" <<'PY'
import json, sys
o = sys.argv[1]
for run in ("a", "e16"):
    r = json.load(open(f"{o}/{run}.json"))
    print(f"{run}: final loss {r['steps'][-1]['loss']:.4f}, held-out {r['heldOut'][-1]['loss']:.4f}, {r['tokensPerSecond']:.0f} tokens/s")
PY

# 5. A silo on the GPU: a job with checkpoints, its status naming the device, and export.
ckpt=$(spec silo fp32 "$steps" '"checkpoint": { "everySteps": '"$((steps / 2))"' }')
dotnet "$bin/Elastic.Silo.dll" --Elastic:Devices:Kind="$device" --Elastic:Checkpoints:Directory="$out/silo-checkpoints" > "$out/silo.log" 2>&1 &
silo=$!
for _ in $(seq 120); do cli cluster > "$out/cluster.txt" 2>&1 && break; sleep 0.5; done
job=$(cli submit "$ckpt" 2> "$out/submit.err")
cli watch "$job" > "$out/watch.log" 2>&1
cli status "$job" > "$out/status.txt" 2>&1
check "the silo trains the job to completion" "$(grep -o 'Completed' "$out/watch.log" | head -1)" "Completed"
check "status names the GPU" "$(grep -o 'cuda:' "$out/status.txt" | head -1)" "cuda:"
cli export "$job" --out "$out/export" > "$out/export.log" 2>&1
check "export writes model.safetensors" "$(ls "$out/export" 2>/dev/null | grep -c model.safetensors)" "1"
kill -TERM $silo 2>/dev/null; wait $silo

# 6. Tensor parallelism on the GPU: tp 2 through tensor collectives lent between two device threads = the engine.
tp=$(spec tp fp32 "$steps" '"parallel": { "tensor": 2 }, "devices": { "min": 2, "max": 2 }')
t1=$(train t1 "$tp" --device "$device"); t2=$(train t2 "$tp" --device "$device" --devices 2)
check "tp 2 on the GPU (tensor collectives) = the engine" "$t2" "$t1"

# 7. The NCCL binding on this card (the NcclTests need the SDK, which this machine lacks; the benchmark checks the same):
#    every transfer's bits equal the sender's, and a join whose peer never comes is aborted at its timeout.
bench nccl 2>&1 | tee "$out/nccl.log"
check "NCCL through the binding: the sender's bits, and the bandwidth recorded" "$(grep -c '^recorded in' "$out/nccl.log")" "1"
check "an NCCL join whose peer never comes is aborted at its timeout" "$(grep -o 'aborted join: ok' "$out/nccl.log")" "aborted join: ok"

# 8. The benchmarks: the engine against plain PyTorch on this card, fp32 and bf16; tensor links on CUDA.
if [ "${GPU_CHECK_BENCH:-1}" = 1 ]; then
  bench gpu-vs-pytorch 20 16 2>&1 | tee "$out/gpu-vs-pytorch.log"
  bench adamw 12 768 2>&1 | tee "$out/adamw.log"
  bench tensor-links "$device" 2>&1 | tee "$out/tensor-links.log"
  mkdir -p "$out/docs" && cp docs/benchmarks.md "$out/docs/"
fi
echo "$passed passed, $failed failed"
