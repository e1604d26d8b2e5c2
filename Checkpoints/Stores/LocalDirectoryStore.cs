using System.Runtime.CompilerServices;
using System.Security.Cryptography;

namespace Elastic.Checkpoints.Stores;

/// <summary>
/// A blob store in a local directory (the embedded default). Blobs are written to a temporary file, flushed
/// to disk and renamed into place, so a reader never sees a partial blob; create-only is a rename that refuses
/// to overwrite. Versions are content hashes; swaps hold an exclusive lock file.
/// </summary>
public sealed class LocalDirectoryStore(string root) : IBlobStore
{
    private readonly string _root = Path.GetFullPath(root);

    public string Location => _root;

    public async Task PutCreateOnlyAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellation = default)
    {
        var path = PathOf(name);
        if (File.Exists(path)) throw new BlobAlreadyExistsException(name, Location);
        var temporary = await WriteTemporary(path, content, cancellation);
        try
        {
            File.Move(temporary, path, overwrite: false);
        }
        catch (IOException) when (File.Exists(path))
        {
            File.Delete(temporary);
            throw new BlobAlreadyExistsException(name, Location);
        }
    }

    public async Task<byte[]> GetRangeAsync(string name, long offset, long length, CancellationToken cancellation = default)
    {
        var path = PathOf(name);
        if (!File.Exists(path)) throw new BlobNotFoundException(name, Location);
        await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.Asynchronous);
        var available = Math.Max(0, Math.Min(length, stream.Length - offset));
        var buffer = new byte[available];
        stream.Position = Math.Min(offset, stream.Length);
        await stream.ReadExactlyAsync(buffer, cancellation);
        return buffer;
    }

    public async Task<VersionedBlob?> GetVersionedAsync(string name, CancellationToken cancellation = default)
    {
        var path = PathOf(name);
        if (!File.Exists(path)) return null;
        var content = await File.ReadAllBytesAsync(path, cancellation);
        return new VersionedBlob(content, Convert.ToHexStringLower(SHA256.HashData(content)));
    }

    public async Task<bool> TrySwapAsync(string name, ReadOnlyMemory<byte> content, string? expectedVersion, CancellationToken cancellation = default)
    {
        var path = PathOf(name);
        await using var gate = await Lock(path + ".lock", cancellation);
        var current = await GetVersionedAsync(name, cancellation);
        if (current?.Version != expectedVersion) return false;
        File.Move(await WriteTemporary(path, content, cancellation), path, overwrite: true);
        return true;
    }

    public async IAsyncEnumerable<string> ListAsync(string prefix, [EnumeratorCancellation] CancellationToken cancellation = default)
    {
        if (!Directory.Exists(_root)) yield break;
        foreach (var file in Directory.EnumerateFiles(_root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            cancellation.ThrowIfCancellationRequested();
            var name = Path.GetRelativePath(_root, file).Replace(Path.DirectorySeparatorChar, '/');
            if (name.StartsWith(prefix, StringComparison.Ordinal) && !name.EndsWith(".lock", StringComparison.Ordinal) && !name.Contains(".tmp-", StringComparison.Ordinal))
                yield return name;
        }
        await Task.CompletedTask;
    }

    public Task DeleteAsync(string name, CancellationToken cancellation = default)
    {
        File.Delete(PathOf(name));
        return Task.CompletedTask;
    }

    private string PathOf(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Contains("..", StringComparison.Ordinal) || Path.IsPathRooted(name))
            throw new ArgumentException($"blob name '{name}' must be a relative path without '..'", nameof(name));
        return Path.Combine(_root, name.Replace('/', Path.DirectorySeparatorChar));
    }

    private static async Task<string> WriteTemporary(string path, ReadOnlyMemory<byte> content, CancellationToken cancellation)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temporary = $"{path}.tmp-{Guid.NewGuid():N}";
        await using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
        {
            await stream.WriteAsync(content, cancellation);
            stream.Flush(flushToDisk: true);
        }
        return temporary;
    }

    private static async Task<FileStream> Lock(string path, CancellationToken cancellation)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        while (true)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                await Task.Delay(5, cancellation);
            }
        }
    }
}
