using System.Globalization;
using System.Text;

namespace Elastic.Parallelism;

/// <summary>
/// A whole parallel layout, every dimension decided: dp replicas, each a pipeline of pp stages (v model chunks each under
/// the interleaved schedule, which a layout with v > 1 runs), each stage spread over tp devices of one silo; MoE experts spread over ep replicas; the
/// optimizer state sharded over the replicas at ZeRO stage <paramref name="Zero"/>; activations recomputed in backward as
/// <paramref name="Recompute"/> says. Written everywhere in the <c>--plan</c> notation (<see cref="ToString"/>):
/// <c>dp=2,pp=2,tp=2,zero=1</c>, dimensions at their neutral value left out but dp, pp and tp.
/// </summary>
public sealed record Layout(int Dp, int Pp = 1, int Tp = 1, int Ep = 1, int Zero = 0, int VirtualStages = 1, string Recompute = Recomputation.None,
    bool Interleaved = false)
{
    /// <summary>The devices the layout runs on.</summary>
    public int Devices => Dp * Pp * Tp;

    /// <summary>The devices of one replica (its stages' tensor-parallel groups).</summary>
    public int ReplicaDevices => Pp * Tp;

    /// <summary>The grid of ranks this layout runs on.</summary>
    public ParallelGrid Grid => ParallelGrid.Of(Dp, Pp, Tp, Ep);

    /// <summary>The pipeline schedule: interleaved when a stage holds more than one chunk (or when asked for with one).</summary>
    public string Schedule => VirtualStages > 1 || Interleaved ? Pipeline.PipelineSchedule.Interleaved : Pipeline.PipelineSchedule.OneFOneB;

    /// <summary>Why the numbers cannot make a layout, each naming its value; empty when they can (the rules of a job's spec are <c>LayoutRules</c>').</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = ParallelGrid.Validate(Dp, Pp, Tp, Ep).ToList();
        if (Zero is < 0 or > MaxZero) problems.Add($"zero = {Zero} is not a ZeRO stage this engine runs (0 to {MaxZero})");
        if (VirtualStages < 1) problems.Add($"v: must be at least 1, got {VirtualStages}");
        if (!Recomputation.All.Contains(Recompute)) problems.Add($"recompute: '{Recompute}' is not one of {string.Join(", ", Recomputation.All)}");
        return problems;
    }

    /// <summary>The highest ZeRO stage there is.</summary>
    public const int MaxZero = 3;

    public override string ToString()
    {
        var text = new StringBuilder(string.Create(CultureInfo.InvariantCulture, $"dp={Dp},pp={Pp},tp={Tp}"));
        if (Ep > 1) text.Append(CultureInfo.InvariantCulture, $",ep={Ep}");
        if (VirtualStages > 1) text.Append(CultureInfo.InvariantCulture, $",v={VirtualStages}");
        else if (Interleaved) text.Append(",schedule=interleaved");
        if (Zero > 0) text.Append(CultureInfo.InvariantCulture, $",zero={Zero}");
        if (Recompute != Recomputation.None) text.Append(CultureInfo.InvariantCulture, $",recompute={Recompute}");
        return text.ToString();
    }
}

/// <summary>How activations are kept for backward; every way gives the same bits.</summary>
public static class Recomputation
{
    /// <summary>Keep every activation autograd saves.</summary>
    public const string None = "none";
    /// <summary>Run the attention core again in backward instead of keeping its attention weights.</summary>
    public const string Selective = "selective";
    /// <summary>Keep only each layer's input and run the layer again in backward.</summary>
    public const string Full = "full";

    public static IReadOnlyList<string> All { get; } = [None, Selective, Full];
}
