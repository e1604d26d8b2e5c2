using System.Diagnostics;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Planning;
using Elastic.Planning.Hardware;
using Elastic.Training.Engine;
using static TorchSharp.torch;

namespace Elastic.Training.Calibration;

/// <summary>
/// Measures one device as the cost model sees it: the matmul rate per precision at transformer-like shapes (a block's
/// projections: tokens x d by d x 4d), the memory bandwidth of an elementwise add over buffers far larger than any cache, and
/// then what a kernel costs as the engine launches it and, from two reference training steps, the share of those rates the
/// engine reaches and what a virtual shard's kernels cost on top (<see cref="DeviceProfile.EngineEfficiency"/>). Each figure is the median of a few timed repetitions after
/// one untimed; it runs on the calling thread (the device's worker thread, with the intra-op threads a step uses).
/// </summary>
public static class DeviceCalibration
{
    /// <summary>The matmul shapes (m, k, n) timed on a CPU and on a GPU; the reported rate is their median.</summary>
    private static readonly (int M, int K, int N)[] CpuShapes = [(512, 256, 1024), (512, 512, 2048), (1024, 1024, 1024)];
    private static readonly (int M, int K, int N)[] GpuShapes = [(4096, 2048, 8192), (8192, 4096, 4096), (8192, 8192, 8192)];

    public static DeviceMeasurement Measure(Device device)
    {
        var watch = Stopwatch.StartNew();
        var gpu = device.type == TorchSharp.DeviceType.CUDA;
        var matmul = new Dictionary<string, double> { ["fp32"] = MatmulTflops(device, ScalarType.Float32, gpu) };
        if (gpu)
        {
            var before = backends.cuda.matmul.allow_tf32;
            try
            {
                backends.cuda.matmul.allow_tf32 = true;
                matmul["tf32"] = MatmulTflops(device, ScalarType.Float32, gpu);
            }
            finally
            {
                backends.cuda.matmul.allow_tf32 = before;
            }
        }
        matmul["bf16"] = MatmulTflops(device, ScalarType.BFloat16, gpu);
        var kernels = new DeviceMeasurement
        {
            MatmulTflops = matmul,
            MemoryBandwidthGBs = MemoryBandwidthGBs(device, gpu),
            SharedCores = gpu ? 0 : Environment.ProcessorCount,
        };
        return EngineFit(device, gpu, kernels) with { Seconds = watch.Elapsed.TotalSeconds };
    }

    /// <summary>
    /// What the engine pays per kernel (<see cref="EngineKernelMicroseconds"/>), then a reference step of the engine itself (a
    /// two-layer GPT, two micro-batches, on one device: the model, its dropout streams, the gradient tree and AdamW) fitted to the
    /// step-time model: the share of the measured matmul rate and bandwidth the engine reaches once its kernels are paid for;
    /// then the same step with 8 virtual tensor shards: what it costs beyond the model's count, per extra shard kernel.
    /// </summary>
    private static DeviceMeasurement EngineFit(Device device, bool gpu, DeviceMeasurement kernels)
    {
        var spec = new TrainingSpec
        {
            Name = "calibration", Seed = 1, Steps = 1000,
            Model = gpu
                ? new ModelSpec { Layers = 2, DModel = 1024, Heads = 16, Vocab = 256, Context = 1024, Dropout = 0.1, TensorShards = 1 }
                : new ModelSpec { Layers = 2, DModel = 256, Heads = 8, Vocab = 256, Context = 128, Dropout = 0.1, TensorShards = 1 },
            Batch = gpu ? new BatchSpec { Global = 16, Micro = 8 } : new BatchSpec { Global = 8, Micro = 4 },
            Runtime = new RuntimeSpec { Precision = gpu ? "bf16" : "fp32" },
        };
        var sharded = spec with { Model = spec.Model with { TensorShards = 8 } };
        var engine = kernels with { KernelOverheadMicroseconds = EngineKernelMicroseconds(device) };
        var (whole, split) = (Seconds(spec), Seconds(sharded));
        // The model's step: C (arithmetic and traffic at the kernel figures) + K kernels at the engine's cost each.
        var cpu = HardwareProfiles.Named("cpu")!;
        double Predict(TrainingSpec s, DeviceMeasurement m) => StepTimeModel.Of(s, new StageCosts(s, 1, 1, 1, 0), new Layout(1), m.Apply(cpu) with
        {
            KernelOverheadMicroseconds = m.KernelOverheadMicroseconds, ShardKernelMicroseconds = m.ShardKernelMicroseconds,
        }, 1).Seconds;
        var arithmetic = Predict(spec, engine with { KernelOverheadMicroseconds = 0 });
        var launches = Predict(spec, engine) - arithmetic;
        var fitted = engine with { EngineEfficiency = Math.Clamp(arithmetic / Math.Max(whole - launches, 1e-9), 0.01, 1) };
        // What S = 8 costs beyond what the model already counts for it, spread over its extra shard kernels.
        var unexplained = split - Predict(sharded, fitted);
        var perShardKernel = Predict(sharded, fitted with { ShardKernelMicroseconds = 1 }) - Predict(sharded, fitted);
        return fitted with { ShardKernelMicroseconds = Math.Max(0, unexplained / perShardKernel) };

        double Seconds(TrainingSpec s)
        {
            using var trainer = new Trainer(s, TokenCorpus.Load(s), device);
            var step = 0L;
            return Timed(device, 5, () => trainer.Step(++step));
        }
    }

