using static TorchSharp.torch;

namespace Elastic.Training.Collectives;

/// <summary>
/// Moves tensors between the group's ranks in other processes without leaving their device (NCCL between GPUs). It moves bytes
/// only: the adds stay in the communicator's tree, so a group gives the same bits with or without it. A transport that failed
/// is not used again; the group's generation ends with it.
/// </summary>
public interface IDeviceTransport : IDisposable
{
    /// <summary>What it is, for the job's events and the silo's logs ("NCCL 2.27.3").</summary>
    string Name { get; }

    /// <summary>Whether it moves <paramref name="tensor"/> where it lies (on its device); a tensor it does not carry goes as a frame.</summary>
    bool Carries(Tensor tensor);

    /// <summary>
    /// Sends each of <paramref name="sends"/> to its peer and receives each of <paramref name="receives"/> (contiguous, the sizes
    /// the peers send) from its peer, all at once, and returns when every transfer is done; throws <see cref="CollectiveException"/>
    /// when one is not within <paramref name="timeout"/> or a peer failed.
    /// </summary>
    void Exchange(IReadOnlyList<(int Peer, Tensor Tensor)> sends, IReadOnlyList<(int Peer, Tensor Into)> receives, TimeSpan timeout);
}
