using System.Collections.Concurrent;
using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>
/// A dedicated thread that runs a device's tensor work, one item at a time, in order. Never a shared
/// scheduler: TorchSharp's dispose scopes are thread-local, torch's intra-op thread count binds per thread,
/// and results are bitwise reproducible only for a fixed thread count (each item names the count it needs).
/// </summary>
public sealed class DeviceWorker : IDisposable
{
    private readonly BlockingCollection<Action> _queue = new();
    private readonly Thread _thread;
    private int _threads = -1;

    public DeviceWorker(string name)
    {
        _thread = new Thread(Loop) { IsBackground = true, Name = name };
        _thread.Start();
    }

    public string Name => _thread.Name!;

    /// <summary>Runs <paramref name="work"/> on the device thread with <paramref name="torchThreads"/> intra-op threads.</summary>
    public Task<T> Run<T>(int torchThreads, Func<T> work)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        try
        {
            _queue.Add(() =>
            {
                try
                {
                    if (_threads != torchThreads) set_num_threads(_threads = torchThreads);
                    completion.SetResult(KeepingTensorsAlive(work));
                }
                catch (Exception e)
                {
                    completion.SetException(e);
                }
            });
        }
        catch (InvalidOperationException)
        {
            completion.SetException(new ObjectDisposedException(Name, "the device worker has stopped"));
        }
        return completion.Task;
    }

    /// <summary>
    /// Runs <paramref name="work"/> in a dispose scope that keeps every tensor it makes (outside narrower scopes)
    /// reachable until it returns, then lets go of them, disposing none. A tensor that is only an argument of a
    /// native call is otherwise unreachable during that call, and a collection there runs its finalizer and frees
    /// it mid-call: a native crash (Tests/Training/NativeLifetimeTests).
    /// </summary>
    private static T KeepingTensorsAlive<T>(Func<T> work)
    {
        var scope = NewDisposeScope();
        try { return work(); }
        finally
        {
            scope.Detach(scope.DisposablesView);
            scope.Dispose();
        }
    }

    /// <summary>Runs one item on a fresh device thread that ends with it.</summary>
    public static async Task<T> RunOnce<T>(string name, int torchThreads, Func<T> work)
    {
        using var worker = new DeviceWorker(name);
        return await worker.Run(torchThreads, work);
    }

    private void Loop()
    {
        foreach (var work in _queue.GetConsumingEnumerable()) work();
    }

    /// <summary>Stops taking work; what is queued still runs.</summary>
    public void Dispose()
    {
        _queue.CompleteAdding();
        if (Thread.CurrentThread != _thread) _thread.Join(TimeSpan.FromSeconds(30));
    }
}
