using Elastic.Jobs;
using Orleans.Serialization;

namespace Elastic.GrainInterfaces;

/// <summary>
/// The job's own records (spec, report, errors) are plain types without Orleans attributes; they cross grain
/// calls as JSON. Silos and clients must both register this.
/// </summary>
public static class ElasticSerialization
{
    public static ISerializerBuilder AddElasticJobTypes(this ISerializerBuilder builder) =>
        builder.AddJsonSerializer(
            isSupported: type => type.Namespace is { } ns && (ns == "Elastic.Jobs" || ns.StartsWith("Elastic.Jobs.", StringComparison.Ordinal)),
            jsonSerializerOptions: SpecJson.Options);
}
