using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>The feed-forward block: Linear, GELU (tanh approximation, as GPT-2), Linear, residual dropout.</summary>
public sealed class Mlp : nn.Module
{
    private readonly Linear _fc;
    private readonly Linear _proj;
    private readonly double _dropout;

    public Mlp(int dModel, int ffn, double dropout) : base(nameof(Mlp))
    {
        _dropout = dropout;
        _fc = nn.Linear(dModel, ffn);
        _proj = nn.Linear(ffn, dModel);
        register_module("c_fc", _fc);
        register_module("c_proj", _proj);
    }

    public Tensor forward(Tensor x, DropoutKeys? keys)
    {
        using var scope = NewDisposeScope();
        var h = nn.functional.gelu(_fc.call(x), TorchSharp.Modules.GELU.Approximate.tanh);
        return Dropout.Apply(_proj.call(h), _dropout, training, keys).MoveToOuterDisposeScope();
    }
}
