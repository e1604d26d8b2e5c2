using Elastic.Training.Collectives;
using Elastic.Training.Engine;
using static TorchSharp.torch;
using static Elastic.Training.ExplicitScalars;

namespace Elastic.Tests.Collectives;

/// <summary>
/// Tensor collectives over every transport: lent between device threads of one process, sent as frames over TCP between
/// processes, mixed, and mixed with a device transport between the processes (NCCL's part, played on CPU by mailboxes). Each gives the bits of the canonical tree summed on one thread, in fp32 as the byte collectives
/// do and in bf16, which the byte collectives cannot carry.
/// </summary>
public sealed class TensorCollectivesTests : DataPlanesFixture
{
    public enum Transport { InProcess, Tcp, Mixed, Device }

    private async Task<Communicator[]> Join(string group, int world, Transport transport)
    {
        var planes = Enumerable.Range(0, world).Select(r => transport switch
        {
            Transport.InProcess => SiloA,
            Transport.Tcp => r == 0 ? SiloA : Apart(),
            _ => r % 2 == 0 ? SiloA : SiloB,
        }).ToArray();
        var endpoints = planes.Select(p => p.Endpoint).ToArray();
        var ranks = await Task.WhenAll(Enumerable.Range(0, world).Select(r => planes[r].JoinAsync($"{group}-{transport}", r, endpoints, TestSpecs.Secret, TimeSpan.FromSeconds(20))));
        if (transport == Transport.Device)
        {
            var boxes = new MailboxDeviceTransport.Mailboxes();
            foreach (var c in ranks) c.CarryTensorsOver(new MailboxDeviceTransport(boxes, c.Rank));
        }
        return ranks;
    }

    /// <summary>With a device transport, nothing went as frames: every peer was lent the tensors or got them over the transport.</summary>
    private static void AssertNoFrames(Transport transport, Communicator[] ranks)
    {
        if (transport == Transport.Device) Assert.All(ranks, c => Assert.Equal(0, c.BytesSent));
    }

    /// <summary>Values over six orders of magnitude, so that a different order of additions shows in the bits.</summary>
    private static Tensor Input(int rank, long[] shape, ScalarType dtype)
    {
        var random = new Random(1000 + rank);
        var values = new float[shape.Aggregate(1L, (a, b) => a * b)];
        for (var i = 0; i < values.Length; i++) values[i] = (float)(random.NextDouble() * 2 - 1) * MathF.Pow(10, random.Next(-3, 3));
        using var floats = tensor(values, shape);
        return floats.to(dtype);
    }

    private static byte[] Bits(Tensor t) => t.contiguous().bytes.ToArray();

    public static TheoryData<int, Transport, ScalarType> Cases()
    {
        var cases = new TheoryData<int, Transport, ScalarType>();
        foreach (var world in new[] { 2, 3, 4 })
            foreach (var transport in Enum.GetValues<Transport>())
                cases.Add(world, transport, ScalarType.Float32);
        cases.Add(4, Transport.InProcess, ScalarType.BFloat16);
        cases.Add(4, Transport.Mixed, ScalarType.BFloat16);
        cases.Add(4, Transport.Device, ScalarType.BFloat16);
        return cases;
    }

