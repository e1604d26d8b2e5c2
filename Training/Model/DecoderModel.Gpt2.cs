using Elastic.Training.Parallel.TensorParallel;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>GPT-2's parts of a block: one stacked QKV projection with biases, attention without positions of its own, a GELU MLP.</summary>
public sealed partial class DecoderModel
{
    /// <summary>Each local shard's q, k and v of its heads, [time, batch, 3 x d/S].</summary>
    private IReadOnlyList<Tensor> Gpt2Qkv(string p, Tensor a, SequencePart sequence) =>
        ColumnParallelLinear.Forward(Group, a, Shards(p + "attn.c_attn.weight", 2), Shards(p + "attn.c_attn.bias", 1), sequence.Split, _matmuls.Linear);

    /// <summary>Causal attention over one shard's heads: qkv [time, batch, 3 x d/S] (q, k, v of its heads) to [time, batch, d/S].</summary>
    private Tensor Gpt2Attention(Tensor qkv)
    {
        var (t, b) = (qkv.shape[0], qkv.shape[1]);
        var heads = Spec.Heads / Spec.Shards;
        var q = qkv.view(t, b, 3, heads, Spec.HeadDim).permute(2, 1, 3, 0, 4);
        // Positional arguments: TorchSharp spells the causal flag "is_casual".
        var y = nn.functional.scaled_dot_product_attention(q[0], q[1], q[2], null, 0.0, true);
        return y.permute(2, 0, 1, 3).reshape(t, b, heads * Spec.HeadDim);
    }

    private Tensor Gelu(string p, Tensor b, SequencePart sequence)
    {
        var hidden = ColumnParallelLinear.Forward(Group, b, Shards(p + "mlp.c_fc.weight"), Shards(p + "mlp.c_fc.bias"), sequence.Split, _matmuls.Linear)
            .Select(t => nn.functional.gelu(t, GELU.Approximate.tanh)).ToList();
        return RowParallelLinear.Forward(Group, hidden, Shards(p + "mlp.c_proj.weight"), Whole(p + "mlp.c_proj.bias"), sequence, _matmuls.Linear);
    }
}
