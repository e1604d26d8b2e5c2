using System.Net;
using Elastic.Checkpoints.Format;
using Elastic.Parallelism;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;

namespace Elastic.Tests.Training.TensorParallel;

/// <summary>
/// A job's state moved between the memories of two layouts (what a live `replan` does): every rank of the old layout
/// serves, every rank of the new one receives just its regions, verified by the checkpoint reader, and training goes on
/// to the digest of the uninterrupted one-device run.
/// </summary>
public sealed class RegionTransferTests
{
    public static TheoryData<string, string> Moves => new()
    {
        { "dp=1,tp=2", "dp=1,tp=4" },
        { "dp=1,tp=4", "dp=1,tp=1" },
        { "dp=2,tp=2", "dp=1,tp=4" },
        { "dp=1,tp=2", "dp=2,tp=1" },
    };

    [Theory, MemberData(nameof(Moves))]
    public async Task State_moved_from_one_layout_to_another_continues_to_the_one_device_digest(string from, string to)
    {
        var spec = TestSpecs.Tiny(steps: 4, dropout: 0.1);
        var reference = await TestSpecs.ReferenceDigest(spec);
        var (before, after) = (ParallelGrid.Parse(from), ParallelGrid.Parse(to));
        await using var plane = new DataPlane(IPAddress.Loopback);

        var held = await EngineGrid.Run(plane, spec, before, sequenceParallel: true, (_, trainer) =>
        {
            for (var step = 1; step <= 2; step++) trainer.Step(step);
            return (trainer.Trainer.CompletedSteps, State: EngineCheckpoint.Held(trainer.Trainer));
        }, name: "before");

        var members = before.Size + after.Size;
        var endpoints = Enumerable.Repeat(plane.Endpoint, members).ToArray();
        var sent = held.Select((h, rank) => Task.Run(async () =>
        {
            using var group = await plane.JoinAsync("transfer", rank, endpoints, TestSpecs.Secret, TimeSpan.FromSeconds(60));
            return RegionTransfer.Serve(group, before.Size, h.CompletedSteps, h.State);
        })).ToArray();
        var continued = await EngineGrid.Run(plane, spec, after, sequenceParallel: true, (rank, trainer) =>
        {
            using var group = plane.JoinAsync("transfer", before.Size + rank, endpoints, TestSpecs.Secret, TimeSpan.FromSeconds(60)).GetAwaiter().GetResult();
            var wanted = EngineCheckpoint.Layout(trainer.Trainer);
            var (step, state, bytes) = RegionTransfer.Receive(group, before.Size, wanted);
            trainer.Trainer.Restore(step, (key, _) => state[key]);
            for (var s = step + 1; s <= spec.Steps; s++) trainer.Step(s);
            return (Digest: trainer.Trainer.ParameterDigest(), Bytes: bytes, Wanted: wanted.Sum(w => w.Region.Elements) * 4);
        }, name: "after");
        var bytesSent = await Task.WhenAll(sent);

        Assert.All(continued, c => Assert.Equal(reference, c.Digest));
        // Each rank of the new layout receives its own regions (plus the chunk headers), not a whole replica.
        Assert.All(continued, c => Assert.InRange(c.Bytes, c.Wanted, c.Wanted + 64 * 1024));
        Assert.Equal(continued.Sum(c => c.Bytes), bytesSent.Sum());
        // Every rank of the old layout serves a share.
        Assert.All(bytesSent, b => Assert.True(b > 0));
    }

    [Fact]
    public async Task Sources_at_different_steps_are_refused_before_any_state_moves()
    {
        await using var plane = new DataPlane(IPAddress.Loopback);
        var endpoints = Enumerable.Repeat(plane.Endpoint, 3).ToArray();
        var tensor = new ShardedTensor("w", "F32", [4], [0], [4], new byte[16]);
        var ranks = new[]
        {
            Task.Run(async () => { using var g = await plane.JoinAsync("steps", 0, endpoints, TestSpecs.Secret, TimeSpan.FromSeconds(10)); RegionTransfer.Serve(g, 2, 5, [tensor]); }),
            Task.Run(async () => { using var g = await plane.JoinAsync("steps", 1, endpoints, TestSpecs.Secret, TimeSpan.FromSeconds(10)); RegionTransfer.Serve(g, 2, 6, [tensor]); }),
            Task.Run(async () => { using var g = await plane.JoinAsync("steps", 2, endpoints, TestSpecs.Secret, TimeSpan.FromSeconds(10)); RegionTransfer.Receive(g, 2, [("w", TensorRegion.Whole([4]))]); }),
        };
        foreach (var rank in ranks)
            Assert.Contains("hold different steps (5, 6)", (await Assert.ThrowsAsync<InvalidOperationException>(() => rank)).Message);
    }
}