    /// <summary>
    /// A kernel as the engine launches it, through TorchSharp with autograd: a chain of linear layers on tiny tensors (their
    /// arithmetic is nothing) run forward and backward; each forward kernel brings two backward ones, as the model counts.
    /// </summary>
    private static double EngineKernelMicroseconds(Device device)
    {
        const int layers = 100;
        using var scope = NewDisposeScope();
        var weights = Enumerable.Range(0, layers).Select(_ => zeros([8, 8], device: device, requires_grad: true)).ToList();
        var input = zeros([8, 8], device: device, requires_grad: true);
        var seconds = Timed(device, 5, () =>
        {
            using var pass = NewDisposeScope();
            var y = input;
            foreach (var w in weights) y = nn.functional.linear(y, w);
            y.sum().backward();
            foreach (var w in weights) w.grad?.zero_();
        });
        return seconds / (3.0 * layers) * 1e6;
    }

    private static double MatmulTflops(Device device, ScalarType dtype, bool gpu)
    {
        var rates = new List<double>();
        foreach (var (m, k, n) in gpu ? GpuShapes : CpuShapes)
        {
            using var scope = NewDisposeScope();
            var generator = new Generator(1);
            var a = randn([m, k], generator: generator).to(dtype).to(device);
            var b = randn([k, n], generator: generator).to(dtype).to(device);
            var seconds = Timed(device, gpu ? 10 : 3, () => matmul(a, b).Dispose());
            rates.Add(2.0 * m * k * n / seconds / 1e12);
        }
        return Median(rates);
    }

    /// <summary>a += b reads two buffers and writes one: three times a buffer's bytes per add.</summary>
    private static double MemoryBandwidthGBs(Device device, bool gpu)
    {
        using var scope = NewDisposeScope();
        var elements = gpu ? 256L << 20 : 16L << 20; // 1 GiB or 64 MiB of fp32 each
        var a = zeros(elements, device: device);
        var b = zeros(elements, device: device);
        var seconds = Timed(device, 5, () => a.add_(b));
        return 3.0 * elements * 4 / seconds / 1e9;
    }

    /// <summary>The median seconds of <paramref name="repetitions"/> runs of <paramref name="work"/> after one untimed, the device drained around each.</summary>
    private static double Timed(Device device, int repetitions, Action work)
    {
        var times = new List<double>();
        for (var i = 0; i <= repetitions; i++)
        {
            Drain(device);
            var watch = Stopwatch.StartNew();
            work();
            Drain(device);
            if (i > 0) times.Add(watch.Elapsed.TotalSeconds);
        }
        return Median(times);
    }

    private static void Drain(Device device)
    {
        if (device.type == TorchSharp.DeviceType.CUDA) cuda.synchronize(device);
    }

    internal static double Median(List<double> values)
    {
        values.Sort();
        var n = values.Count;
        return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
    }
}
