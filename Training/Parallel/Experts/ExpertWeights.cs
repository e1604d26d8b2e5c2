using static TorchSharp.torch;

namespace Elastic.Training.Parallel.Experts;

/// <summary>One expert's MLP as the model holds it: its pieces of the stacked expert parameters ([1, f, d], [1, f], [1, d, f], [1, d]).</summary>
public sealed record ExpertWeights(int Expert, Tensor FcWeight, Tensor FcBias, Tensor ProjWeight, Tensor ProjBias)
{
    public IEnumerable<Tensor> All => [FcWeight, FcBias, ProjWeight, ProjBias];

    /// <summary>The stacked expert parameters' names after <c>h.N.mlp.experts.</c>, in <see cref="All"/>'s order.</summary>
    public static readonly IReadOnlyList<string> Names = ["c_fc.weight", "c_fc.bias", "c_proj.weight", "c_proj.bias"];
}
