using Elastic.Checkpoints.Stores;

namespace Elastic.Checkpoints;

/// <summary>What a retention pass kept and removed, by checkpoint folder.</summary>
public sealed record RetentionResult(IReadOnlyList<string> Kept, IReadOnlyList<string> Removed, IReadOnlyList<string> OrphansRemoved);

/// <summary>
/// Keeps the last K committed checkpoints, every Nth step, and whatever <c>latest</c> points at; removes the
/// rest, manifest first so that a checkpoint disappears before its chunks do. Folders that are not committed are
/// orphans of writers that died, or checkpoints found damaged, removed once <c>latest</c> has moved past them;
/// newer ones may still be in flight and are left alone.
/// </summary>
public sealed class CheckpointRetention(IBlobStore store, CheckpointLayout layout)
{
    public async Task<RetentionResult> ApplyAsync(int keepLast, int keepEvery, CancellationToken cancellation = default)
    {
        if (keepLast < 1) throw new ArgumentOutOfRangeException(nameof(keepLast), keepLast, "keep at least the latest checkpoint");
        var folders = new Dictionary<string, List<string>>();
        var ids = new Dictionary<string, (long Step, int Generation)>();
        await foreach (var name in store.ListAsync(layout.Root + "/", cancellation))
        {
            if (layout.CheckpointOf(name) is not { } id) continue;
            var folder = layout.Folder(id.Step, id.Generation);
            ids[folder] = id;
            if (!folders.TryGetValue(folder, out var blobs)) folders[folder] = blobs = [];
            blobs.Add(name);
        }
        var latest = await new CheckpointReader(store, layout).LatestAsync(cancellation);
        var committed = CheckpointReader.Committed(layout, [.. folders.Values.SelectMany(b => b)])
            .Select(c => (Folder: layout.Folder(c.Step, c.Generation), Id: (c.Step, c.Generation))).ToList();
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
                var id = ids[folder];
                if (id.Step > latest.Step || (id.Step == latest.Step && id.Generation >= latest.Generation)) continue;
                // A damaged checkpoint's mark goes last: without it, its manifest would make it committed again.
                var marker = layout.DamagedMarker(id.Step, id.Generation);
                foreach (var blob in blobs.OrderBy(b => b.EndsWith("/manifest.json", StringComparison.Ordinal) ? 0 : b == marker ? 2 : 1))
                    await store.DeleteAsync(blob, cancellation);
                orphans.Add(folder);
            }
        }
        return new RetentionResult(committed.Select(c => c.Folder).Where(keep.Contains).ToList(), removed, orphans);
    }
}
