using Elastic.Training.Model;
using Elastic.Training.Parallel.Pipeline;
using static Elastic.Training.ExplicitScalars;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>
/// The two gradient contributions of tied embeddings, each summed over the step's micro-batches (and replicas) in
/// the canonical tree, added once before the update: embedding + head. On one stage both sums are regions of the
/// stage's flat gradient; in a pipeline the first stage has the embedding's and the last the head's, they swap them,
/// and both end with the same sum (two operands add to the same bits in either order), so both copies of the
/// token embedding take the same step.
/// </summary>
internal sealed class TiedEmbeddingGradients
{
    private readonly PipelineStage _stage;
    private readonly (long Offset, long Length)? _embedding;
    private readonly (long Offset, long Length)? _head;
    private readonly StageLinks? _links;

    public TiedEmbeddingGradients(DecoderModel model, PipelineStage stage, StageLinks? links, FlatGradients gradients)
    {
        _stage = stage;
        if (!model.Spec.TiedEmbeddings || model.Parameters.All(p => p.Name != "wte.weight")) return;
        var keys = model.Parameters.Single(p => p.Name == "wte.weight").Named().Select(n => n.Key).ToList();
        (long, long) Region(string prefix)
        {
            var slices = keys.Select(k => gradients.SliceOf(prefix + k)).ToList();
            return (slices[0].Offset, slices.Sum(s => s.Length));
        }
        // The token embedding's own region holds the embedding's gradient on the first stage and nothing (zeros) on the last.
        _embedding = Region("");
        if (model.Chunks.Any(c => c.Head)) _head = Region(DecoderModel.TiedHeadPrefix);
        _links = links;
    }

    public void Combine(Tensor flat)
    {
        if (_embedding is not { } e) return;
        using var scope = NewDisposeScope();
        var embedding = flat.narrow(0, e.Offset, e.Length);
        if (_links is null)
        {
            embedding.add_(flat.narrow(0, _head!.Value.Offset, _head.Value.Length), alpha: One);
            return;
        }
        var last = _stage.Stages - 1;
        if (_head is { } h)
        {
            var head = flat.narrow(0, h.Offset, h.Length);
            _links.Send(0, head);
            embedding.copy_(_links.Receive(0, embedding.shape)).add_(head, alpha: One);
        }
        else
        {
            _links.Send(last, embedding);
            embedding.add_(_links.Receive(last, embedding.shape), alpha: One);
        }
        _links.Flush();
    }
}
