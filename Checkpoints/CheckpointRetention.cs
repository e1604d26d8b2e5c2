using System.Globalization;
using System.Text.RegularExpressions;
using Elastic.Checkpoints.Stores;

namespace Elastic.Checkpoints;

/// <summary>What a retention pass kept and removed, by checkpoint folder.</summary>
public sealed record RetentionResult(IReadOnlyList<string> Kept, IReadOnlyList<string> Removed, IReadOnlyList<string> OrphansRemoved);

/// <summary>
/// Keeps the last K committed checkpoints, every Nth step, and whatever <c>latest</c> points at; removes the
/// rest, manifest first so that a checkpoint disappears before its chunks do. Folders without a manifest are
/// orphans of writers that died, removed once <c>latest</c> has moved past them; newer ones may still be
/// in flight and are left alone.
/// </summary>
public sealed partial class CheckpointRetention(IBlobStore store, CheckpointLayout layout)
{
    public async Task<RetentionResult> ApplyAsync(int keepLast, int keepEvery, CancellationToken cancellation = default)
    {
        if (keepLast < 1) throw new ArgumentOutOfRangeException(nameof(keepLast), keepLast, "keep at least the latest checkpoint");
        var folders = new Dictionary<string, List<string>>();
        await foreach (var name in store.ListAsync(layout.Root + "/", cancellation))
        {
            var match = FolderName().Match(name[(layout.Root.Length + 1)..]);
            if (!match.Success) continue;
            var folder = $"{layout.Root}/{match.Groups["folder"].Value}";
            if (!folders.TryGetValue(folder, out var blobs)) folders[folder] = blobs = [];
            blobs.Add(name);
        }
        var latest = await new CheckpointReader(store, layout).LatestAsync(cancellation);
        var committed = folders.Where(f => f.Value.Contains($"{f.Key}/manifest.json")).Select(f => (Folder: f.Key, Id: Parse(f.Key))).OrderByDescending(c => c.Id).ToList();
        var keep = committed.Take(keepLast).Select(c => c.Folder)
            .Concat(committed.Where(c => keepEvery > 0 && c.Id.Step % keepEvery == 0).Select(c => c.Folder))
            .Concat(latest is null ? [] : [layout.Folder(latest.Step, latest.Generation)])
            .ToHashSet();
        var removed = new List<string>();
        foreach (var (folder, _) in committed.Where(c => !keep.Contains(c.Folder)))
        {
            await store.DeleteAsync($"{folder}/manifest.json", cancellation);
            foreach (var blob in folders[folder].Where(b => !b.EndsWith("/manifest.json", StringComparison.Ordinal))) await store.DeleteAsync(blob, cancellation);
            removed.Add(folder);
        }
        var orphans = new List<string>();
        if (latest is not null)
        {
            foreach (var (folder, blobs) in folders.Where(f => !committed.Any(c => c.Folder == f.Key)))
            {
                var id = Parse(folder);
                if (id.Step > latest.Step || (id.Step == latest.Step && id.Generation >= latest.Generation)) continue;
                foreach (var blob in blobs) await store.DeleteAsync(blob, cancellation);
                orphans.Add(folder);
            }
        }
        return new RetentionResult(committed.Select(c => c.Folder).Where(keep.Contains).ToList(), removed, orphans);
    }

    private static (long Step, int Generation) Parse(string folder)
    {
        var match = FolderName().Match(folder[(folder.LastIndexOf('/') + 1)..] + "/");
        return (long.Parse(match.Groups["step"].Value, CultureInfo.InvariantCulture), int.Parse(match.Groups["generation"].Value, CultureInfo.InvariantCulture));
    }

    [GeneratedRegex(@"^(?<folder>step-(?<step>\d+)-g(?<generation>\d+))/")]
    private static partial Regex FolderName();
}