    [Theory, MemberData(nameof(Cases))]
    public async Task All_reduce_reduce_scatter_and_all_gather_give_the_bits_of_the_one_thread_tree(int world, Transport transport, ScalarType dtype)
    {
        long[] shape = [world * 6, 1001];
        var inputs = Enumerable.Range(0, world).Select(r => Input(r, shape, dtype)).ToArray();
        var tree = PairwiseTree.Reduce(0, world, r => inputs[r].clone(), (a, b) => a.add_(b, alpha: One));
        var ranks = await Join($"tensors-{world}-{dtype}", world, transport);

        var results = await OnEachRank(ranks, c =>
        {
            using var whole = c.TensorAllReduceSum(inputs[c.Rank]);
            using var again = c.TensorAllReduceSum(inputs[c.Rank]); // the links carry a second round in order
            using var rows = c.TensorReduceScatterSum(inputs[c.Rank]);
            using var gathered = c.TensorAllGather(rows);
            using var inPlace = inputs[c.Rank].clone();
            c.TensorAllReduceSumInPlace(inPlace);
            return (Whole: Bits(whole), Again: Bits(again), Rows: Bits(rows), Gathered: Bits(gathered), InPlace: Bits(inPlace));
        });

        var expected = Bits(tree);
        var rowBytes = expected.Length / world;
        for (var r = 0; r < world; r++)
        {
            Assert.True(results[r].Whole.AsSpan().SequenceEqual(expected), $"rank {r}'s all-reduce differs from the one-thread tree");
            Assert.Equal(results[r].Whole, results[r].Again);
            Assert.Equal(results[r].Whole, results[r].InPlace);
            Assert.True(results[r].Rows.AsSpan().SequenceEqual(expected.AsSpan(r * rowBytes, rowBytes)), $"rank {r}'s reduce-scatter rows differ");
            Assert.Equal(expected, results[r].Gathered);
        }
        AssertNoFrames(transport, ranks);
        // The inputs are the callers': no collective adds into them.
        Assert.All(Enumerable.Range(0, world), r => Assert.Equal(Bits(Input(r, shape, dtype)), Bits(inputs[r])));
        foreach (var c in ranks) c.Dispose();
    }

    [CudaFact]
    public async Task Frames_carry_CUDA_tensors_through_kept_page_locked_copies_with_the_bits_of_the_one_thread_tree()
    {
        const int world = 2;
        long[] shape = [world * 6, 1001];
        var inputs = Enumerable.Range(0, world).Select(r => Input(r, shape, ScalarType.Float32)).ToArray();
        var expected = Bits(PairwiseTree.Reduce(0, world, r => inputs[r].clone(), (a, b) => a.add_(b, alpha: One)));
        var ranks = await Join("tensors-cuda-frames", world, Transport.Tcp);

        var results = await OnEachRank(ranks, c =>
        {
            using var scope = NewDisposeScope();
            var onDevice = inputs[c.Rank].to(new Device(TorchSharp.DeviceType.CUDA, 0));
            var first = c.TensorAllReduceSum(onDevice);
            var kept = c.KeptBytes;
            var again = c.TensorAllReduceSum(onDevice);
            return (First: Bits(first.cpu()), Again: Bits(again.cpu()), Device: first.device_type, Kept: kept, KeptAfter: c.KeptBytes);
        });

        Assert.All(results, r =>
        {
            Assert.Equal(TorchSharp.DeviceType.CUDA, r.Device);
            Assert.True(r.First.AsSpan().SequenceEqual(expected), "a CUDA all-reduce over frames differs from the one-thread tree");
            Assert.Equal(r.First, r.Again);
            // The second round reused the frames and their page-locked copies: nothing more is kept.
            Assert.Equal(r.Kept, r.KeptAfter);
        });
        Assert.True(ranks.Sum(c => c.BytesSent) > 0, "the ranks sent no frames");
        foreach (var c in ranks) c.Dispose();
    }

    [Fact]
    public async Task A_rank_that_writes_its_tensors_as_soon_as_a_collective_returns_never_changes_what_its_peers_read()
    {
        // Peers read lent tensors where they lie: a collective returns only once they are done, or these values would break.
        const int world = 4, rounds = 40;
        var ranks = await Join("tensors-lent", world, Transport.InProcess);
        var seen = await OnEachRank(ranks, c =>
        {
            using var x = tensor(Enumerable.Repeat((float)(c.Rank + 1), 64 * 4096).ToArray(), [64, 4096]);
            var values = new List<(float, float)>();
            for (var round = 0; round < rounds; round++)
            {
                using var sum = c.TensorAllReduceSum(x);
                sum.add_(sum, alpha: One); // its chunk was lent to the peers' all-gather
                values.Add((sum.min().item<float>(), sum.max().item<float>()));
                using var gathered = c.TensorAllGather(x);
                x.add_(x, alpha: One); // lent to the peers' all-gather too
                values.Add((gathered.min().item<float>(), gathered.max().item<float>()));
                using var inPlace = x.clone();
                c.TensorAllReduceSumInPlace(inPlace);
                inPlace.add_(inPlace, alpha: One); // lent to both halves of the peers' all-reduce
                values.Add((inPlace.min().item<float>(), inPlace.max().item<float>()));
            }
            return values;
        });
        // Round k: the ranks hold 2^k x (1, 2, 3, 4): their sum is 10 x 2^k, doubled; gathered, 2^k to 4 x 2^k; then they
        // hold twice that, and its sum doubled is 40 x 2^k.
        var expected = Enumerable.Range(0, rounds).SelectMany(k => new[]
        {
            (20f * MathF.Pow(2, k), 20f * MathF.Pow(2, k)), (MathF.Pow(2, k), 4f * MathF.Pow(2, k)), (40f * MathF.Pow(2, k), 40f * MathF.Pow(2, k)),
        }).ToList();
        Assert.All(seen, values => Assert.Equal(expected, values));
        foreach (var c in ranks) c.Dispose();
    }

