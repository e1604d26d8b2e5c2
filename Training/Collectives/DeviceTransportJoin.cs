namespace Elastic.Training.Collectives;

/// <summary>
/// Gives the groups of a unit, once joined over the data plane, a device transport (NCCL) where the coordinator drew an id for
/// them. The ranks agree over the group itself, so that all carry tensors over it or none does: a rank without NCCL, or a join
/// that failed on one, leaves the group on frames and never fails it.
/// </summary>
/// <param name="Ids">The coordinator's id for each group that spans processes on GPUs, by group name (the same on every rank).</param>
/// <param name="Join">How this rank joins the transport of an id, as its rank in the group; null: it cannot (<paramref name="WhyNot"/>).</param>
public sealed record DeviceTransportJoin(IReadOnlyDictionary<string, byte[]> Ids, Func<byte[], Communicator, IDeviceTransport>? Join, string WhyNot)
{
    /// <summary>No ids: every group sends its tensors between processes as frames.</summary>
    public static DeviceTransportJoin None { get; } = new(new Dictionary<string, byte[]>(), null, "no ids were drawn");

    /// <summary>
    /// Joins the transport of <paramref name="name"/>'s id, if it has one, with every rank of <paramref name="group"/> (which
    /// all call this at the same point); says what the group's tensors between processes go over.
    /// </summary>
    public async Task<string> TryAsync(string name, Communicator group)
    {
        if (!Ids.TryGetValue(name, out var id)) return "frames";
        var unable = await Disagreeing(group, Join is not null);
        if (unable.Count > 0)
            return $"frames (rank {string.Join(", ", unable)} cannot join a device transport{(Join is null ? $": {WhyNot}" : "")})";
        IDeviceTransport? transport = null;
        var failure = "";
        try
        {
            transport = await Task.Run(() => Join!(id, group));
        }
        catch (Exception e) when (e is CollectiveException or ArgumentException or InvalidOperationException)
        {
            failure = $": {e.Message}";
        }
        var failed = await Disagreeing(group, transport is not null);
        if (failed.Count == 0)
        {
            group.CarryTensorsOver(transport!);
            return transport!.Name;
        }
        transport?.Dispose();
        return $"frames (rank {string.Join(", ", failed)} failed to join{failure})";
    }

    /// <summary>The ranks that answer no, in order: every rank learns every answer (an all-gather of one byte over the data plane).</summary>
    private static Task<List<int>> Disagreeing(Communicator group, bool yes) => Task.Run(() =>
    {
        var answers = new byte[group.WorldSize];
        group.AllGather(new[] { (byte)(yes ? 1 : 0) }, answers);
        return Enumerable.Range(0, group.WorldSize).Where(r => answers[r] == 0).ToList();
    });
}
