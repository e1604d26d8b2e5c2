namespace Elastic.Training.Parallel.Sharded;

/// <summary>A rank's place in ZeRO: the stage (1: moments sharded; 2: gradients too) and its index among the data-parallel ranks.</summary>
public sealed record ZeroShard(int Level, int Rank, int Ranks)
{
    /// <summary>The shard of a rank of a job run at ZeRO stage <paramref name="level"/>; null where every rank keeps everything (stage 0 or one replica).</summary>
    public static ZeroShard? Of(int level, int rank, int ranks) => level > 0 && ranks > 1 ? new ZeroShard(level, rank, ranks) : null;
}
