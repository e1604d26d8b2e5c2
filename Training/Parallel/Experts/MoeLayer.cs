using Elastic.Jobs;
using Elastic.Training.Parallel.TensorParallel;
using static TorchSharp.torch;

namespace Elastic.Training.Parallel.Experts;

/// <summary>
/// One MoE layer in place of a dense MLP: tokens [N, d] in canonical order (by sample, then position) of one micro-batch
/// go to their top-k experts (on the ranks of the expert group that host them) and come back weighted by the router's
/// gates. Forward and backward are one autograd function (<see cref="MoeFunction"/>) so that every sum is taken in an
/// order no layout changes: each expert's rows are one matmul over exactly the micro-batch's tokens it takes, a token's
/// expert outputs are added in expert order, and its input gradient is the router's plus each expert's in expert order.
/// </summary>
/// <param name="record">Told what each forward did (every forward, recomputations included: the caller keeps the one it wants).</param>
/// <param name="mlp">Each expert's arithmetic (the architecture's MLP).</param>
public sealed class MoeLayer(MoeSpec spec, int layer, ExpertMlp mlp, Action<ExpertLayerLoad> record)
{
    public MoeSpec Spec { get; } = spec;
    public int Layer { get; } = layer;
    internal ExpertMlp Mlp { get; } = mlp;

    /// <summary>
    /// Where the hosted experts' weight gradients go, one sum per source rank (ep > 1: a source's micro-batches are a block of
    /// the canonical tree of their own); null: they are this node's gradients like any parameter's.
    /// </summary>
    public ExpertGradients? Gradients { get; set; }

    /// <summary>The layer's output [N, d] for tokens [N, d] (fp32), with the router ([E, d]) and the experts this rank hosts.</summary>
    /// <param name="failures">Where a failure inside backward is kept (it must not cross libtorch's frames).</param>
    public Tensor Forward(TensorParallelGroup failures, ExpertGroup group, Tensor tokens, Tensor router, IReadOnlyList<ExpertWeights> experts) =>
        MoeFunction.Apply(this, failures, group, tokens, router, experts);

    /// <summary>Runs the forward; with <paramref name="track"/>, keeps what its backward needs.</summary>
    internal MoePass Run(ExpertGroup group, Tensor x, Tensor router, IReadOnlyList<ExpertWeights> experts, bool track)
    {
        var pass = MoePass.Forward(this, group, x, router, experts, track);
        record(pass.Load);
        return pass;
    }
}
