using System.Globalization;
using Elastic.Planning;

namespace Elastic.Grains.Jobs;

/// <summary>
/// Whether moving a running job to a better layout pays (pure): the training time it saves over the time the new devices are
/// expected to stay, against what the move costs (its state over the slowest link, and preparing the new units). A move must
/// also gain at least <paramref name="MinGain"/> of throughput, so that devices joining and leaving in turn do not make a job
/// flap between layouts that are nearly as good.
/// </summary>
public sealed record MoveWeighing(double MinGain, TimeSpan Prepare)
{
    /// <summary>
    /// How long new devices are expected to stay, from the times of the job's re-plans: the median gap between its last few
    /// (clamped to 1 minute .. 1 hour), or <paramref name="guess"/> before it has three.
    /// </summary>
    public static TimeSpan ExpectedStay(IReadOnlyList<DateTimeOffset> replans, TimeSpan guess)
    {
        var recent = replans.TakeLast(6).ToList();
        if (recent.Count < 3) return guess;
        var gaps = recent.Zip(recent.Skip(1), (a, b) => b - a).Order().ToList();
        return TimeSpan.FromTicks(Math.Clamp(gaps[gaps.Count / 2].Ticks, TimeSpan.FromMinutes(1).Ticks, TimeSpan.FromHours(1).Ticks));
    }

    /// <summary>The decision and what it weighed, in words for the job's event.</summary>
    public sealed record Weighed(bool Move, string Why);

    /// <param name="stateBytes">The state that moves (parameters and optimizer moments).</param>
    /// <param name="linkBytesPerSecond">The slowest link it crosses.</param>
    /// <param name="stay">How long the devices are expected to stay (the job's recent churn).</param>
    public Weighed Weigh(LayoutPrediction current, LayoutPrediction candidate, double stateBytes, double linkBytesPerSecond, TimeSpan stay)
    {
        var gain = candidate.TokensPerSecond / current.TokensPerSecond - 1;
        var cost = stateBytes / linkBytesPerSecond + Prepare.TotalSeconds;
        // Training seconds saved: the new layout does in (1 - Tnew/Told) less time what the old one would do over the stay.
        var saved = stay.TotalSeconds * (1 - candidate.Step.Seconds / current.Step.Seconds);
        var move = gain >= MinGain && saved > cost;
        var why = string.Create(CultureInfo.InvariantCulture,
            $"predicted {current.TokensPerSecond:N0} -> {candidate.TokensPerSecond:N0} tokens/s ({gain:+0%;-0%}); moving {stateBytes / 1e6:N1} MB and preparing cost ~{cost:0.0} s, "
            + $"saving ~{Math.Max(0, saved):0} s over the ~{stay.TotalMinutes:0.#} min the devices are expected to stay");
        return new Weighed(move, move ? why : $"{why}: not worth it (a move must gain {MinGain:0%} and save more than it costs)");
    }
}
