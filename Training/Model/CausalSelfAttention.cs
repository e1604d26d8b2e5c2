using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>Multi-head causal self-attention (fused scaled_dot_product_attention) with a residual-dropout output.</summary>
public sealed class CausalSelfAttention : nn.Module
{
    private readonly Linear _qkv;
    private readonly Linear _proj;
    private readonly int _heads;
    private readonly double _dropout;

    public CausalSelfAttention(int dModel, int heads, double dropout) : base(nameof(CausalSelfAttention))
    {
        _heads = heads;
        _dropout = dropout;
        _qkv = nn.Linear(dModel, 3 * dModel);
        _proj = nn.Linear(dModel, dModel);
        register_module("c_attn", _qkv);
        register_module("c_proj", _proj);
    }

    public Tensor forward(Tensor x, DropoutKeys? keys)
    {
        using var scope = NewDisposeScope();
        var (b, t, c) = (x.shape[0], x.shape[1], x.shape[2]);
        var qkv = _qkv.call(x).view(b, t, 3, _heads, c / _heads).permute(2, 0, 3, 1, 4);
        // Positional arguments: TorchSharp spells the causal flag "is_casual".
        var y = nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], null, 0.0, true);
        y = y.transpose(1, 2).contiguous().view(b, t, c);
        return Dropout.Apply(_proj.call(y), _dropout, training, keys).MoveToOuterDisposeScope();
    }
}
