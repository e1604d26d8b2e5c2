using Orleans.Storage;

namespace Elastic.Grains.Capacity;

/// <summary>
/// Writes the capacity record through storage outages, as jobs' re-plans wait for the job store: retried with backoff
/// (0.2 s doubling to 5 s) for up to two minutes, so a burst of 503s or resets delays an allocation instead of failing the
/// job that asked. A write whose reply was lost but which landed leaves this activation's ETag behind its own record; the
/// capacity grain is its record's only writer, so it takes the stored ETag and writes its own state over it.
/// </summary>
public sealed class CapacityRecordWriter(IPersistentState<CapacityRecord> record, TimeProvider time)
{
    public static readonly TimeSpan Patience = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan FirstRetry = TimeSpan.FromMilliseconds(200), LastRetry = TimeSpan.FromSeconds(5);

    public async Task WriteAsync()
    {
        var deadline = time.GetUtcNow() + Patience;
        for (var delay = FirstRetry; ; delay = delay * 2 < LastRetry ? delay * 2 : LastRetry)
        {
            try
            {
                await WriteOnce();
                return;
            }
            catch (Exception e) when (e is OrleansException or TimeoutException && time.GetUtcNow() + delay < deadline)
            {
                await Task.Delay(delay, time);
            }
        }
    }

    private async Task WriteOnce()
    {
        try
        {
            await record.WriteStateAsync();
        }
        catch (InconsistentStateException)
        {
            var ours = record.State;
            await record.ReadStateAsync();
            record.State = ours;
            await record.WriteStateAsync();
        }
    }
}
