namespace Elastic.Tests;

/// <summary>Locates the repository from the test binaries, for tests that read examples or run scripts.</summary>
internal static class RepoPaths
{
    public static string Root { get; } = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Elastic.sln"))) return dir.FullName;
        throw new InvalidOperationException("Elastic.sln not found above " + AppContext.BaseDirectory);
    }
}
