using Elastic.GrainInterfaces;
using Orleans.Storage;

namespace Elastic.Grains.Jobs;

/// <summary>
/// Writes a job's record to grain storage, one write at a time. Progress is written in the background and retried with
/// backoff, so an outage of the store never slows training; a plan or a transition is written before the job goes on.
/// A write that timed out may still have landed, leaving this activation's ETag behind its own record: that conflict is
/// resolved by reading the stored record and, if no other coordinator moved the job on (a newer generation, or more
/// committed steps), writing ours over it. A record that did move on means this coordinator is stale.
/// <paramref name="recording"/> is asked, just before each write, what to do once that write has landed: the journal takes a
/// snapshot of its views then and shows it once the store holds it, so nothing is shown that a lost coordinator could take back.
/// Background writes come at most every <paramref name="interval"/>: each carries the record's open steps (up to two
/// thousand), so a job of fast steps writing after each would spend a core on its record.
/// </summary>
public sealed class JobRecordWriter(IPersistentState<JobRecord> state, Action<string> onFailure, TimeProvider time, Func<Action> recording, TimeSpan interval)
{
    private static readonly TimeSpan FirstRetry = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LastRetry = TimeSpan.FromSeconds(30);
    private readonly SemaphoreSlim _gate = new(1, 1);
    private bool _dirty;
    private Task? _background;

    /// <summary>A background write is due or under way.</summary>
    public bool Pending => _dirty || _background is { IsCompleted: false };

    /// <summary>Set when the stored record moved on without this activation: another coordinator drives the job.</summary>
    public StaleCoordinatorException? Stale { get; private set; }

    /// <summary>Writes now, retrying with backoff for up to <paramref name="patience"/>; throws when the store stays down that long, or this coordinator is stale.</summary>
    public async Task WriteAsync(TimeSpan patience)
    {
        var deadline = time.GetUtcNow() + patience;
        for (var delay = FirstRetry; ; delay = Next(delay))
        {
            try
            {
                await WriteOnce();
                return;
            }
            catch (Exception e) when (e is not StaleCoordinatorException && time.GetUtcNow() + delay < deadline)
            {
                onFailure(e.Message);
                await Task.Delay(delay, time);
            }
        }
    }

    /// <summary>
    /// Writes the record as this activation read it, before it serves anyone. A coordinator whose silo was declared dead may
    /// still run (paused, or not yet told) and write the record; once this write lands, its next one fails and it stops, and
    /// nobody is shown steps from a read the other's writes went past. A record that moved on since it was read is read
    /// again and claimed instead, up to <paramref name="attempts"/> times. False when it was not claimed (the store did not
    /// answer within <paramref name="patience"/>, or kept moving): the activation goes on with what it read, and its first
    /// write fences instead.
    /// </summary>
    public async Task<bool> ClaimAsync(int attempts, TimeSpan patience)
    {
        for (var attempt = 1; attempt <= attempts; attempt++)
        {
            Stale = null;
            try
            {
                await WriteAsync(patience);
                return true;
            }
            catch (StaleCoordinatorException)
            {
                // The failed write read the newer record into the state: that one is claimed next.
            }
            catch (Exception e)
            {
                onFailure(e.Message);
                return false;
            }
        }
        return false;
    }

    /// <summary>
    /// Writes in the background as soon as the store takes it; several requests while one is in flight become one write. The
    /// write starts after the caller's turn, so a change made of several edits in one turn is written whole.
    /// </summary>
    public void WriteSoon()
    {
        _dirty = true;
        // On the grain's scheduler nothing interleaves between the loop's last look at _dirty and its end, so a request
        // either is seen by the running loop or finds it completed and starts the next.
        if (_background is not { IsCompleted: false }) _background = Background();
    }

    private async Task Background()
    {
        await Task.Yield();
        var delay = FirstRetry;
        while (_dirty && Stale is null)
        {
            _dirty = false;
            try
            {
                await WriteOnce();
                delay = FirstRetry;
                if (interval > TimeSpan.Zero) await Task.Delay(interval, time);
            }
            catch (StaleCoordinatorException)
            {
                break;
            }
            catch (Exception e)
            {
                _dirty = true;
                onFailure(e.Message);
                await Task.Delay(delay, time);
                delay = Next(delay);
            }
        }
    }

    private async Task WriteOnce()
    {
        if (Stale is not null) throw Stale;
        await _gate.WaitAsync();
        try
        {
            try
            {
                var landed = recording();
                await state.WriteStateAsync();
                landed();
            }
            catch (InconsistentStateException)
            {
                var ours = state.State;
                await state.ReadStateAsync();
                var stored = state.State;
                if (stored.Generation > ours.Generation || StepLog.Count(stored) > StepLog.Count(ours) || (stored.State.IsTerminal() && !ours.State.IsTerminal()))
                {
                    Stale = new StaleCoordinatorException(
                        $"the stored record moved on (generation {stored.Generation}, {StepLog.Count(stored)} steps, {stored.State}) past this coordinator's (generation {ours.Generation}, {StepLog.Count(ours)} steps)");
                    throw Stale;
                }
                // Our own earlier write landed after all: the fence holds, so ours (the newer) goes over it.
                state.State = ours;
                var landed = recording();
                await state.WriteStateAsync();
                landed();
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    private static TimeSpan Next(TimeSpan delay) => delay * 2 < LastRetry ? delay * 2 : LastRetry;
}

/// <summary>Another coordinator drives the job now; this one must stop without touching the job's units or record.</summary>
public sealed class StaleCoordinatorException(string message) : Exception(message);
