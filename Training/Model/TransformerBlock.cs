using TorchSharp.Modules;
using static TorchSharp.torch;
using static Elastic.Training.ExplicitScalars;

namespace Elastic.Training.Model;

/// <summary>A pre-LayerNorm transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x)).</summary>
public sealed class TransformerBlock : nn.Module
{
    private readonly LayerNorm ln_1;
    private readonly CausalSelfAttention attn;
    private readonly LayerNorm ln_2;
    private readonly Mlp mlp;

    internal TransformerBlock(int dModel, int heads, int ffn, double dropout, Matmuls matmuls) : base(nameof(TransformerBlock))
    {
        ln_1 = nn.LayerNorm(dModel);
        attn = new CausalSelfAttention(dModel, heads, dropout, matmuls);
        ln_2 = nn.LayerNorm(dModel);
        mlp = new Mlp(dModel, ffn, dropout, matmuls);
        register_module("ln_1", ln_1);
        register_module("attn", attn);
        register_module("ln_2", ln_2);
        register_module("mlp", mlp);
    }

    public Tensor forward(Tensor x, DropoutKeys? keys)
    {
        using var scope = NewDisposeScope();
        var h = x.add(attn.forward(ln_1.call(x), keys), alpha: One);
        return h.add(mlp.forward(ln_2.call(h), keys), alpha: One).MoveToOuterDisposeScope();
    }
}
