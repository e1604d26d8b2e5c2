namespace Elastic.GrainInterfaces;

/// <summary>Tenants own jobs and API keys. A name is what keys, jobs and the dashboard show, so it is kept plain.</summary>
public static class Tenants
{
    /// <summary>Jobs submitted through the Orleans client (trusted, inside the cluster) belong to this tenant.</summary>
    public const string Default = "default";

    /// <summary>Why <paramref name="name"/> cannot name a tenant, or null if it can.</summary>
    public static string? Problem(string? name) =>
        name is { Length: >= 1 and <= 40 } && char.IsAsciiLetterLower(name[0]) && name.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-')
            ? null
            : "must be 1 to 40 characters: lower-case letters, digits and '-', starting with a letter";
}
