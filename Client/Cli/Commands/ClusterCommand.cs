using System.CommandLine;
using Spectre.Console;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic cluster</c>: the silos and their devices, and the scheduler's jobs with their shares and the queue.</summary>
internal static class ClusterCommand
{
    public static Command Create() =>
        ClusterConnection.Command("cluster", "Show the cluster's silos and devices", [], async (_, console, client, cancellation) =>
        {
            var silos = await client.GetInventoryAsync(cancellation);
            var table = new Table().AddColumns("silo", "address", "devices", "in use", "device", "memory/device", "threads/device", "data plane", "between processes");
            foreach (var s in silos)
                table.AddRow(Markup.Escape(s.Name), Markup.Escape(s.Silo.ToString()), s.Devices.ToString(), s.DevicesInUse.ToString(),
                    Markup.Escape(s.DeviceModel), $"{s.DeviceMemoryMiB} MiB", s.ThreadsPerDevice.ToString(), Markup.Escape(s.DataPlane),
                    Markup.Escape(s.DeviceTransport));
            console.Ansi.Write(table);
            console.Plain.WriteLine($"{silos.Count} silo(s), {silos.Sum(s => s.Devices)} device(s), {silos.Sum(s => s.DevicesInUse)} in use");
            var jobs = await client.GetScheduleAsync(cancellation);
            if (jobs.Count == 0) return 0;
            var schedule = new Table().AddColumns("job", "tenant", "priority", "devices", "share", "queue", "why");
            foreach (var j in jobs)
                schedule.AddRow(Markup.Escape(j.JobId), Markup.Escape(j.Standing.Tenant), j.Standing.Priority.ToString(), j.Held.ToString(), j.Cap.ToString(),
                    j.Position?.ToString() ?? "-", Markup.Escape(j.Note ?? ""));
            console.Ansi.Write(schedule);
            return 0;
        });
}
