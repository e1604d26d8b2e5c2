using Elastic.Jobs;
using Elastic.Planning;
using Elastic.Parallelism.Pipeline;
using Elastic.Training.Collectives;

namespace Elastic.Training.Parallel.Pipeline;

/// <summary>
/// One stage of a replica's pipeline: the model split into pp x v chunks balanced by cost, this stage's chunks
/// (c mod pp = its rank), the schedule it runs and the communicator to the other stages (index = stage).
/// </summary>
public sealed class PipelineStage
{
    /// <param name="ranks">The pipeline communicator (index = stage); null for a pipeline of one stage.</param>
    public PipelineStage(TrainingSpec spec, Communicator? ranks)
    {
        var stages = ranks?.WorldSize ?? 1;
        // A spec that leaves the schedule to a planner runs its neutral one here (the units of a plan get a resolved spec).
        var layout = SpecLayout.At(spec, 1);
        var virtualStages = stages == 1 ? 1 : layout.VirtualStages;
        Schedule = stages == 1 ? PipelineSchedule.OneFOneB : layout.Schedule;
        if (PipelineSchedule.Problems(Schedule, stages, spec.Batch.MicroBatchesPerStep, virtualStages, spec.Model.Layers) is { Count: > 0 } problems)
            throw new ArgumentException(string.Join("; ", problems), nameof(spec));
        Ranks = ranks;
        VirtualStages = virtualStages;
        Chunks = PipelineSplit.Chunks(spec.Model, stages * virtualStages);
        Local = Chunks.Where(c => StageOf(c) == Rank).ToList();
    }

    public Communicator? Ranks { get; }
    public int Stages => Ranks?.WorldSize ?? 1;
    public int Rank => Ranks?.Rank ?? 0;
    public string Schedule { get; }
    public int VirtualStages { get; }

    /// <summary>Every chunk of the model, in order.</summary>
    public IReadOnlyList<ModelChunk> Chunks { get; }

    /// <summary>This stage's chunks, in order.</summary>
    public IReadOnlyList<ModelChunk> Local { get; }

    public int StageOf(ModelChunk chunk) => chunk.Index % Stages;
}
