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

    /// <summary>Of the errors of units that worked together, the one that caused the others: the first that is not a collective's.</summary>
    public static Exception Cause(IReadOnlyList<Exception> errors) => errors.FirstOrDefault(e => !IsCollective(e)) ?? errors[0];

    /// <summary>Keeps the first line of the message: libtorch appends its native stack frames to the rest.</summary>
    public static UnitFailedException From(Exception e)
    {
        var line = e.Message.Split('\n', 2)[0].Trim();
        return new UnitFailedException($"{e.GetType().Name}: {line}");
    }
}
