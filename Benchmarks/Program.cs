// The benchmarks we publish. Each compares against a baseline measured in the same run and records
// its figures in docs/benchmarks.md.
using Elastic.Benchmarks;

var benchmarks = new Dictionary<string, Func<string[], Task<int>>>
{
    ["engine-vs-bare"] = EngineVsBareLoop.Run,
};
if (args.Length == 0 || !benchmarks.TryGetValue(args[0], out var run))
{
    Console.Error.WriteLine($"usage: dotnet run -c Release --project Benchmarks -- <{string.Join("|", benchmarks.Keys)}> [options]");
    return 2;
}
return await run(args[1..]);
