using System.CommandLine;
using Spectre.Console;

namespace Elastic.Cli.Commands;

/// <summary><c>elastic cluster</c>: the silos and their devices.</summary>
internal static class ClusterCommand
{
    public static Command Create() =>
        ClusterConnection.Command("cluster", "Show the cluster's silos and devices", [], async (_, console, client, cancellation) =>
        {
            var silos = await client.GetInventoryAsync(cancellation);
            var table = new Table().AddColumns("silo", "address", "devices", "in use", "device", "memory/device", "threads/device", "data plane");
            foreach (var s in silos)
                table.AddRow(Markup.Escape(s.Name), Markup.Escape(s.Silo.ToString()), s.Devices.ToString(), s.DevicesInUse.ToString(),
                    Markup.Escape(s.DeviceModel), $"{s.DeviceMemoryMiB} MiB", s.ThreadsPerDevice.ToString(), Markup.Escape(s.DataPlane));
            console.Ansi.Write(table);
            console.Plain.WriteLine($"{silos.Count} silo(s), {silos.Sum(s => s.Devices)} device(s), {silos.Sum(s => s.DevicesInUse)} in use");
            return 0;
        });
}
