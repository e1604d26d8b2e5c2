namespace Elastic.Benchmarks;

/// <summary>The highest the native heap reached between two readings, sampled about every millisecond on its own thread.</summary>
internal sealed class HeapPeak : IDisposable
{
    private readonly Thread _thread;
    private long _peak;
    private volatile bool _stopped;

    public HeapPeak()
    {
        _thread = new Thread(() =>
        {
            while (!_stopped)
            {
                var now = NativeHeap.InUse();
                if (now > Interlocked.Read(ref _peak)) Interlocked.Exchange(ref _peak, now);
                Thread.Sleep(1);
            }
        }) { IsBackground = true, Name = "heap-peak" };
        _thread.Start();
    }

    /// <summary>The peak since the last reading (or now, if higher), and starts a new one.</summary>
    public long Take() => Math.Max(Interlocked.Exchange(ref _peak, 0), NativeHeap.InUse());

    public void Dispose()
    {
        _stopped = true;
        _thread.Join();
    }
}
