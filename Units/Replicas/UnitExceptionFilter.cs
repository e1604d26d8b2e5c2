using Elastic.GrainInterfaces;

namespace Elastic.Units.Replicas;

/// <summary>
/// Calls into training units: an exception whose type Orleans cannot serialize (from Training or Checkpoints, which know
/// nothing of Orleans, or libtorch's) would reach the job as "Could not find a codec"; it leaves as a
/// <see cref="UnitFailedException"/> with its type and message instead.
/// </summary>
public sealed class UnitExceptionFilter : IIncomingGrainCallFilter
{
    public async Task Invoke(IIncomingGrainCallContext context)
    {
        try
        {
            await context.Invoke();
        }
        catch (Exception e) when (context.TargetContext.GrainInstance is ITrainingUnit && !Travels(e))
        {
            throw UnitFailedException.From(e);
        }
    }

    /// <summary>Exceptions the wire carries: the BCL's own (but libtorch's ExternalException, whose message holds native frames) and those declared beside the grain contracts.</summary>
    public static bool Travels(Exception e) =>
        e.GetType().Assembly == typeof(UnitFailedException).Assembly
        || (e.GetType().Namespace?.StartsWith("System", StringComparison.Ordinal) == true && e.GetType().Namespace != "System.Runtime.InteropServices");
}
