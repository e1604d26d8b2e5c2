using System.Text.Json;
using Elastic.Checkpoints.Stores;
using Elastic.Jobs.Reports;

namespace Elastic.Grains.Jobs;

/// <summary>
/// A job's committed steps, kept where they can grow. The job's record holds only the open tail
/// (<see cref="JobRecord.OpenSteps"/>, under two segments); each full segment of <see cref="SegmentSize"/> steps is
/// sealed into its own blob in the job's history folder, and only once that blob is stored does the record drop
/// those steps and count them in <see cref="JobRecord.SealedSteps"/>. So the record stays the same size however long
/// the job runs (a job store entity holds about 1 MB), and the whole history reads back in order. A store outage
/// delays sealing, never a step: the steps wait in the record and the next commit tries again.
/// </summary>
public sealed class StepLog(IBlobStore store, string jobId, Action<string>? onSealFailed = null)
{
    public const int SegmentSize = 1000;

    private Task _sealing = Task.CompletedTask;

    /// <summary>The blob of the sealed segment whose first step is <paramref name="first"/>.</summary>
    public string SegmentName(long first) => $"history/{jobId}/steps-{first:D12}.json";

    public static long Count(JobRecord record) => record.SealedSteps + record.OpenSteps.Count;

    public static StepRecord? Last(JobRecord record) => record.OpenSteps.Count > 0 ? record.OpenSteps[^1] : null;

    /// <summary>Adds the next committed step; seals the oldest segment in the background once two are open.</summary>
    public void Append(JobRecord record, StepRecord step)
    {
        record.OpenSteps.Add(step);
        if (record.OpenSteps.Count >= 2 * SegmentSize && _sealing.IsCompleted) _sealing = Seal(record);
    }

    /// <summary>Waits for a seal in flight (it never throws: a failed seal is retried at a later commit).</summary>
    public Task Settled() => _sealing;

    private async Task Seal(JobRecord record)
    {
        var first = record.SealedSteps + 1;
        var segment = record.OpenSteps.Take(SegmentSize).ToList();
        try
        {
            // A rewind may have left an older segment of this name: replace it (steps re-trained after it are new records).
            var name = SegmentName(first);
            var existing = await store.GetVersionedAsync(name);
            if (!await store.TrySwapAsync(name, JsonSerializer.SerializeToUtf8Bytes(segment), existing?.Version))
                throw new IOException($"{name} changed while it was sealed");
        }
        catch (Exception e)
        {
            onSealFailed?.Invoke($"sealing steps {first}..{first + SegmentSize - 1} of job {jobId} failed: {e.Message}");
            return;
        }
        // Steps committed meanwhile were appended after the segment; rewinds wait for this seal first.
        record.OpenSteps.RemoveRange(0, SegmentSize);
        record.SealedSteps += SegmentSize;
    }

    /// <summary>Up to <paramref name="max"/> committed steps after <paramref name="afterStep"/>, in order.</summary>
    public async Task<IReadOnlyList<StepRecord>> ReadAsync(JobRecord record, long afterStep, int max = int.MaxValue)
    {
        // A snapshot first: a seal that completes while segments load moves steps out of the record, not out of the snapshot.
        var (sealedSteps, open) = (record.SealedSteps, record.OpenSteps.ToList());
        var steps = new List<StepRecord>();
        for (var first = afterStep / SegmentSize * SegmentSize + 1; first <= sealedSteps && steps.Count < max; first += SegmentSize)
            steps.AddRange((await Load(first)).Where(s => s.Step > afterStep));
        steps.AddRange(open.Where(s => s.Step > afterStep));
        return steps.Count > max ? steps.GetRange(0, max) : steps;
    }

    /// <summary>Forgets the steps after <paramref name="step"/> (they will be trained again); returns how many.</summary>
    public async Task<long> RewindAsync(JobRecord record, long step)
    {
        await _sealing;
        var before = Count(record);
        if (step < record.SealedSteps)
        {
            // Back into sealed history: the segment holding the step opens again; later segments are simply no longer counted.
            var first = step / SegmentSize * SegmentSize + 1;
            var reopened = first <= step ? (await Load(first)).Where(s => s.Step <= step).ToList() : [];
            record.OpenSteps = reopened;
            record.SealedSteps = first - 1;
        }
        else
            record.OpenSteps.RemoveAll(s => s.Step > step);
        return before - Count(record);
    }

    private async Task<List<StepRecord>> Load(long first)
    {
        var name = SegmentName(first);
        var blob = await store.GetVersionedAsync(name) ?? throw new InvalidDataException($"the step history of job {jobId} lacks {name} in {store.Location}");
        return JsonSerializer.Deserialize<List<StepRecord>>(blob.Content) ?? throw new InvalidDataException($"{name} in {store.Location} is empty");
    }
}
