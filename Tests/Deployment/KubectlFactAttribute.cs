namespace Elastic.Tests.Deployment;

/// <summary>A theory that needs <c>kubectl</c> (with its built-in kustomize) on PATH; skipped, saying so, where it is missing.</summary>
public sealed class KubectlTheoryAttribute : TheoryAttribute
{
    public KubectlTheoryAttribute()
    {
        if (Kubectl.Path is null) Skip = "kubectl is not on PATH (apt-get install kubectl: 1.32 with kustomize 5.5), so the overlays cannot be rendered";
    }
}

/// <summary>Where kubectl is, if anywhere.</summary>
public static class Kubectl
{
    public static string? Path { get; } = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
        .Select(d => System.IO.Path.Combine(d, "kubectl")).FirstOrDefault(File.Exists);
}
