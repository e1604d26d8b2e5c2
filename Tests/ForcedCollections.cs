using System.Runtime.CompilerServices;

namespace Elastic.Tests;

/// <summary>
/// ELASTIC_FORCE_COLLECTIONS=1 dotnet test ...: a thread forces collections and runs finalizers for the whole
/// test run, so that a tensor freed by its finalizer while a native call still uses it crashes the run at once
/// instead of once in many CI runs. Tests/Training/NativeLifetimeTests does the same for its own work only.
/// </summary>
internal static class ForcedCollections
{
    [ModuleInitializer]
    internal static void StartIfAsked()
    {
        if (Environment.GetEnvironmentVariable("ELASTIC_FORCE_COLLECTIONS") != "1") return;
        new Thread(() =>
        {
            while (true)
            {
                GC.Collect(0);
                GC.WaitForPendingFinalizers();
            }
        }) { IsBackground = true, Name = "forced collections" }.Start();
    }
}
