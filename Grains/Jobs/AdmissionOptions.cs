using Elastic.Jobs;

namespace Elastic.Grains.Jobs;

/// <summary>What a cluster lets submitted jobs touch on its silos' file systems (every silo must be configured alike).</summary>
public sealed record AdmissionOptions
{
    /// <summary>Folders a job's <c>data.source</c> may lie in (<c>Elastic:Jobs:DataRoots</c>); none: bundled corpora only.</summary>
    public PathRoots DataRoots { get; init; } = PathRoots.None;
    /// <summary>Folders a job's <c>output.directory</c> may lie in (<c>Elastic:Jobs:OutputRoots</c>); none: no model files are written.</summary>
    public PathRoots OutputRoots { get; init; } = PathRoots.None;
}
