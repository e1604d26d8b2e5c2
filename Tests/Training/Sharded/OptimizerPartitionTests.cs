using Elastic.Training.Parallel.Sharded;

namespace Elastic.Tests.Training.Sharded;

public sealed class OptimizerPartitionTests
{
    private static OptimizerPartition.Entry E(string name, long offset, long length, bool tied = false, bool gradientOnly = false) => new(name, offset, length, tied, gradientOnly);

    // Ten parameters of 100 values, the token embedding of 300 among them and its head leaves at the end.
    private static readonly OptimizerPartition.Entry[] Stage =
    [
        .. Enumerable.Range(0, 8).Select(i => E($"h.{i}.w", i * 100, 100)),
        E("ln_f.weight", 800, 100),
        E("wte.weight", 900, 300, tied: true),
        E("head:wte.weight", 1200, 300, tied: true, gradientOnly: true),
    ];

    [Fact]
    public void Every_parameter_has_one_owner_and_the_runs_of_the_ranks_tile_the_buffer()
    {
        var partition = OptimizerPartition.Of(Stage, 4);

        var runs = Enumerable.Range(0, 4).SelectMany(r => partition.GradientRanges(r)).OrderBy(r => r.Offset).ToList();
        Assert.Equal(0, runs[0].Offset);
        for (var i = 1; i < runs.Count; i++) Assert.Equal(runs[i - 1].Offset + runs[i - 1].Length, runs[i].Offset);
        Assert.Equal(1500, runs[^1].Offset + runs[^1].Length);
        // The parameter buffer has no head leaves: it ends at 1200.
        Assert.Equal(1200, Enumerable.Range(0, 4).Sum(partition.ParameterElements));
    }

    [Fact]
    public void The_tied_embedding_and_its_head_leaves_go_to_rank_0_and_the_rest_is_balanced_over_the_others()
    {
        var partition = OptimizerPartition.Of(Stage, 4);

        Assert.Equal(0, partition.OwnerOf("wte.weight"));
        Assert.Equal(0, partition.OwnerOf("head:wte.weight"));
        // The tied pair (600 of 1500 gradient values) is more than a quarter: ranks 1-3 share the other nine parameters.
        Assert.Equal([(900L, 600L)], partition.GradientRanges(0));
        Assert.Equal([3, 3, 3], Enumerable.Range(1, 3).Select(r => partition.GradientRanges(r).Sum(x => x.Length) / 100));
    }

    [Fact]
    public void Without_tied_parameters_contiguous_runs_follow_the_buffer_in_rank_order()
    {
        var entries = Enumerable.Range(0, 8).Select(i => E($"p{i}", i * 10, 10)).ToArray();
        var partition = OptimizerPartition.Of(entries, 2);

        Assert.Equal([(0L, 40L)], partition.GradientRanges(0));
        Assert.Equal([(40L, 40L)], partition.GradientRanges(1));
        Assert.Equal([(0L, 80L)], OptimizerPartition.Of(entries, 1).ParameterRanges(0));
    }
}
