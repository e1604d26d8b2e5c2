using Elastic.Training.Model;
using static TorchSharp.torch;

namespace Elastic.Training.Evaluation;

/// <summary>
/// The mean next-token cross-entropy of a token sequence under a model, the tokens as they are (nothing added): consecutive
/// windows of the context length (inputs t[iC .. iC+C), targets one token later; the last window shorter), every prediction
/// weighted alike, accumulated in float64. What <c>elastic eval</c> prints and what a reference implementation must agree with.
/// </summary>
public static class TextLoss
{
    public static (double Loss, long Predictions) Of(DecoderModel model, IReadOnlyList<int> tokens)
    {
        if (tokens.Count < 2) throw new ArgumentException($"{tokens.Count} token(s): a next-token loss needs at least 2", nameof(tokens));
        var context = model.Spec.Context;
        var (sum, predictions) = (0.0, 0L);
        var training = model.Training;
        model.Training = false;
        try
        {
            using var noGrad = no_grad();
            for (var start = 0; start + 1 < tokens.Count; start += context)
            {
                using var scope = NewDisposeScope();
                var length = Math.Min(context, tokens.Count - 1 - start);
                var window = tokens.Skip(start).Take(length + 1).Select(t => (long)t).ToArray();
                var input = tensor(window[..^1], [1, length], device: model.Device);
                var targets = tensor(window[1..], [length], device: model.Device);
                var logProbabilities = nn.functional.log_softmax(model.forward(input)[0].to_type(ScalarType.Float64), 1);
                sum -= logProbabilities.gather(1, targets.unsqueeze(1)).sum().item<double>();
                predictions += length;
            }
        }
        finally
        {
            model.Training = training;
        }
        return (sum / predictions, predictions);
    }
}
