using Elastic.Client;
using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Jobs;
using Elastic.Service;
using Elastic.Service.Access;
using Elastic.Silo.Hosting;

namespace Elastic.Cli.Commands;

/// <summary>
/// `train --devices N`: an in-process cluster runs the spec as a job and the CLI follows it. Interrupted, the job checkpoints
/// at its next step boundary and is cancelled; --resume starts the cluster on the same folder and resumes that job.
/// </summary>
internal static class ClusterTraining
{
    public static async Task<int> Run(CliOutput console, TrainingSpec spec, int devices, string deviceKind, bool churn, bool resume, RunTarget target, CancellationToken cancellation)
    {
        var widths = LayoutRules.DeviceCounts(spec);
        if (devices < 1 || !widths.Any(w => w <= devices))
            throw new CliException($"--devices {devices}: every layout of the spec needs at least {widths.DefaultIfEmpty(0).Min()} device(s) (devices.min {spec.Devices.Min}, devices.max {spec.Devices.Max}, {spec.Batch.MicroBatchesPerStep} micro-batches per step, pinned: {SpecLayout.Pins(spec)})");
        var run = target.Run;
        var resumedJob = resume ? ResumableJob(run) : null;
        var layout = EmbeddedCluster.Layout(devices);
        TrainCommand.Describe(console, spec, $"an in-process cluster of {layout.Count} silo(s) with {devices} {deviceKind} device(s), "
            + (spec.Parallel.Start is { } start ? $"starting on {start}" : "on the layout the planner chooses"));
        var model = spec.Output.Directory is { } chosen ? new RunFolder(chosen) : run;
        // The job may read the spec's data file and write its model into the run folder, nothing else.
        var admission = new AdmissionOptions
        {
            DataRoots = new PathRoots(spec.Data.Source.StartsWith(DataSpec.BundledPrefix, StringComparison.Ordinal) ? [] : [spec.Data.Source]),
            OutputRoots = new PathRoots([model.Path]),
        };
        await using var cluster = await EmbeddedCluster.StartAsync(layout, run.Checkpoints, cancellation, admission, keepState: resume, deviceKind);
        await using var connection = await ElasticConnection.ConnectAsync(ClusterAddress.Static([cluster.Gateway]), cancellation: cancellation);
        var client = connection.Client;
        await client.WaitForDevicesAsync(devices, TimeSpan.FromSeconds(30), cancellation);
        // The HTTP API on localhost, for this run only: its admin key is made here and shown this once.
        var adminKey = ApiKeySecret.New();
        await using var api = await ApiServer.StartAsync(cluster.Grains,
            new ApiOptions { BootstrapAdminKey = adminKey.Text, ExportDirectory = Path.Combine(run.Path, "exports") }, cancellation: cancellation);
        console.Plain.WriteLine($"API {api.Address} (admin key for this run: {adminKey.Text})");
        string jobId;
        if (resumedJob is { } id)
        {
            jobId = id;
            await client.ResumeAsync(jobId, cancellation: cancellation);
            console.Plain.WriteLine($"job {jobId} resumed");
        }
        else
        {
            jobId = await client.SubmitAsync(spec with { Output = new OutputSpec { Directory = model.Path } }, cancellation: cancellation);
            await File.WriteAllTextAsync(run.JobIdFile, jobId, CancellationToken.None);
            console.Plain.WriteLine($"job {jobId}");
        }

        using var interrupts = new Interrupts(cancellation, console.Plain.WriteLine);
        // An interrupt asks the job for a checkpoint and then to stop: it takes the checkpoint at the next boundary, then ends.
        await using var onInterrupt = interrupts.Stop.Register(() => _ = CheckpointAndCancel(client, jobId));
        var final = await TrainingProgress.Show(console, spec.Steps, async sink =>
        {
            var changes = churn ? ClusterChurn.Run(cluster, connection, jobId, spec.Steps, layout[0], sink.Note, interrupts.Stop) : Task.CompletedTask;
            var ended = await JobWatcher.Follow(client, jobId, sink, CancellationToken.None);
            await changes;
            return ended;
        });
        var report = await client.GetReportAsync(jobId, CancellationToken.None);
        console.Plain.WriteLine($"{jobId}: {final.State}, {final.Plan}");
        if (final.State == JobState.Cancelled && interrupts.Interrupted)
        {
            report.WriteTo(target.ReportPath);
            return TrainCommand.Interrupted(console, final.LastCheckpointStep ?? 0, spec.Steps, run.Checkpoints, target);
        }
        if (final.Error is not null) console.Plain.WriteLine($"error: {final.Error}");
        await TrainCommand.Finish(console, report, final.State == JobState.Completed ? model : null, target);
        return final.State == JobState.Completed ? 0 : 1;
    }

    private static string ResumableJob(RunFolder run) =>
        File.Exists(run.JobIdFile) ? File.ReadAllText(run.JobIdFile).Trim()
            : throw new CliException($"--resume: {run.Path} holds no interrupted job ({run.JobIdFile} is missing; an interrupted `elastic train --devices N` leaves it)");

    private static async Task CheckpointAndCancel(ElasticClient client, string jobId)
    {
        try
        {
            await client.CheckpointAsync(jobId);
            await client.CancelAsync(jobId);
        }
        catch (ElasticException)
        {
            // The job ended on its own meanwhile: nothing to stop.
        }
    }
}
