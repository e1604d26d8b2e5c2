using Elastic.Client;
using Elastic.GrainInterfaces;
using Elastic.Silo.Hosting;

namespace Elastic.Cli;

/// <summary>
/// The demo's capacity changes on an in-process cluster (<c>elastic train --devices N --churn</c>): a third of the way in,
/// a silo holding replicas leaves gracefully (the job drains off it); two thirds in, a new silo joins (the job grows onto
/// it). The job goes on through both and ends with the digest of a run on a fixed layout.
/// </summary>
internal static class ClusterChurn
{
    public static async Task Run(EmbeddedCluster cluster, ElasticConnection connection, string jobId, int steps, int devicesPerSilo, Action<string> note,
        CancellationToken cancellation)
    {
        var client = connection.Client;
        if (await UntilStep(client, jobId, steps / 3, cancellation) is not { Plan: { } plan }) return;
        var coordinator = await connection.Cluster.GetGrain<IManagementGrain>(0).GetActivationAddress(connection.Cluster.GetGrain<IJobGrain>(jobId));
        // Any silo but the first (it hosts membership); one that does not coordinate the job if there is a choice.
        var leaving = plan.Devices.Select(d => d.Silo).Distinct().Where(cluster.MayStop).OrderBy(s => s.Equals(coordinator)).FirstOrDefault();
        if (leaving is null) return;
        note($"[churn] {leaving} leaves the cluster (graceful stop: it drains first)");
        await cluster.StopSiloAsync(leaving);
        if (await UntilStep(client, jobId, 2 * steps / 3, cancellation) is null) return;
        note($"[churn] a new silo with {devicesPerSilo} device(s) joins the cluster");
        await cluster.AddSiloAsync(devicesPerSilo, cancellation);
    }

    /// <summary>The job's status once it committed <paramref name="step"/>; null when it ended first.</summary>
    private static async Task<JobStatus?> UntilStep(ElasticClient client, string jobId, long step, CancellationToken cancellation)
    {
        while (true)
        {
            var status = await client.GetStatusAsync(jobId, cancellation);
            if (status.State.IsTerminal()) return null;
            if (status.CommittedStep >= step) return status;
            await Task.Delay(100, cancellation);
        }
    }
}
