using Elastic.Data;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Training.Parallel;
using Elastic.Training.Parallel.Experts;
using Elastic.Training.Parallel.Pipeline;
using Elastic.Training.Parallel.Sharded;
using Elastic.Training.Parallel.TensorParallel;
using TorchSharp;

namespace Elastic.Training.Engine;

/// <summary>
/// The one place a rank's engine is built: from the spec its layout was resolved into (tp, pp, ZeRO stage, schedule, recomputation
/// and sequence parallelism all read from it), the rank's process groups (its grid coordinates), its device, and the state handed
/// over on that device if it adopts one. Units on silos, the tests' engine grids and the benchmarks all build ranks here.
/// </summary>
public static class RankEngine
{
    /// <summary>
    /// Builds the rank on the calling thread (the device's worker thread); <paramref name="groups"/> are owned from now on. A new
    /// trainer reads <paramref name="corpus"/> (the spec's own, loaded, where none is given).
    /// </summary>
    /// <param name="bucketBytes">Where the layout allows, reduce gradients during the backward in buckets of at least this size;
    /// 0: after it (<see cref="DataParallelTrainer"/>).</param>
    public static DataParallelTrainer Build(TrainingSpec spec, torch.Device device, ProcessGroups groups, Trainer? adopted = null, TokenCorpus? corpus = null,
        long bucketBytes = DataParallelTrainer.DefaultBucketBytes)
    {
        var tensor = new TensorParallelGroup(spec.Model.Shards, groups.Along(GridAxis.Tensor));
        var stage = new PipelineStage(spec, groups.Along(GridAxis.Pipeline));
        var experts = ExpertGroup.Of(spec.Model, groups);
        if (adopted is not null)
        {
            adopted.Rejoin(tensor, stage, experts);
            return new DataParallelTrainer(adopted, groups, bucketBytes);
        }
        var zero = ZeroShard.Of(spec.Parallel.Zero ?? 0, groups.Coordinates.Data, groups.Grid.Dp);
        return new DataParallelTrainer(new Trainer(spec, corpus ?? TokenCorpus.Load(spec), device, tensor, spec.Parallel.Sequence, stage, zero, experts), groups, bucketBytes);
    }
}