    [Fact]
    public async Task Fp32_tensor_all_reduce_has_the_bits_of_the_byte_collective()
    {
        long[] shape = [4, 25_000];
        var ranks = await Join("tensors-vs-bytes", 4, Transport.InProcess);
        var results = await OnEachRank(ranks, c =>
        {
            using var input = Input(c.Rank, shape, ScalarType.Float32);
            var bytes = Bits(input);
            c.AllReduceSum(bytes);
            using var sum = c.TensorAllReduceSum(input);
            return (Bytes: bytes, Tensor: Bits(sum));
        });
        Assert.All(results, r => Assert.Equal(r.Bytes, r.Tensor));
        foreach (var c in ranks) c.Dispose();
    }

    [Theory]
    [InlineData(Transport.InProcess, ScalarType.Float32)]
    [InlineData(Transport.Tcp, ScalarType.Float32)]
    [InlineData(Transport.Mixed, ScalarType.Float32)]
    [InlineData(Transport.Mixed, ScalarType.BFloat16)]
    [InlineData(Transport.Device, ScalarType.BFloat16)]
    public async Task The_gradient_all_reduce_over_blocks_of_micro_batches_gives_the_bits_of_the_one_thread_tree_and_of_the_byte_collective(Transport transport, ScalarType dtype)
    {
        // 3 replicas over 8 micro-batches: blocks [0, 3), [3, 6), [6, 8); the first two are pieces of two subtrees each.
        const int world = 3;
        var blocks = new ReplicaBlocks(8, world);
        long[] shape = [10_007];
        var pieces = Enumerable.Range(0, world).Select(r => blocks.PiecesOf(r).Select((_, k) => Input(10 * r + k, shape, dtype)).ToArray()).ToArray();
        var tree = blocks.Reduce((r, k) => pieces[r][k].clone(), (a, b) => a.add_(b, alpha: One));
        var ranks = await Join($"tensor-blocks-{dtype}", world, transport);

        var results = await OnEachRank(ranks, c =>
        {
            var mine = pieces[c.Rank].Select(p => p.clone()).ToArray();
            c.TensorAllReduceSumInPlace(mine, blocks);
            var tensorSum = Bits(mine[0]);
            c.TensorAllReduceSumInPlace(mine.Select((p, k) => p.copy_(pieces[c.Rank][k])).ToArray(), blocks); // a second round over the same links
            byte[]? byteSum = null;
            if (dtype == ScalarType.Float32)
            {
                var wires = pieces[c.Rank].Select(Bits).ToArray();
                c.AllReduceSum([.. wires.Select(w => (Memory<byte>)w)], blocks);
                byteSum = wires[0];
            }
            return (Tensor: tensorSum, Again: Bits(mine[0]), Bytes: byteSum);
        });

        var expected = Bits(tree);
        Assert.All(results, r =>
        {
            Assert.True(r.Tensor.AsSpan().SequenceEqual(expected), "a rank's gradient sum differs from the one-thread tree");
            Assert.Equal(expected, r.Again);
            if (r.Bytes is not null) Assert.Equal(expected, r.Bytes);
        });
        foreach (var c in ranks) c.Dispose();
    }

