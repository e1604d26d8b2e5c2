using System.Globalization;

namespace Elastic.Benchmarks;

/// <summary>
/// What <c>spot-trace</c> replays: <c>[SCALE] [HOURS] [--trace aws|synthetic] [--checkpoint-minutes M,M] [--mode notice|kills|restart]
/// [--churn K,K]</c>; with <c>--churn</c>, the synthetic trace at each churn (<see cref="ChurnSweep"/>).
/// SCALE is how many times faster than real time (on 2 cores every silo start and stop costs CPU that training also needs,
/// so the replay is sped up only as far as that stays small); HOURS replays only the first hours of each trace. Only a run
/// of both traces with all three modes is recorded in docs/benchmarks.md.
/// </summary>
internal sealed record ReplayOptions(double Scale, double Hours, IReadOnlyList<string> Traces, IReadOnlyList<double> CheckpointMinutes, IReadOnlyList<SpotTraceReplay.Mode> Modes, IReadOnlyList<double>? Churn, string Command)
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static ReplayOptions Parse(string[] args)
    {
        var positional = new List<double>();
        string[] traces = ["aws", "synthetic"];
        double[] cadences = [5];
        double[]? churn = null;
        SpotTraceReplay.Mode[] modes = [SpotTraceReplay.Mode.ElasticWithNotice, SpotTraceReplay.Mode.ElasticNoNotice, SpotTraceReplay.Mode.CheckpointRestart];
        for (var i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--trace": traces = [Value()]; break;
                case "--checkpoint-minutes": cadences = Numbers(Value()); break;
                case "--churn": churn = Numbers(Value()); break;
                case "--mode":
                    modes = [Value() switch
                    {
                        "notice" => SpotTraceReplay.Mode.ElasticWithNotice,
                        "kills" => SpotTraceReplay.Mode.ElasticNoNotice,
                        "restart" => SpotTraceReplay.Mode.CheckpointRestart,
                        var other => throw new ArgumentException($"--mode '{other}' is not notice, kills or restart"),
                    }];
                    break;
                default: positional.Add(double.Parse(args[i], Inv)); break;
            }
        }
        return new ReplayOptions(positional.ElementAtOrDefault(0) is > 0 and var scale ? scale : 60,
            positional.Count > 1 ? positional[1] : double.PositiveInfinity, traces, cadences, modes, churn, string.Join(" ", args));
    }

    private static double[] Numbers(string list) => list.Split(',').Select(v => double.Parse(v, Inv)).ToArray();
}
