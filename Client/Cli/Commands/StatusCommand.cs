using System.CommandLine;
using System.Globalization;
using Spectre.Console;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic status JOB</c>: the job's state, plan and progress.</summary>
internal static class StatusCommand
{
    public static Command Create()
    {
        var job = new Argument<string>("job") { Description = "Job id" };
        return ClusterConnection.Command("status", "Show a job's state, plan and progress", [job], async (parse, console, client, cancellation) =>
        {
            var s = await client.GetStatusAsync(parse.GetValue(job)!, cancellation);
            var inv = CultureInfo.InvariantCulture;
            var grid = new Grid().AddColumn().AddColumn();
            void Row(string name, string value) => grid.AddRow(new Text(name), new Text(value));
            Row("job", s.JobId);
            Row("name", s.Name);
            Row("state", s.State.ToString());
            Row("steps", s.TrainedStep > s.CommittedStep
                ? $"{s.CommittedStep}/{s.TotalSteps} recorded ({s.TrainedStep} trained: the job store has not taken the rest yet)"
                : $"{s.CommittedStep}/{s.TotalSteps}");
            Row("loss", s.LastLoss?.ToString("F4", inv) ?? "-");
            Row("tokens/s", s.TokensPerSecond.ToString("N0", inv));
            if (s.Mfu is { } mfu) Row("MFU", mfu.ToString("P1", inv));
            Row("plan", s.Plan?.ToString() ?? "-");
            if (s.PredictedStepSeconds is { } predicted)
                Row("step time", $"{predicted * 1e3:N0} ms predicted for the layout, {(s.MeasuredStepSeconds is { } measured ? $"{measured * 1e3:N0} ms" : "-")} measured (last step)");
            if (s.Stages is not null) Row("stages", s.Stages);
            if (s.Memory is not null) Row("memory", $"{s.Memory} on the busiest device");
            if (s.Experts is not null) Row("experts", $"{s.Experts} (last step)");
            Row("device", s.Device);
            Row("submitted", s.SubmittedAt.ToString("u", inv));
            if (s.Error is not null) Row("error", s.Error);
            if (s.FinalParameterDigest is not null) Row("digest", s.FinalParameterDigest);
            console.Ansi.Write(grid);
            return 0;
        });
    }
}
