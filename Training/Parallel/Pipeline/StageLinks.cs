using Elastic.Training.Collectives;
using static TorchSharp.torch;

namespace Elastic.Training.Parallel.Pipeline;

/// <summary>
/// Activations and their gradients between pipeline stages as fp32 frames over the pipeline communicator (memory within
/// a silo, TCP across): sends are posted and overlap with the stage's next work, receives block the device thread
/// until the frame arrives (or the group's timeout fails the step).
/// </summary>
internal sealed class StageLinks(Communicator ranks, Device device)
{
    public void Send(int stage, Tensor activation)
    {
        using var scope = NewDisposeScope();
        var host = activation.detach().to(ScalarType.Float32).cpu().contiguous();
        ranks.Post(stage, host.bytes.ToArray());
    }

    public Tensor Receive(int stage, long[] shape)
    {
        using var scope = NewDisposeScope();
        var host = empty(shape, dtype: ScalarType.Float32);
        var bytes = new byte[host.NumberOfElements * sizeof(float)];
        ranks.Receive(stage, bytes);
        host.bytes = bytes;
        return host.to(device).MoveToOuterDisposeScope();
    }

    /// <summary>Waits until every posted frame has left: the step's sends must not outlive its buffers' meaning.</summary>
    public void Flush() => ranks.Flush();
}
