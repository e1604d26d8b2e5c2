using Elastic.Jobs;
using Orleans.Serialization;

namespace Elastic.GrainInterfaces;

/// <summary>
/// The job's own records (spec, report, errors) are plain types without Orleans attributes; they cross grain
/// calls as JSON (exceptions excepted). Silos and clients must both register this.
/// </summary>
public static class ElasticSerialization
{
    public static ISerializerBuilder AddElasticJobTypes(this ISerializerBuilder builder) =>
        builder.AddJsonSerializer(
            // Exceptions are left to Orleans' exception codec: JSON cannot carry one (its TargetSite is a MethodBase).
            isSupported: type => type.Namespace is { } ns && (ns == "Elastic.Jobs" || ns.StartsWith("Elastic.Jobs.", StringComparison.Ordinal))
                && !typeof(Exception).IsAssignableFrom(type),
            jsonSerializerOptions: SpecJson.Options);
}
