using Elastic.Training.Parallel.TensorParallel;
using static Elastic.Training.ExplicitScalars;
using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>
/// Llama's parts of a block: query and key/value projections without biases (grouped-query attention), rotary position
/// embeddings in Hugging Face's convention (the head's two halves rotated together), a SwiGLU MLP.
/// </summary>
public sealed partial class DecoderModel
{
    private readonly Dictionary<(long Length, ScalarType Type), (Tensor Cos, Tensor Sin)> _rotary = [];

    /// <summary>Each local shard's queries of its heads and the keys and values they read, [time, batch, (q + 2 kv) heads x headDim].</summary>
    private IReadOnlyList<Tensor> LlamaQkv(string p, Tensor a, SequencePart sequence)
    {
        var queries = Shards(p + "attn.q_proj.weight");
        var keyValues = KeyValueWeights(p + "attn.kv_proj.weight");
        var weights = queries.Select((q, i) => cat([q, keyValues[i]], 0)).ToList();
        return ColumnParallelLinear.Forward(Group, a, weights, null, sequence.Split, _matmuls.Linear);
    }

    /// <summary>Key/value heads a virtual shard computes: its share when S divides them, else the one its queries read.</summary>
    private int KeyValueHeadsPerShard => Spec.KeyValueSplit(Spec.Shards) ? Spec.KeyValueHeads / Spec.Shards : 1;

    /// <summary>
    /// Each local shard's key/value weights, [2 x heads x headDim, d]. Split: its shard. Replicated: its own copy of the whole
    /// (copies' gradients summed over all S shards in the canonical tree, as a replicated parameter's are), cut to its head.
    /// </summary>
    private IReadOnlyList<Tensor> KeyValueWeights(string name)
    {
        if (Spec.KeyValueSplit(Spec.Shards)) return Shards(name, 2);
        var shardsPerHead = Spec.Shards / Spec.KeyValueHeads;
        return ChunkReplicas.PerShard(Group, Whole(name))
            .Select((copy, i) => copy.narrow(1, (Group.FirstShard + i) / shardsPerHead * Spec.HeadDim, Spec.HeadDim).reshape(2 * Spec.HeadDim, Spec.DModel))
            .ToList();
    }

    /// <summary>Causal attention over one shard's heads with rotary positions: [time, batch, (q + 2 kv) x headDim] to [time, batch, q x headDim].</summary>
    private Tensor LlamaAttention(Tensor qkv)
    {
        var (t, b, hd) = (qkv.shape[0], qkv.shape[1], (long)Spec.HeadDim);
        var (queries, keyValues) = ((long)Spec.Heads / Spec.Shards, (long)KeyValueHeadsPerShard);
        var parts = qkv.split([queries * hd, keyValues * hd, keyValues * hd], 2);
        var q = Rotate(parts[0].view(t, b, queries, hd).permute(1, 2, 0, 3));
        var k = Rotate(parts[1].view(t, b, keyValues, hd).permute(1, 2, 0, 3));
        var v = parts[2].view(t, b, keyValues, hd).permute(1, 2, 0, 3);
        if (queries != keyValues)
        {
            // Each key/value head serves the group of query heads that follows its index (Hugging Face's repeat_kv).
            k = k.repeat_interleave(queries / keyValues, 1);
            v = v.repeat_interleave(queries / keyValues, 1);
        }
        var y = nn.functional.scaled_dot_product_attention(q, k, v, null, 0.0, true);
        return y.permute(2, 0, 1, 3).reshape(t, b, queries * hd);
    }

    /// <summary>Rotary position embedding of [batch, heads, time, headDim] at positions 0..time-1: x cos + rotate_half(x) sin.</summary>
    private Tensor Rotate(Tensor x)
    {
        var (cos, sin) = RotaryTables(x.shape[2], x.dtype);
        var half = x.shape[3] / 2;
        var rotated = cat([x.narrow(3, half, half).neg(), x.narrow(3, 0, half)], 3);
        return x.mul(cos).add(rotated.mul(sin), alpha: One);
    }

    /// <summary>
    /// cos and sin of position x frequency, [time, headDim] (each frequency twice: the halves share it), computed in float64 on the
    /// CPU and rounded once, so every device and layout reads the same values; kept per length and dtype for the model's life.
    /// </summary>
    private (Tensor Cos, Tensor Sin) RotaryTables(long length, ScalarType type)
    {
        if (_rotary.TryGetValue((length, type), out var tables)) return tables;
        var hd = Spec.HeadDim;
        var angles = new double[length * hd];
        for (var position = 0; position < length; position++)
            for (var i = 0; i < hd / 2; i++)
            {
                var angle = position * Math.Pow(Spec.RopeTheta, -2.0 * i / hd);
                angles[position * hd + i] = angles[position * hd + i + hd / 2] = angle;
            }
        using var scope = NewDisposeScope();
        var table = tensor(angles, [length, hd], ScalarType.Float64);
        tables = (Table(table.cos()), Table(table.sin()));
        _rotary[(length, type)] = tables;
        return tables;

        Tensor Table(Tensor values) => values.to_type(ScalarType.Float32).to_type(type).to(Device).DetachFromDisposeScope();
    }

    private Tensor SwiGlu(string p, Tensor b, SequencePart sequence)
    {
        var hidden = ColumnParallelLinear.Forward(Group, b, Shards(p + "mlp.gate_up.weight", 2), null, sequence.Split, _matmuls.Linear)
            .Select(h =>
            {
                var gateUp = h.chunk(2, 2);
                return nn.functional.silu(gateUp[0]).mul(gateUp[1]);
            }).ToList();
        return RowParallelLinear.Forward(Group, hidden, Shards(p + "mlp.c_proj.weight"), null, sequence, _matmuls.Linear);
    }
}
