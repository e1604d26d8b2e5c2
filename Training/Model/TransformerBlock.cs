using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>A pre-LayerNorm transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x)).</summary>
public sealed class TransformerBlock : nn.Module
{
    private readonly LayerNorm _ln1;
    private readonly CausalSelfAttention _attn;
    private readonly LayerNorm _ln2;
    private readonly Mlp _mlp;

    public TransformerBlock(int dModel, int heads, int ffn, double dropout) : base(nameof(TransformerBlock))
    {
        _ln1 = nn.LayerNorm(dModel);
        _attn = new CausalSelfAttention(dModel, heads, dropout);
        _ln2 = nn.LayerNorm(dModel);
        _mlp = new Mlp(dModel, ffn, dropout);
        register_module("ln_1", _ln1);
        register_module("attn", _attn);
        register_module("ln_2", _ln2);
        register_module("mlp", _mlp);
    }

    public Tensor forward(Tensor x, DropoutKeys? keys)
    {
        using var scope = NewDisposeScope();
        var h = x.add(_attn.forward(_ln1.call(x), keys));
        return h.add(_mlp.forward(_ln2.call(h), keys)).MoveToOuterDisposeScope();
    }
}
