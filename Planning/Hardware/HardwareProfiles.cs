using System.Text.Json;

namespace Elastic.Planning.Hardware;

/// <summary>The published device profiles (<c>hardware-profiles.json</c>, embedded): for planning clusters we cannot run here.</summary>
public static class HardwareProfiles
{
    private static readonly Lazy<IReadOnlyList<DeviceProfile>> Loaded = new(Load);

    public static IReadOnlyList<DeviceProfile> All => Loaded.Value;

    /// <summary>The profile named <paramref name="name"/> (case-insensitive), or null.</summary>
    public static DeviceProfile? Named(string name) => All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>The profile whose match a device model name contains (e.g. "NVIDIA H100 80GB HBM3"), or null.</summary>
    public static DeviceProfile? ForDeviceModel(string deviceModel) =>
        All.FirstOrDefault(p => p.Matches.Any(m => deviceModel.Contains(m, StringComparison.OrdinalIgnoreCase)));

    private static IReadOnlyList<DeviceProfile> Load()
    {
        using var stream = typeof(HardwareProfiles).Assembly.GetManifestResourceStream("hardware-profiles.json")
            ?? throw new InvalidOperationException("hardware-profiles.json is not embedded in Elastic.Planning");
        var options = new JsonSerializerOptions { PropertyNameCaseInsensitive = true, ReadCommentHandling = JsonCommentHandling.Skip };
        return JsonSerializer.Deserialize<ProfileFile>(stream, options)?.Profiles
            ?? throw new InvalidOperationException("hardware-profiles.json holds no profiles");
    }

    private sealed record ProfileFile(IReadOnlyList<DeviceProfile> Profiles);
}
