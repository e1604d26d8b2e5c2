using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>The feed-forward block: Linear, GELU (tanh approximation, as GPT-2), Linear, residual dropout.</summary>
public sealed class Mlp : nn.Module
{
    private readonly Linear c_fc;
    private readonly Linear c_proj;
    private readonly double _dropout;
    private readonly Matmuls _matmuls;

    internal Mlp(int dModel, int ffn, double dropout, Matmuls matmuls) : base(nameof(Mlp))
    {
        _dropout = dropout;
        _matmuls = matmuls;
        c_fc = nn.Linear(dModel, ffn);
        c_proj = nn.Linear(ffn, dModel);
        register_module("c_fc", c_fc);
        register_module("c_proj", c_proj);
    }

    public Tensor forward(Tensor x, DropoutKeys? keys)
    {
        using var scope = NewDisposeScope();
        var h = nn.functional.gelu(_matmuls.Linear(c_fc, x), TorchSharp.Modules.GELU.Approximate.tanh);
        return Dropout.Apply(_matmuls.Linear(c_proj, h), _dropout, training, keys).MoveToOuterDisposeScope();
    }
}
