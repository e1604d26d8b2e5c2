using System.Security.Cryptography;
using Orleans.Serialization;
using Orleans.Storage;

namespace Elastic.Silo.Hosting;

/// <summary>
/// Grain state in files under one directory, for the silos of one machine (the embedded cluster): job records and
/// the capacity grain's allocations outlive any one silo, as they do in Azure Table storage on a real cluster.
/// Writes are temporary file + rename; the ETag is the content's hash, checked under a process-wide lock.
/// </summary>
public sealed class DirectoryGrainStorage(string directory, Serializer serializer) : IGrainStorage
{
    private static readonly Lock Gate = new();

    public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        lock (Gate)
        {
            var path = PathOf(stateName, grainId);
            if (!File.Exists(path))
            {
                (grainState.RecordExists, grainState.ETag) = (false, null);
                return Task.CompletedTask;
            }
            var bytes = File.ReadAllBytes(path);
            grainState.State = serializer.Deserialize<T>(bytes);
            (grainState.RecordExists, grainState.ETag) = (true, ETagOf(bytes));
        }
        return Task.CompletedTask;
    }

    public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        var bytes = serializer.SerializeToArray(grainState.State);
        lock (Gate)
        {
            var path = PathOf(stateName, grainId);
            var current = File.Exists(path) ? ETagOf(File.ReadAllBytes(path)) : null;
            if (current != grainState.ETag) throw new InconsistentStateException($"{stateName} of {grainId} changed since it was read", current, grainState.ETag);
            Directory.CreateDirectory(directory);
            var temporary = $"{path}.tmp";
            File.WriteAllBytes(temporary, bytes);
            File.Move(temporary, path, overwrite: true);
            (grainState.RecordExists, grainState.ETag) = (true, ETagOf(bytes));
        }
        return Task.CompletedTask;
    }

    public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState)
    {
        lock (Gate)
        {
            File.Delete(PathOf(stateName, grainId));
            (grainState.RecordExists, grainState.ETag) = (false, null);
        }
        return Task.CompletedTask;
    }

    private string PathOf(string stateName, GrainId grainId) =>
        Path.Combine(directory, $"{stateName}-{Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(grainId.ToString())))[..32]}.bin");

    private static string ETagOf(byte[] bytes) => Convert.ToHexStringLower(SHA256.HashData(bytes))[..16];
}
