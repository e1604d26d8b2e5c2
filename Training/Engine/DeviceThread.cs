using static TorchSharp.torch;

namespace Elastic.Training.Engine;

/// <summary>
/// Runs tensor work synchronously on a dedicated thread with a fixed number of intra-op threads.
/// Never on a shared scheduler: TorchSharp's dispose scopes are thread-local, torch's thread count binds
/// per thread, and results are bitwise reproducible only for a fixed thread count.
/// </summary>
public static class DeviceThread
{
    public static Task<T> Run<T>(string name, int torchThreads, Func<T> work)
    {
        var completion = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                set_num_threads(torchThreads);
                completion.SetResult(work());
            }
            catch (Exception e)
            {
                completion.SetException(e);
            }
        })
        {
            IsBackground = true,
            Name = name,
        };
        thread.Start();
        return completion.Task;
    }
}
