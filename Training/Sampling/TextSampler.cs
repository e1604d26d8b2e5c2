using Elastic.Data;
using Elastic.Training.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Elastic.Training.Sampling;

/// <summary>Generates text from a prompt with temperature and top-k sampling, reproducibly for a seed.</summary>
public static class TextSampler
{
    public static string Sample(DecoderModel model, ITokenizer tokenizer, string prompt, int tokens,
        double temperature = 0.8, int topK = 40, ulong seed = 1)
    {
        if (tokens < 0) throw new ArgumentOutOfRangeException(nameof(tokens), tokens, "must not be negative");
        if (!(temperature > 0)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "must be positive");
        var context = model.Spec.Context;
        var ids = tokenizer.Encode(prompt).ToList();
        if (ids.Count == 0) ids.Add(tokenizer.Encode("\n")[0]);
        using var generator = new Generator(SplitMix64.Derive(seed, RandomPurpose.Sampling), CPU);
        using var noGrad = no_grad();
        // Explicit scalars live until the end of the method; implicit ones can be finalized mid-call.
        using var temperatureScalar = temperature.ToScalar();
        using var excluded = double.NegativeInfinity.ToScalar();
        var wasTraining = model.Training;
        model.Training = false;
        try
        {
            for (var i = 0; i < tokens; i++)
            {
                using var scope = NewDisposeScope();
                var window = ids.Skip(Math.Max(0, ids.Count - context)).Select(t => (long)t).ToArray();
                var input = tensor(window, [1, window.Length], device: model.Device);
                var logits = model.forward(input)[0, -1].div(temperatureScalar);
                if (topK > 0 && topK < logits.shape[0])
                {
                    var (values, _) = logits.topk(topK);
                    logits = logits.masked_fill(logits.lt(values[-1]), excluded);
                }
                // Drawn on the host: the generator is a CPU one, and a CPU generator must never meet a device tensor.
                var next = multinomial(nn.functional.softmax(logits, 0).cpu(), 1, generator: generator);
                ids.Add((int)next.item<long>());
            }
        }
        finally
        {
            model.Training = wasTraining;
        }
        return tokenizer.Decode(ids.ToArray());
    }
}
