using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>The feed-forward block: Linear, GELU (tanh approximation, as GPT-2), Linear, residual dropout.</summary>
public sealed class Mlp : nn.Module
{
    private readonly Linear c_fc;
    private readonly Linear c_proj;
    private readonly double _dropout;

    public Mlp(int dModel, int ffn, double dropout) : base(nameof(Mlp))
    {
        _dropout = dropout;
        c_fc = nn.Linear(dModel, ffn);
        c_proj = nn.Linear(ffn, dModel);
        register_module("c_fc", c_fc);
        register_module("c_proj", c_proj);
    }

    public Tensor forward(Tensor x, DropoutKeys? keys)
    {
        using var scope = NewDisposeScope();
        var h = nn.functional.gelu(c_fc.call(x), TorchSharp.Modules.GELU.Approximate.tanh);
        return Dropout.Apply(c_proj.call(h), _dropout, training, keys).MoveToOuterDisposeScope();
    }
}
