using Elastic.Planning.Hardware;

namespace Elastic.Planning;

/// <summary>Seconds of the ring collectives a layout runs, over a link (nccl-tests' bus-bandwidth convention).</summary>
public static class CollectiveTime
{
    /// <summary>An all-reduce of <paramref name="bytes"/> over <paramref name="ranks"/>: a reduce-scatter then an all-gather.</summary>
    public static double AllReduce(double bytes, int ranks, LinkProfile link) =>
        ranks <= 1 ? 0 : link.Seconds(2.0 * (ranks - 1) / ranks * bytes, 2 * (ranks - 1));

    /// <summary>An all-gather (or a reduce-scatter) whose whole is <paramref name="bytes"/>.</summary>
    public static double AllGather(double bytes, int ranks, LinkProfile link) =>
        ranks <= 1 ? 0 : link.Seconds((double)(ranks - 1) / ranks * bytes, ranks - 1);

    /// <summary>An all-to-all in which each rank holds <paramref name="bytes"/> and keeps 1/ranks of it.</summary>
    public static double AllToAll(double bytes, int ranks, LinkProfile link) =>
        ranks <= 1 ? 0 : link.Seconds((double)(ranks - 1) / ranks * bytes, ranks - 1);

    /// <summary>One send of <paramref name="bytes"/> to a neighbour.</summary>
    public static double Send(double bytes, LinkProfile link) => link.Seconds(bytes, 1);
}
