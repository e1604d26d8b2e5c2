using Elastic.Training.Collectives;
using Elastic.Training.Engine;
using Elastic.Training.Parallel.TensorParallel;
using static TorchSharp.torch;

namespace Elastic.Tests.Training.TensorParallel;

/// <summary>Runs the same work on tp ranks, each on its own device thread, joined by in-memory links; results are host values.</summary>
internal static class TensorParallelRanks
{
    public static async Task<T[]> Run<T>(int tp, int shards, Func<TensorParallelGroup, T> work)
    {
        var links = new IPeerLink?[tp][];
        for (var r = 0; r < tp; r++) links[r] = new IPeerLink?[tp];
        for (var a = 0; a < tp; a++)
            for (var b = a + 1; b < tp; b++)
                (links[a][b], links[b][a]) = InMemoryPeerLink.CreatePair();
        var ranks = Enumerable.Range(0, tp).Select(r => DeviceWorker.RunOnce($"tp-rank-{r}", 1, () =>
        {
            using var communicator = tp == 1 ? null : new Communicator("tp-test", r, links[r], TimeSpan.FromSeconds(30));
            var group = new TensorParallelGroup(shards, communicator);
            using var scope = NewDisposeScope();
            var result = work(group);
            group.ThrowIfFailed();
            return result;
        }));
        return await Task.WhenAll(ranks);
    }

    /// <summary>The bit patterns of an fp32 tensor, for bitwise comparison (float equality would call -0 and +0 equal).</summary>
    public static int[] Bits(Tensor t) => System.Runtime.InteropServices.MemoryMarshal.Cast<float, int>(t.detach().cpu().contiguous().data<float>().ToArray()).ToArray();

    /// <summary>
    /// One layout's named results from every rank made into one-device results: sequence parts (<paramref name="split"/>) are
    /// concatenated in rank order, values every rank holds must agree, and the rest (per-shard names) appear on one rank only.
    /// </summary>
    public static Dictionary<string, int[]> Merge(IReadOnlyList<Dictionary<string, int[]>> ranks, ISet<string> split)
    {
        var merged = new Dictionary<string, int[]>();
        foreach (var name in ranks.SelectMany(r => r.Keys).Distinct())
        {
            var holders = ranks.Where(r => r.ContainsKey(name)).Select(r => r[name]).ToList();
            if (split.Contains(name)) merged[name] = holders.SelectMany(h => h).ToArray();
            else
            {
                Assert.All(holders, h => Assert.Equal(holders[0], h));
                merged[name] = holders[0];
            }
        }
        return merged;
    }

    /// <summary>Rows [first, first + count) along dimension <paramref name="dim"/> of a host tensor, as its own leaf that requires a gradient.</summary>
    public static Tensor Leaf(Tensor whole, long dim, long first, long count) => whole.narrow(dim, first, count).clone().requires_grad_();
}
