using System.Diagnostics;
using System.Runtime.InteropServices;
using Elastic.Training.Collectives;
using Elastic.Training.Engine;

namespace Elastic.Tests.Collectives;

/// <summary>Collectives among ranks spread over two data planes ("silos"): ranks on one plane link in memory, across planes by TCP.</summary>
public sealed class CollectivesTests : DataPlanesFixture
{
    /// <summary>Rank r lives on silo A when even, silo B when odd, so every group mixes both transports.</summary>
    private async Task<Communicator[]> Join(string group, int world, TimeSpan? timeout = null)
    {
        var planes = Enumerable.Range(0, world).Select(r => r % 2 == 0 ? SiloA : SiloB).ToArray();
        var endpoints = planes.Select(p => p.Endpoint).ToArray();
        return await Task.WhenAll(Enumerable.Range(0, world).Select(r => planes[r].JoinAsync(group, r, endpoints, TestSpecs.Secret, timeout ?? TimeSpan.FromSeconds(10))));
    }

    private static byte[] RandomFloats(int count, int seed)
    {
        var random = new Random(seed);
        var values = Enumerable.Range(0, count).Select(_ => (float)(random.NextDouble() * 2 - 1) * MathF.Pow(10, random.Next(-3, 3))).ToArray();
        return MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
    }

