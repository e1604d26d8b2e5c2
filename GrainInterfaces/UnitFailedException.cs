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

    /// <summary>Keeps the first line of the message: libtorch appends its native stack frames to the rest.</summary>
    public static UnitFailedException From(Exception e)
    {
        var line = e.Message.Split('\n', 2)[0].Trim();
        return new UnitFailedException($"{e.GetType().Name}: {line}");
    }
}
