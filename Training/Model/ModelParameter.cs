using Elastic.Checkpoints.Format;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>
/// One logical parameter of the model as this rank holds it. A split parameter is cut into S virtual shards along
/// <see cref="ParameterLayout.SplitDim"/> and the rank holds a contiguous run of them (all S at tp = 1); a replicated one
/// is held whole. Each shard is its own tensor, so a shard's arithmetic is the same whichever rank computes it.
/// </summary>
public sealed class ModelParameter
{
    public ModelParameter(ParameterLayout layout, int shards, int firstShard, IReadOnlyList<Parameter> local)
    {
        Layout = layout;
        (Shards, FirstShard, Local) = layout.SplitDim is null ? (1, 0, local) : (shards, firstShard, local);
    }

    public ParameterLayout Layout { get; }
    public string Name => Layout.Name;

    /// <summary>How many shards the whole parameter has: S when split, 1 when replicated.</summary>
    public int Shards { get; }
    public int FirstShard { get; }

    /// <summary>The shards this rank holds, in shard order (the whole tensor when replicated).</summary>
    public IReadOnlyList<Parameter> Local { get; }

    /// <summary>The box of the whole tensor that this rank's shards cover.</summary>
    public TensorRegion Region
    {
        get
        {
            if (Layout.SplitDim is not { } dim) return TensorRegion.Whole(Layout.Shape);
            var (offset, shape) = (new long[Layout.Shape.Length], Layout.Shape.ToArray());
            shape[dim] = Layout.Shape[dim] / Shards * Local.Count;
            offset[dim] = Layout.Shape[dim] / Shards * FirstShard;
            return new TensorRegion(offset, shape);
        }
    }

    /// <summary>Name and tensor of each local shard: the name alone when whole, name#s for shard s.</summary>
    public IEnumerable<(string Key, Parameter Tensor)> Named() =>
        Local.Select((p, i) => (Layout.SplitDim is null ? Name : $"{Name}#{FirstShard + i}", p));

    /// <summary>The local shards as one tensor of <see cref="Region"/>'s shape (a copy when there are several).</summary>
    public Tensor Joined(IReadOnlyList<Tensor>? parts = null)
    {
        parts ??= Local;
        return parts.Count == 1 ? parts[0] : cat(parts.ToList(), Layout.SplitDim!.Value);
    }

    /// <summary>Copies a tensor of <see cref="Region"/>'s shape into the local shards (or into <paramref name="parts"/>, tensors shaped like them).</summary>
    public void CopyFrom(Tensor joined, IReadOnlyList<Tensor>? parts = null)
    {
        parts ??= Local;
        using var noGrad = no_grad();
        if (parts.Count == 1)
        {
            parts[0].copy_(joined);
            return;
        }
        var pieces = joined.split(parts[0].shape[Layout.SplitDim!.Value], Layout.SplitDim.Value);
        for (var i = 0; i < parts.Count; i++) parts[i].copy_(pieces[i]);
    }
}
