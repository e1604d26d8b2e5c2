using Elastic.Jobs;
using Elastic.Training.Parallel.TensorParallel;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Elastic.Training.Parallel.Experts;

/// <summary>One expert's MLP as the model holds it: its pieces ([1, ...]) of the stacked expert parameters, in <see cref="Names"/>' order.</summary>
public sealed record ExpertWeights(int Expert, IReadOnlyList<Tensor> All)
{
    /// <summary>The stacked expert parameters' names after <c>h.N.mlp.experts.</c>: GPT-2's GELU MLP with biases, Llama's SwiGLU without.</summary>
    public static IReadOnlyList<string> Names(ModelSpec model) =>
        model.IsLlama ? ["gate_up.weight", "c_proj.weight"] : ["c_fc.weight", "c_fc.bias", "c_proj.weight", "c_proj.bias"];
}

/// <summary>An expert's MLP over the rows routed to it ([rows, d] to [rows, d]) from its weights (<see cref="ExpertWeights.All"/>).</summary>
public delegate Tensor ExpertMlp(Tensor rows, IReadOnlyList<Tensor> weights);

/// <summary>The experts of each architecture: the dense MLP's arithmetic on one expert's pieces.</summary>
public static class ExpertMlps
{
    public static ExpertMlp For(ModelSpec model, LinearOp linear) => model.IsLlama ? SwiGlu(linear) : Gelu(linear);

    /// <summary>GPT-2: proj(gelu(fc x + b) ) + b, pieces [1, f, d], [1, f], [1, d, f], [1, d].</summary>
    public static ExpertMlp Gelu(LinearOp linear) => (rows, w) =>
        linear(nn.functional.gelu(linear(rows, w[0][0], w[1][0]), GELU.Approximate.tanh), w[2][0], w[3][0]);

    /// <summary>Llama (Mixtral's experts): down(silu(gate x) * up x), pieces [1, 2, f, d] (gate and up) and [1, d, f].</summary>
    public static ExpertMlp SwiGlu(LinearOp linear) => (rows, w) =>
    {
        var gateUp = linear(rows, w[0][0].flatten(0, 1), null).chunk(2, -1);
        return linear(nn.functional.silu(gateUp[0]).mul(gateUp[1]), w[1][0], null);
    };
}
