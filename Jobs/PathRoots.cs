namespace Elastic.Jobs;

/// <summary>
/// Folders an operator lets submitted jobs read data from or write models to. A path is inside when, with
/// "..", symbolic links and relative parts resolved, it lies under one of the roots (also resolved), so a
/// job can neither climb out with ".." nor through a link.
/// </summary>
public sealed record PathRoots(IReadOnlyList<string> Roots)
{
    public static PathRoots None { get; } = new([]);

    /// <summary>Why <paramref name="path"/> is not allowed, or null when it lies under a root.</summary>
    /// <param name="setting">The configuration key that lists the roots, for the message.</param>
    public string? Problem(string path, string setting)
    {
        if (!Path.IsPathFullyQualified(path)) return "must be an absolute path";
        if (Roots.Count == 0) return $"this cluster accepts no such paths (the operator lists allowed folders in {setting})";
        var resolved = Resolve(path);
        foreach (var root in Roots)
        {
            var folder = Resolve(root).TrimEnd(Path.DirectorySeparatorChar) + Path.DirectorySeparatorChar;
            if (resolved.StartsWith(folder, StringComparison.Ordinal) || resolved + Path.DirectorySeparatorChar == folder) return null;
        }
        return $"is outside the folders this cluster allows ({setting}: {string.Join(", ", Roots)})";
    }

    /// <summary>The absolute path with every existing link along it followed (the part that does not exist yet is kept as written).</summary>
    private static string Resolve(string path)
    {
        var full = Path.GetFullPath(path);
        var missing = new Stack<string>();
        var existing = full;
        while (!Path.Exists(existing) && Path.GetDirectoryName(existing) is { } parent)
        {
            missing.Push(Path.GetFileName(existing));
            existing = parent;
        }
        var real = RealPath(existing);
        while (missing.Count > 0) real = Path.Combine(real, missing.Pop());
        return real;
    }

    private static string RealPath(string existing)
    {
        // Walk from the root so that a link anywhere along the path is followed, not only the last one.
        var root = Path.GetPathRoot(existing)!;
        var current = root;
        foreach (var part in existing[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            current = Path.Combine(current, part);
            var info = new FileInfo(current);
            if (info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is { } target)
                current = Path.GetFullPath(target.FullName);
        }
        return current;
    }
}