    /// <summary>Scalar fp32 addition: the reference the collectives' vectorised sums must match bit for bit.</summary>
    private static byte[] AddInto(byte[] a, byte[] b)
    {
        var x = MemoryMarshal.Cast<byte, float>(a.AsSpan());
        var y = MemoryMarshal.Cast<byte, float>(b.AsSpan());
        for (var i = 0; i < x.Length; i++) x[i] += y[i];
        return a;
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task All_reduce_gives_every_rank_the_bits_of_the_single_device_tree(int world)
    {
        const int floats = 100_003;
        var inputs = Enumerable.Range(0, world).Select(r => RandomFloats(floats, r)).ToArray();
        var expected = PairwiseTree.Reduce(0, world, r => (byte[])inputs[r].Clone(), AddInto);
        var ranks = await Join($"allreduce-{world}", world);
        var results = await OnEachRank(ranks, c =>
        {
            var data = (byte[])inputs[c.Rank].Clone();
            c.AllReduceSum(data);
            c.AllReduceSum(data); // a second round reuses the links and scratch buffers
            return data;
        });
        var twice = PairwiseTree.Reduce(0, world, _ => (byte[])expected.Clone(), AddInto);
        Assert.All(results, r => Assert.True(r.AsSpan().SequenceEqual(twice), "a rank's sum differs from the canonical tree"));
        foreach (var c in ranks) c.Dispose();
    }

    [Fact]
    public async Task Broadcast_all_gather_and_point_to_point_deliver_what_was_sent()
    {
        var ranks = await Join("misc", 4);
        var results = await OnEachRank(ranks, c =>
        {
            var broadcast = c.Rank == 2 ? new byte[] { 7, 8, 9 } : new byte[3];
            c.Broadcast(broadcast, root: 2);
            var gathered = new byte[8];
            c.AllGather(new[] { (byte)c.Rank, (byte)(10 * c.Rank) }, gathered);
            var received = new byte[1];
            if (c.Rank == 0) c.Send(3, new byte[] { 42 });
            if (c.Rank == 3) c.Receive(0, received);
            var loss = c.AllReduceSum(0.25 * (c.Rank + 1));
            return (broadcast, gathered, received, loss);
        });
        Assert.All(results, r => Assert.Equal(new byte[] { 7, 8, 9 }, r.broadcast));
        Assert.All(results, r => Assert.Equal(new byte[] { 0, 0, 1, 10, 2, 20, 3, 30 }, r.gathered));
        Assert.Equal(42, results[3].received[0]);
        Assert.All(results, r => Assert.Equal(2.5, r.loss));
        foreach (var c in ranks) c.Dispose();
    }

    [Fact]
    public async Task Reduce_scatter_leaves_each_rank_its_reduced_chunk()
    {
        var ranks = await Join("reduce-scatter", 2);
        var results = await OnEachRank(ranks, c =>
        {
            var data = MemoryMarshal.AsBytes(new float[] { 1, 2, 3, 4, 5 }.Select(v => v * (c.Rank + 1)).ToArray().AsSpan()).ToArray();
            c.ReduceScatterSum(data);
            var (offset, count) = c.ChunkOf(c.Rank, 5);
            return MemoryMarshal.Cast<byte, float>(data).Slice(offset, count).ToArray();
        });
        Assert.Equal(new float[] { 3, 6 }, results[0]);
        Assert.Equal(new float[] { 9, 12, 15 }, results[1]);
        foreach (var c in ranks) c.Dispose();
    }

    [Fact]
    public async Task Reduce_scatter_and_all_gather_over_uneven_runs_give_every_rank_the_all_reduced_buffer()
    {
        // Rank 0 owns two runs that are not neighbours, rank 1 one run, rank 2 none; value 9 is nobody's.
        var parts = new BufferParts([[(0, 2), (7, 2)], [(2, 5)], []]);
        var ranks = await Join("uneven", 3);
        var results = await OnEachRank(ranks, c =>
        {
            var data = MemoryMarshal.AsBytes(Enumerable.Range(1, 10).Select(v => (float)(v * (c.Rank + 1))).ToArray().AsSpan()).ToArray();
            c.ReduceScatterSum(data, parts);
            c.AllGatherParts(data, parts);
            return MemoryMarshal.Cast<byte, float>(data).ToArray();
        });
        var summed = Enumerable.Range(1, 9).Select(v => (float)(v * 6)).ToList();
        for (var r = 0; r < 3; r++) Assert.Equal([.. summed, 10f * (r + 1)], results[r]);
        foreach (var c in ranks) c.Dispose();
    }

    [Fact]
    public void The_parts_within_some_runs_keep_what_each_rank_owns_inside_them()
    {
        var parts = new BufferParts([[(0, 2), (7, 2)], [(2, 5)], []]);

        var within = parts.Within([(1, 2), (6, 2)]);

        Assert.Equal([(1, 1), (7, 1)], within.Of(0));
        Assert.Equal([(2, 1), (6, 1)], within.Of(1));
        Assert.Empty(within.Of(2));
    }

    [Fact]
    public void Parts_that_overlap_are_refused_with_both_ranks_named()
    {
        var error = Assert.Throws<ArgumentException>(() => new BufferParts([[(0, 4)], [(3, 2)]]));
        Assert.Contains("rank 0 and rank 1 overlap at 3", error.Message);
    }

    [Fact]
    public async Task A_peer_that_dies_mid_collective_surfaces_as_an_error_not_a_hang()
    {
        var ranks = await Join("dies", 2, TimeSpan.FromSeconds(30));
        var watch = Stopwatch.StartNew();
        var survivor = Task.Factory.StartNew(() => ranks[0].AllReduceSum(new byte[4 * 1000]), TaskCreationOptions.LongRunning);
        await Task.Delay(200);
        ranks[1].Dispose(); // rank 1's process is gone: its sockets close
        var error = await Assert.ThrowsAsync<CollectiveException>(() => survivor);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(10), $"took {watch.Elapsed}");
        Assert.Contains("rank 0", error.Message);
        ranks[0].Dispose();
    }

    [Fact]
    public async Task A_peer_that_stalls_surfaces_as_a_timeout_naming_it()
    {
        var ranks = await Join("stalls", 3, TimeSpan.FromSeconds(1));
        var watch = Stopwatch.StartNew();
        // Rank 2 never joins the collective.
        var waiting = OnEachRank(ranks[..2], c => { c.AllReduceSum(new byte[400]); return 0; });
        var error = await Assert.ThrowsAsync<CollectiveException>(() => waiting);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"took {watch.Elapsed}");
        Assert.Contains("rank(s) 2", error.Message);
        foreach (var c in ranks) c.Dispose();
    }

    [Fact]
    public async Task A_rank_that_never_joins_fails_the_join_within_the_timeout()
    {
        var endpoints = new[] { SiloA.Endpoint, SiloB.Endpoint };
        var error = await Assert.ThrowsAsync<CollectiveException>(() => SiloA.JoinAsync("lonely", 0, endpoints, TestSpecs.Secret, TimeSpan.FromMilliseconds(500)));
        Assert.Contains("rank 1", error.Message);
    }
}
