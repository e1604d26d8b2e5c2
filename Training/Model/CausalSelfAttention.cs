using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>Multi-head causal self-attention (fused scaled_dot_product_attention) with a residual-dropout output.</summary>
public sealed class CausalSelfAttention : nn.Module
{
    private readonly Linear c_attn;
    private readonly Linear c_proj;
    private readonly int _heads;
    private readonly double _dropout;
    private readonly Matmuls _matmuls;

    internal CausalSelfAttention(int dModel, int heads, double dropout, Matmuls matmuls) : base(nameof(CausalSelfAttention))
    {
        _heads = heads;
        _dropout = dropout;
        _matmuls = matmuls;
        c_attn = nn.Linear(dModel, 3 * dModel);
        c_proj = nn.Linear(dModel, dModel);
        register_module("c_attn", c_attn);
        register_module("c_proj", c_proj);
    }

    public Tensor forward(Tensor x, DropoutKeys? keys)
    {
        using var scope = NewDisposeScope();
        var (b, t, c) = (x.shape[0], x.shape[1], x.shape[2]);
        var qkv = _matmuls.Linear(c_attn, x).view(b, t, 3, _heads, c / _heads).permute(2, 0, 3, 1, 4);
        // Positional arguments: TorchSharp spells the causal flag "is_casual".
        var y = nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], null, 0.0, true);
        y = y.transpose(1, 2).contiguous().view(b, t, c);
        return Dropout.Apply(_matmuls.Linear(c_proj, y), _dropout, training, keys).MoveToOuterDisposeScope();
    }
}
