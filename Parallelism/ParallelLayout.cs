using System.Globalization;

namespace Elastic.Parallelism;

/// <summary>
/// A layout a user pins or asks for (<c>dp=2,pp=2,tp=1,zero=2</c>): the grid and, when given, the ZeRO stage, which
/// shards the optimizer state over the data-parallel axis without being an axis of its own. <paramref name="Experts"/>: the
/// expert-parallel degree when the text gives one (<c>ep=N</c>); the grid then has it, otherwise ep 1.
/// </summary>
public sealed record ParallelLayout(ParallelGrid Grid, int? Zero, int? Experts = null)
{
    /// <summary>Reads the grid's axes (<see cref="ParallelGrid.Parse"/>, missing ones 1) and an optional <c>zero=N</c>, listing every problem.</summary>
    public static ParallelLayout Parse(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        var zeros = parts.Where(p => p.Split('=', StringSplitOptions.TrimEntries)[0] == "zero").ToList();
        var errors = new List<string>();
        int? zero = null;
        if (zeros.Count > 1) errors.Add("zero: given more than once");
        else if (zeros.Count == 1)
        {
            var value = zeros[0].Split('=', StringSplitOptions.TrimEntries) is [_, var v] ? v : "";
            if (int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var z)) zero = z;
            else errors.Add($"zero: '{value}' is not a whole number");
        }
        var axes = string.Join(",", parts.Except(zeros));
        ParallelGrid? grid = null;
        try
        {
            grid = axes.Length == 0 ? ParallelGrid.Single : ParallelGrid.Parse(axes);
        }
        catch (ParallelGridException e)
        {
            errors.InsertRange(0, e.Errors.Select(m => m.Replace($"plan '{axes}': ", "", StringComparison.Ordinal)));
        }
        var experts = parts.Any(p => p.Split('=', StringSplitOptions.TrimEntries)[0] == "ep") ? grid?.Ep : null;
        return errors.Count == 0 ? new ParallelLayout(grid!, zero, experts) : throw new ParallelGridException(errors.Select(e => $"plan '{text}': {e}").ToList());
    }

    public override string ToString() => Zero is { } zero ? $"{Grid} zero={zero}" : Grid.ToString();
}
