using Elastic.Parallelism.Pipeline;

namespace Elastic.Tests.Parallelism;

/// <summary>
/// The pipeline schedules before anything runs them: the order of forwards and backwards per stage, every message
/// received in the order it is sent on its link, no deadlock, and the bubble and activations in flight the papers give.
/// </summary>
public sealed class PipelineScheduleTests
{
    private static IReadOnlyList<IReadOnlyList<PipelineOp>> AllStages(string schedule, int p, int m, int v = 1) =>
        Enumerable.Range(0, p).Select(r => PipelineSchedule.For(schedule, p, r, m, v)).ToList();

    [Fact]
    public void One_f_one_b_warms_up_with_p_minus_rank_minus_one_forwards_then_alternates()
    {
        Assert.Equal("F0.0 F1.0 F2.0 F3.0 B0.0 F4.0 B1.0 F5.0 B2.0 B3.0 B4.0 B5.0",
            string.Join(" ", PipelineSchedule.For(PipelineSchedule.OneFOneB, 4, 0, 6)));
        Assert.Equal("F0.2 F1.2 B0.2 F2.2 B1.2 F3.2 B2.2 F4.2 B3.2 F5.2 B4.2 B5.2",
            string.Join(" ", PipelineSchedule.For(PipelineSchedule.OneFOneB, 4, 2, 6)));
        Assert.Equal("F0.3 B0.3 F1.3 B1.3", string.Join(" ", PipelineSchedule.For(PipelineSchedule.OneFOneB, 4, 3, 2)));
        // Fewer micro-batches than stages: the warm-up is cut to m.
        Assert.Equal("F0.0 F1.0 B0.0 B1.0", string.Join(" ", PipelineSchedule.For(PipelineSchedule.OneFOneB, 4, 0, 2)));
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(1, 8)]
    [InlineData(2, 1)]
    [InlineData(2, 4)]
    [InlineData(2, 16)]
    [InlineData(4, 2)]
    [InlineData(4, 4)]
    [InlineData(4, 8)]
    [InlineData(4, 16)]
    [InlineData(8, 16)]
    public void One_f_one_b_never_deadlocks_keeps_every_link_in_order_and_has_the_papers_bubble(int p, int m)
    {
        var run = ScheduleCheck.Run(AllStages(PipelineSchedule.OneFOneB, p, m), m, chunks: p);

        Assert.All(Enumerable.Range(0, p), r => Assert.Equal((p - 1.0) / (m + p - 1), run.IdleFraction(r), 12));
        // Stage r holds at most p - r micro-batches' activations: the 1F1B bound.
        Assert.Equal(Enumerable.Range(0, p).Select(r => Math.Min(p - r, m)), run.PeakInFlight);
    }

    [Theory]
    [InlineData(2, 2, 2)]
    [InlineData(2, 4, 2)]
    [InlineData(2, 8, 2)]
    [InlineData(4, 4, 2)]
    [InlineData(4, 8, 2)]
    [InlineData(4, 16, 2)]
    [InlineData(4, 8, 4)]
    [InlineData(4, 16, 4)]
    public void Interleaving_never_deadlocks_keeps_every_link_in_order_and_divides_the_bubble_by_v(int p, int m, int v)
    {
        // Each chunk is 1/v of a stage's layers: forward 1/v, backward 2/v.
        var run = ScheduleCheck.Run(AllStages(PipelineSchedule.Interleaved, p, m, v), m, chunks: p * v, forward: 1.0 / v, backward: 2.0 / v);
        var oneFOneB = ScheduleCheck.Run(AllStages(PipelineSchedule.OneFOneB, p, m), m, chunks: p);

        var paper = (p - 1.0) / v / (m + (p - 1.0) / v);
        Assert.All(Enumerable.Range(0, p), r => Assert.InRange(run.IdleFraction(r), 0, paper + 1e-9));
        Assert.All(Enumerable.Range(0, p), r => Assert.True(run.IdleFraction(r) < oneFOneB.IdleFraction(r)));
    }

    [Fact]
    public void The_timeline_shows_each_stage_working_and_waiting()
    {
        var run = ScheduleCheck.Run(AllStages(PipelineSchedule.OneFOneB, 2, 2), 2, chunks: 2);

        Assert.Equal("stage 0 | 01..AA.BB\nstage 1 | .0AA1BB..", run.Picture(1));
    }

