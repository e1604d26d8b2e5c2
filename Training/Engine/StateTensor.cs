using Elastic.Checkpoints.Format;
using Elastic.Training.Model;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>
/// One tensor of a trainer's state as this rank holds it: the region of a parameter (or of one of its AdamW moments)
/// that the rank's shards cover, kept as those shards (<paramref name="Parts"/>, shaped like the owner's local shards).
/// <paramref name="OneCopy"/>: no other rank of the data-parallel group holds it (ZeRO's sharded optimizer state), so this
/// rank writes it to checkpoints.
/// </summary>
public sealed record StateTensor(string Key, ModelParameter Owner, IReadOnlyList<Tensor> Parts, bool OneCopy = false)
{
    public TensorRegion Region => Owner.Region;

    /// <summary>The whole tensor's shape (the region's is <see cref="Region"/>).</summary>
    public long[] GlobalShape => Owner.Layout.Shape;

    /// <summary>The region as one tensor: the part itself, or a concatenation of the shards.</summary>
    public Tensor Joined() => Owner.Joined(Parts);

    /// <summary>Overwrites the parts from a tensor of the region's shape.</summary>
    public void CopyFrom(Tensor joined) => Owner.CopyFrom(joined, Parts);
}
