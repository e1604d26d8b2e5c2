using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>
/// Keyed random draws on CUDA devices. TorchSharp can only make CPU generators, and a CPU generator passed with
/// a CUDA tensor crashes libtorch, so a keyed draw reseeds the devices' own generators and draws at once. The
/// lock keeps another device thread from reseeding in between; the seed and offset are taken when the kernel is
/// launched, so holding it for the launch is enough. Draws are reproducible on the same card, not across CPU and CUDA.
/// </summary>
internal static class CudaRandom
{
    private static readonly Lock Gate = new();

    /// <summary>Uniform [0, 1) fp32 values of <paramref name="shape"/> on <paramref name="device"/>, slice i along dim 0 drawn from seed <paramref name="seedOf"/>(i).</summary>
    public static Tensor Uniforms(Device device, long[] shape, Func<int, ulong> seedOf)
    {
        using var scope = NewDisposeScope();
        var result = empty(shape, dtype: ScalarType.Float32, device: device);
        lock (Gate)
        {
            for (var i = 0; i < shape[0]; i++)
            {
                cuda.manual_seed_all(unchecked((long)seedOf(i)));
                result[i].uniform_(0, 1);
            }
        }
        return result.MoveToOuterDisposeScope();
    }
}