    [Fact]
    public void A_schedule_that_waits_on_itself_is_named_before_it_runs()
    {
        // Stage 1 runs the backward of micro-batch 1 before that of 0, while stage 0 needs 0's gradient first.
        var ops = AllStages(PipelineSchedule.OneFOneB, 2, 2).Select(o => o.ToList()).ToList();
        ops[1] = [new(PipelineOpKind.Forward, 0, 1), new(PipelineOpKind.Forward, 1, 1), new(PipelineOpKind.Backward, 1, 1), new(PipelineOpKind.Backward, 0, 1)];

        var e = Assert.Throws<InvalidOperationException>(() => ScheduleCheck.Run(ops, 2, 2));
        Assert.Contains("link 1 -> 0: message 0 is sent for B1.0 but received for B0.0", e.Message);

        var missing = AllStages(PipelineSchedule.OneFOneB, 2, 2).Select(o => o.ToList()).ToList();
        missing[0].RemoveAt(missing[0].Count - 1);
        Assert.Contains("stage 0 never runs B1.0", Assert.Throws<InvalidOperationException>(() => ScheduleCheck.Run(missing, 2, 2)).Message);
    }

    [Theory]
    [InlineData("interleaved", 4, 6, 2, 16, "the interleaved schedule needs the micro-batches per step (6) to be a multiple of pipeline 4")]
    [InlineData("1f1b", 2, 4, 2, 16, "virtualStages 2 needs the 'interleaved' schedule")]
    [InlineData("interleaved", 4, 8, 4, 12, "pipeline 4 x virtualStages 4 = 16 chunks need one layer each, but model.layers is 12")]
    [InlineData("gpipe", 2, 4, 1, 4, "schedule 'gpipe' is not '1f1b' or 'interleaved'")]
    public void Layouts_a_schedule_cannot_run_are_refused_with_their_numbers(string schedule, int p, int m, int v, int layers, string reason)
    {
        Assert.Contains(reason, string.Join("; ", PipelineSchedule.Problems(schedule, p, m, v, layers)));
    }

    [Fact]
    public void Stages_are_balanced_with_the_embedding_on_the_first_and_the_head_on_the_last()
    {
        // Eight equal layers; the head costs two of them: the last stage gets one layer, and no stage costs more than 3.
        var chunks = StageSplit.Balance(Enumerable.Repeat(1.0, 8).ToList(), embedding: 0, head: 2, chunks: 4);

        Assert.Equal(3, chunks.Max(c => c.Cost));
        Assert.Equal(1, chunks[^1].Count);
        Assert.True(chunks[0].Embedding && chunks[^1].Head && chunks.Skip(1).All(c => !c.Embedding) && chunks.SkipLast(1).All(c => !c.Head));
        Assert.Equal(Enumerable.Range(0, 8), chunks.SelectMany(c => Enumerable.Range(c.First, c.Count)));
    }

    [Fact]
    public void A_gpt2_sized_model_gives_its_last_stage_fewer_layers_for_the_vocabulary_head()
    {
        var layer = TransformerCost.Layer(768, 3072, 1024, 768, 2);
        var chunks = StageSplit.Balance(Enumerable.Repeat(layer, 12).ToList(), TransformerCost.Embedding(768, 1024), TransformerCost.Head(768, 50257, 1024), 4);

        // The head (50257 x 768) costs about four and a half layers: the last stage gets one layer, and sets the pace.
        Assert.Equal("layer 11 + head", chunks[^1].ToString());
        Assert.Equal(chunks.Max(c => c.Cost), chunks[^1].Cost);
        var others = chunks.SkipLast(1).Select(c => c.Count).ToList();
        Assert.True(others.Max() - others.Min() <= 1, string.Join(", ", others));
    }

    [Fact]
    public void More_chunks_than_layers_are_refused_with_both_numbers()
    {
        var e = Assert.Throws<ArgumentException>(() => StageSplit.Balance([1.0, 1.0], 0, 0, 4));
        Assert.Contains("4 pipeline chunk(s) need at least one layer each, but the model has 2", e.Message);
    }
}
