using Elastic.Training.Model;
using static TorchSharp.torch;

namespace Elastic.Training.Parallel.Pipeline;

/// <summary>
/// Brings a pipelined model's parameters whole to its first stage in name order: each stage sends the parameters its
/// chunks own (whole over its tensor-parallel group) in name order, and the first stage takes each parameter from its
/// owner, so every link carries its frames in the order they are read.
/// </summary>
internal static class WholeModel
{
    /// <summary>On the first stage, the parameters as they arrive (lazily); on the others, sends its own at once and returns none.</summary>
    public static IEnumerable<(string Name, Tensor Tensor)> Gather(DecoderModel model, PipelineStage stage, StageLinks links)
    {
        var owned = model.WholeParameters().Where(p => model.Chunks.Any(c => ChunkParameters.Owns(c, p.Name)));
        if (stage.Rank == 0) return InNameOrder(model, stage, links, owned);
        using var scope = NewDisposeScope();
        foreach (var (_, tensor) in owned) links.Send(0, tensor);
        links.Flush();
        return [];
    }

    private static IEnumerable<(string Name, Tensor Tensor)> InNameOrder(DecoderModel model, PipelineStage stage, StageLinks links, IEnumerable<(string Name, Tensor Tensor)> owned)
    {
        using var local = owned.GetEnumerator();
        foreach (var layout in ParameterLayout.Of(model.Spec))
        {
            var owner = stage.StageOf(stage.Chunks.First(c => ChunkParameters.Owns(c, layout.Name)));
            if (owner != 0) yield return (layout.Name, links.Receive(owner, layout.Shape));
            else if (local.MoveNext() && local.Current.Name == layout.Name) yield return local.Current;
            else throw new InvalidOperationException($"the first stage expected to hold {layout.Name}");
        }
    }
}
