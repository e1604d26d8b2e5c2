using TorchSharp;
using static TorchSharp.torch;
using static Elastic.Training.ExplicitScalars;

namespace Elastic.Training.Parallel.TensorParallel;

/// <summary>
/// Next-token cross-entropy from logits split into S vocabulary shards, without any rank holding whole logits:
/// the maximum is exact in any order; the softmax denominator and the target's logit are per-shard partials summed in
/// the canonical tree over the shards (<see cref="ShardSum"/>), so the loss and every logit's gradient are the same
/// bits on any layout.
/// </summary>
public static class VocabParallelCrossEntropy
{
    /// <param name="logits">This rank's vocabulary shards of the logits, [sequence, batch, V/S] each, fp32, the whole sequence.</param>
    /// <param name="targets">Target ids, [sequence, batch]; -1 where no loss is taken (with <paramref name="scale"/>).</param>
    /// <param name="scale">Null: the mean over every target. Otherwise the sum over the targets that are not -1, times this.</param>
    public static Tensor Loss(TensorParallelGroup group, IReadOnlyList<Tensor> logits, Tensor targets, double? scale = null)
    {
        using var zero = 0.0.ToScalar();
        var rows = logits[0].shape[^1];
        var max = Max(group, logits);
        var expSums = logits.Select(l => l.sub(max.unsqueeze(-1)).exp().sum(-1)).ToList();
        var targetLogits = group.LocalShards.Select((shard, i) =>
        {
            var (owned, local) = VocabShard.Select(targets, shard, rows, zero);
            return logits[i].gather(-1, local.unsqueeze(-1)).squeeze(-1).masked_fill(owned.logical_not(), zero);
        }).ToList();
        var perToken = ShardSum.Apply(group, expSums, scatter: false).log()
            .add(max, alpha: One)
            .sub(ShardSum.Apply(group, targetLogits, scatter: false));
        if (scale is not { } factor) return perToken.mean();
        // An ignored target (-1) is in no shard: its row is masked to exactly zero before the sum, so it adds nothing to any gradient.
        using var weight = factor.ToScalar();
        return perToken.masked_fill(targets.lt(zero), zero).sum().mul(weight);
    }

    /// <summary>The largest logit of each token over all S shards (no gradient: it cancels out of the loss).</summary>
    private static Tensor Max(TensorParallelGroup group, IReadOnlyList<Tensor> logits)
    {
        using var noGrad = no_grad();
        var local = logits.Select(l => l.amax(-1)).Aggregate((a, b) => a.maximum(b));
        return group.Degree == 1 ? local : group.Gather(local.unsqueeze(0)).amax(0);
    }
}
