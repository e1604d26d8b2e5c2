using Elastic.GrainInterfaces;

namespace Elastic.Grains.Jobs.Replanning;

/// <summary>A holder of the job's state and the unit that serves it (none for state parked on its devices).</summary>
public sealed record HeldState(IReplicaGrain? Unit, StateHolder Holder);

/// <summary>
/// The holders of the job's state when a re-plan begins, each probed once: how far its state got (null: it did not answer
/// in time, lost) and whether its devices are leaving. What the re-plan's phases ask of them lives here.
/// </summary>
public sealed class Survivors
{
    private Survivors(IReadOnlyList<HeldState> found, IReadOnlyList<StateHolder> holders) => (Found, Holders) = (found, holders);

    /// <summary>What held the state before the probe, in holder order.</summary>
    public IReadOnlyList<HeldState> Found { get; }

    /// <summary>Each holder as probed (its steps, whether it leaves), in the same order.</summary>
    public IReadOnlyList<StateHolder> Holders { get; }

    public IReadOnlyList<int> Lost => [.. Enumerable.Range(0, Holders.Count).Where(h => !Holders[h].Alive)];

    /// <summary>The furthest step a holder that answered has taken; null when none answered.</summary>
    public long? Furthest => Holders.Where(h => h.Alive).Select(h => h.Steps).Max();

    /// <summary>Devices of holders that answered: the job keeps them while it re-plans.</summary>
    public IReadOnlyList<DeviceSlot> AliveDevices => [.. Holders.Where(h => h.Alive).SelectMany(h => h.Devices)];

    /// <summary>Devices of holders that answered but leave: their silos wait for the re-plan, as they may have to serve the state.</summary>
    public IReadOnlyList<DeviceSlot> ServingDevices => [.. Holders.Where(h => h.Alive && h.Leaving).SelectMany(h => h.Devices)];

    /// <summary>
    /// These survivors once parked holders were unparked: each staged by its unit (of plan generation <paramref name="generation"/>),
    /// or lost (null: its unit could not take the state, its silo being gone or not answering).
    /// </summary>
    public Survivors Unparked(IReadOnlyDictionary<int, IReplicaGrain?> units, int generation)
    {
        StateHolder Staged(StateHolder holder) => holder with { Kind = HolderKind.Staged, Generation = generation };
        return new(
            [.. Found.Select((f, h) => units.GetValueOrDefault(h) is { } unit ? new HeldState(unit, Staged(f.Holder)) : f)],
            [.. Holders.Select((holder, h) => !units.TryGetValue(h, out var unit) ? holder : unit is null ? holder with { Steps = null } : Staged(holder))]);
    }

    /// <summary>
    /// These survivors with the holders on <paramref name="leaving"/> devices marked as leaving too: the capacity grain's word now,
    /// which counts a drain that began after the re-plan did (its change named only the devices leaving then).
    /// </summary>
    public Survivors AlsoLeaving(IReadOnlyCollection<DeviceSlot> leaving) =>
        new(Found, [.. Holders.Select(h => h.Leaving || !h.Devices.Any(leaving.Contains) ? h : h with { Leaving = true })]);

    /// <summary>The unit of holder <paramref name="h"/> (it has one: it is live or staged).</summary>
    public IReplicaGrain UnitOf(int h) => Found[h].Unit ?? throw new InvalidOperationException($"holder {h} is state parked on its devices: no unit serves it");

    /// <summary>A unit that answered at the furthest step, to read steps from; null when none did.</summary>
    public IReplicaGrain? Ahead => Enumerable.Range(0, Holders.Count).Where(h => Holders[h].Steps == Furthest && Furthest is not null)
        .Select(h => Found[h].Unit).OfType<IReplicaGrain>().FirstOrDefault();

    /// <summary>
    /// Asks every holder how far its state got, within <paramref name="timeout"/> (parked state is as far as it was when it
    /// was parked), marking the holders on <paramref name="leaving"/> devices.
    /// </summary>
    public static async Task<Survivors> Probe(IReadOnlyList<HeldState> found, IReadOnlyCollection<DeviceSlot> leaving, TimeSpan timeout)
    {
        var probes = found.Select(h => h.Unit is { } unit ? unit.CompletedSteps().WaitAsync(timeout) : Task.FromResult(h.Holder.Steps!.Value)).ToArray();
        try
        {
            await Task.WhenAll(probes);
        }
        catch
        {
            // Units that did not answer are lost; the rest are survivors.
        }
        return new Survivors(found, [.. found.Select((h, i) => h.Holder with
        {
            Steps = probes[i].IsCompletedSuccessfully ? probes[i].Result : null,
            Leaving = h.Holder.Devices.Any(leaving.Contains),
        })]);
    }
}
