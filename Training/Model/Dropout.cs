using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>Dropout as the model applies it: keyed per sample when keys are given, torch's global generator otherwise.</summary>
internal static class Dropout
{
    public static Tensor Apply(Tensor x, double p, bool training, DropoutKeys? keys)
    {
        if (!training || p == 0) return x;
        return keys is null ? nn.functional.dropout(x, p, training: true) : keys.Apply(x, p);
    }
}
