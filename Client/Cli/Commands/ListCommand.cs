using System.CommandLine;
using System.Globalization;
using Spectre.Console;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic list</c>: every job on the cluster.</summary>
internal static class ListCommand
{
    public static Command Create() =>
        ClusterConnection.Command("list", "List the cluster's jobs", [], async (_, console, client, cancellation) =>
        {
            var table = new Table().AddColumns("job", "state", "steps", "loss", "plan", "submitted");
            foreach (var j in (await client.ListAsync(cancellation)).OrderBy(j => j.SubmittedAt))
                table.AddRow(Markup.Escape(j.JobId), j.State.ToString(), $"{j.CommittedStep}/{j.TotalSteps}",
                    j.LastLoss?.ToString("F4", CultureInfo.InvariantCulture) ?? "-", Markup.Escape(j.Plan?.ToString() ?? "-"),
                    j.SubmittedAt.ToString("u", CultureInfo.InvariantCulture));
            console.Ansi.Write(table);
            return 0;
        });
}
