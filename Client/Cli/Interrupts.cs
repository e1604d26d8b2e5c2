using System.Runtime.InteropServices;

namespace Elastic.Cli;

/// <summary>
/// Ctrl-C, SIGINT and SIGTERM during a long command: the first asks it to stop at the next step boundary (it then
/// saves what it needs to resume), a second aborts at once with exit code 130.
/// </summary>
internal sealed class Interrupts : IDisposable
{
    private readonly CancellationTokenSource _stop;
    private readonly List<PosixSignalRegistration> _registrations = [];
    private readonly Action<string> _note;
    private readonly string _stopping;
    private int _count;

    /// <param name="cancellation">The command's own token (tests cancel through it); it stops the command like a first signal.</param>
    /// <param name="note">Where to say what the signal does.</param>
    /// <param name="stopping">What the first signal does, in words.</param>
    public Interrupts(CancellationToken cancellation, Action<string> note, string stopping = "stopping at the next step boundary to save a checkpoint")
    {
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        _note = note;
        _stopping = stopping;
        foreach (var signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM })
            _registrations.Add(PosixSignalRegistration.Create(signal, OnSignal));
    }

    /// <summary>Cancelled by the first interrupt: stop at the next step boundary.</summary>
    public CancellationToken Stop => _stop.Token;

    public bool Interrupted => _stop.IsCancellationRequested;

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        if (Interlocked.Increment(ref _count) > 1)
        {
            _note("interrupted again: aborting now");
            AbortNow(Commands.CommandRunner.Cancelled);
        }
        _note($"{context.Signal}: {_stopping} (interrupt again to abort at once)");
        _stop.Cancel();
    }

    /// <summary>
    /// Ends the process at once. Not through <see cref="Environment.Exit"/>: its exit handlers tear libtorch down under device
    /// threads still in a step's kernels, and the process dies of a segmentation fault (exit 139) instead of 130.
    /// </summary>
    private static void AbortNow(int code)
    {
        Console.Out.Flush();
        Console.Error.Flush();
        if (OperatingSystem.IsWindows()) Environment.Exit(code);
        ExitWithoutHandlers(code);
    }

    [DllImport("libc", EntryPoint = "_exit")]
    private static extern void ExitWithoutHandlers(int status);

    public void Dispose()
    {
        foreach (var registration in _registrations) registration.Dispose();
        _stop.Dispose();
    }
}
