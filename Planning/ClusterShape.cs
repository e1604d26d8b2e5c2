using System.Globalization;
using Elastic.Planning.Hardware;

namespace Elastic.Planning;

/// <summary><paramref name="Count"/> nodes (silos) of <paramref name="Devices"/> devices each, all of one <paramref name="Profile"/>.</summary>
public sealed record NodeGroup(int Count, int Devices, DeviceProfile Profile);

/// <summary>
/// The devices a planner may place a job on: groups of alike nodes (silos). Written <c>1250x8:H100-80GB</c> (count x devices
/// per node : profile name), several groups joined with '+'. A tensor-parallel group lives on one node; pipeline stages and
/// replicas may span nodes.
/// </summary>
public sealed record ClusterShape(IReadOnlyList<NodeGroup> Groups)
{
    public int Devices => Groups.Sum(g => g.Count * g.Devices);

    /// <summary>The most devices one node has: the widest tensor-parallel group.</summary>
    public int LargestNode => Groups.Where(g => g.Count > 0).Select(g => g.Devices).DefaultIfEmpty(0).Max();

    /// <summary>Tensor-parallel groups of <paramref name="tp"/> the nodes hold (each inside one node).</summary>
    public long Blocks(int tp) => Groups.Sum(g => (long)g.Count * (g.Devices / tp));

    /// <summary>
    /// The device a layout's step waits for: the least memory and the slowest matmuls of the profiles present (a step is as fast
    /// as its slowest rank), with the links of the largest nodes (where the allocator places a job first).
    /// </summary>
    public DeviceProfile Weakest
    {
        get
        {
            var present = Groups.Where(g => g.Count > 0 && g.Devices > 0).ToList();
            var largest = present.MaxBy(g => g.Devices)!.Profile;
            return present.Count == 1 || present.All(g => g.Profile == largest) ? largest : largest with
            {
                Name = string.Join("+", present.Select(g => g.Profile.Name).Distinct()),
                MemoryGiB = present.Min(g => g.Profile.MemoryGiB),
                PeakTflops = largest.PeakTflops.Keys.ToDictionary(k => k, k => present.Min(g => g.Profile.PeakTflops.GetValueOrDefault(k, double.MaxValue))),
                MemoryBandwidthGBs = present.Min(g => g.Profile.MemoryBandwidthGBs),
                MatmulEfficiency = present.Min(g => g.Profile.MatmulEfficiency),
                KernelOverheadMicroseconds = present.Max(g => g.Profile.KernelOverheadMicroseconds),
            };
        }
    }

    /// <summary>Reads <c>COUNTxDEVICES:PROFILE[+...]</c>; every problem named with its text.</summary>
    public static ClusterShape Parse(string text)
    {
        var groups = new List<NodeGroup>();
        var errors = new List<string>();
        foreach (var part in text.Split('+', StringSplitOptions.TrimEntries))
        {
            var (size, profileName) = part.Split(':', 2, StringSplitOptions.TrimEntries) is [var s, var p] ? (s, p) : (part, "");
            var numbers = size.Split('x', StringSplitOptions.TrimEntries);
            if (numbers.Length != 2 || !Whole(numbers[0], out var count) || !Whole(numbers[1], out var devices) || count < 1 || devices < 1)
            {
                errors.Add($"'{part}': expected NODESxDEVICES:PROFILE with whole numbers of at least 1, e.g. 1250x8:H100-80GB");
                continue;
            }
            if (HardwareProfiles.Named(profileName) is not { } profile)
            {
                errors.Add($"'{part}': unknown device profile '{profileName}'; known: {string.Join(", ", HardwareProfiles.All.Select(p => p.Name))}");
                continue;
            }
            groups.Add(new NodeGroup(count, devices, profile));
        }
        if (errors.Count == 0 && groups.Sum(g => (long)g.Count * g.Devices) > Parallelism.ParallelGrid.MaxRanks)
            errors.Add($"{groups.Sum(g => (long)g.Count * g.Devices)} devices is more than {Parallelism.ParallelGrid.MaxRanks}");
        return errors.Count == 0 ? new ClusterShape(groups) : throw new FormatException($"--shape {text}: {string.Join("; ", errors)}");

        static bool Whole(string s, out int n) => int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out n);
    }

    public override string ToString() => string.Join("+", Groups.Select(g => $"{g.Count}x{g.Devices}:{g.Profile.Name}"));
}
