namespace Elastic.GrainInterfaces;

/// <summary>
/// Work on a training unit's device failed with an exception the wire cannot carry (a collective's, libtorch's, the
/// engine's own): its type name and message, as the job's events show them.
/// </summary>
[GenerateSerializer, Alias("Elastic.UnitFailedException")]
public sealed class UnitFailedException : Exception
{
    public UnitFailedException() { }

    public UnitFailedException(string message) : base(message) { }

    /// <summary>How a collective's failure reads once it left its unit (see <see cref="From"/>).</summary>
    public const string CollectivePrefix = "CollectiveException:";

    /// <summary>Whether <paramref name="e"/> is a collective that failed because a peer did (a consequence, not a cause).</summary>
    public static bool IsCollective(Exception e) => e is UnitFailedException { Message: var m } && m.StartsWith(CollectivePrefix, StringComparison.Ordinal);

    /// <summary>
    /// Of the calls of units that worked together, the error that caused the others: the first that is not a collective's;
    /// null when none faulted (calls that were only cancelled, a link to their silo terminated, say so themselves).
    /// </summary>
    public static Exception? Cause(IEnumerable<Task> calls)
    {
        var errors = calls.Where(c => c.IsFaulted).Select(c => c.Exception!.GetBaseException()).ToList();
        return errors.FirstOrDefault(e => !IsCollective(e)) ?? errors.FirstOrDefault();
    }

    /// <summary>Keeps the first line of the message: libtorch appends its native stack frames to the rest.</summary>
    public static UnitFailedException From(Exception e)
    {
        var line = e.Message.Split('\n', 2)[0].Trim();
        return new UnitFailedException($"{e.GetType().Name}: {line}");
    }
}
