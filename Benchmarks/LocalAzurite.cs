using System.Diagnostics;

namespace Elastic.Benchmarks;

/// <summary>An Azurite for a benchmark, started and stopped by infra/local/azurite.sh, its data in a folder of the benchmark's.</summary>
internal static class LocalAzurite
{
    public static Task Start(string folder, int port) => Shell("start", folder, $"{port}");

    public static Task Stop(string folder) => Shell("stop", folder);

    /// <summary>Azurite's well-known development account on <paramref name="port"/>.</summary>
    public static string ConnectionString(int port) =>
        $"AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;DefaultEndpointsProtocol=http;BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;";

    private static async Task Shell(params string[] args)
    {
        var info = new ProcessStartInfo("bash") { UseShellExecute = false };
        info.ArgumentList.Add(Path.Combine(BenchmarkRecord.RepositoryRoot(), "infra", "local", "azurite.sh"));
        foreach (var arg in args) info.ArgumentList.Add(arg);
        using var process = Process.Start(info)!;
        await process.WaitForExitAsync();
        if (process.ExitCode != 0) throw new InvalidOperationException($"azurite.sh {string.Join(' ', args)} failed");
    }
}