    [Theory]
    [InlineData(Transport.InProcess)]
    [InlineData(Transport.Mixed)]
    [InlineData(Transport.Device)]
    public async Task Zeros_reduce_scatter_and_all_gather_of_runs_match_the_byte_collectives_and_leave_what_no_rank_owns(Transport transport)
    {
        // The parts of two runs spread over 3 replicas (as ZeRO's whole parameters are): some ranks own pieces of both.
        const int world = 3;
        var blocks = new ReplicaBlocks(8, world);
        var parts = BufferParts.Spread([(100, 3000), (5000, 4000)], world);
        long[] shape = [10_007];
        var pieces = Enumerable.Range(0, world).Select(r => blocks.PiecesOf(r).Select((_, k) => Input(10 * r + k, shape, ScalarType.Float32)).ToArray()).ToArray();
        var ranks = await Join("tensor-parts", world, transport);

        var results = await OnEachRank(ranks, c =>
        {
            var mine = pieces[c.Rank].Select(p => p.clone()).ToArray();
            c.TensorReduceScatterSumInPlace(mine, blocks, parts);
            var scattered = Bits(mine[0]);
            c.TensorAllGatherParts(mine[0], parts);
            var wires = pieces[c.Rank].Select(Bits).ToArray();
            c.ReduceScatterSum([.. wires.Select(w => (Memory<byte>)w)], blocks, parts);
            var byteScattered = wires[0].ToArray();
            c.AllGatherParts(wires[0], parts);
            return (Scattered: scattered, Gathered: Bits(mine[0]), ByteScattered: byteScattered, ByteGathered: wires[0]);
        });

        Assert.All(results, r =>
        {
            Assert.Equal(r.ByteScattered, r.Scattered);
            Assert.Equal(r.ByteGathered, r.Gathered);
        });
        // Outside the runs every rank keeps its own first piece; inside them all hold the same sum.
        Assert.Equal(Bits(pieces[1][0]).AsSpan(0, 100 * sizeof(float)).ToArray(), results[1].Gathered.AsSpan(0, 100 * sizeof(float)).ToArray());
        Assert.Equal(results[0].Gathered.AsSpan(100 * sizeof(float), 3000 * sizeof(float)).ToArray(), results[2].Gathered.AsSpan(100 * sizeof(float), 3000 * sizeof(float)).ToArray());
        foreach (var c in ranks) c.Dispose();
    }

    [Fact]
    public async Task A_rank_whose_in_process_peer_closed_its_links_fails_as_a_collective_and_its_other_peers_fail_at_once()
    {
        // A unit released beside a replica closes its links: lending to it must read as a lost peer (which re-plans the
        // job), never as this rank's own error (which, seen on two silos, ends it; fifth soak, chaos-0-12).
        var ranks = await Join("tensors-peer-gone", 3, Transport.InProcess);
        ranks[2].Dispose();
        var failures = await OnEachRank(ranks[..2], c =>
        {
            using var part = ones(4);
            return Record.Exception(() => c.TensorAllGather(part).Dispose());
        });
        var lost = Assert.IsType<CollectiveException>(failures[0]);
        Assert.Contains("the in-process peer closed its link", lost.Message);
        Assert.IsType<CollectiveException>(failures[1]);
        foreach (var c in ranks) c.Dispose();
    }

    [Fact]
    public async Task Ranks_that_disagree_on_a_tensor_fail_the_collective_naming_both_shapes_instead_of_adding_wrong_pieces()
    {
        var ranks = await Join("tensors-disagree", 2, Transport.InProcess);
        var outcomes = await OnEachRank(ranks, c =>
        {
            using var part = zeros(c.Rank == 0 ? [2, 3] : [2, 4]);
            try
            {
                c.TensorAllGather(part).Dispose();
                return null;
            }
            catch (CollectiveException e)
            {
                return e.Message;
            }
        });
        Assert.Contains(outcomes, m => m is not null && m.Contains("a Float32 tensor of [2, 3]") && m.Contains("a Float32 tensor of [2, 4]"));
        Assert.All(outcomes, Assert.NotNull);
        foreach (var c in ranks) c.Dispose();
    }
}
