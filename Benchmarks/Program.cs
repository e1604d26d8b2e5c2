// The benchmarks we publish. Each compares against a baseline measured in the same run and records
// its figures in docs/benchmarks.md.
using Elastic.Benchmarks;

var benchmarks = new Dictionary<string, Func<string[], Task<int>>>
{
    ["engine-vs-bare"] = EngineVsBareLoop.Run,
    ["allreduce"] = AllReduceBandwidth.Run,
    ["uneven-allreduce"] = UnevenAllReduce.Run,
    ["service-vs-engine"] = ServiceVsEngine.Run,
    ["checkpoint"] = CheckpointThroughput.Run,
    ["spot-trace"] = SpotTraceReplay.Run,
    ["gpu-vs-pytorch"] = GpuVsPyTorch.Run,
    ["adamw"] = AdamWStep.Run,
    ["tensor-shards"] = TensorShardsCost.Run,
    ["tensor-parallel"] = TensorParallelStep.Run,
    ["tensor-links"] = TensorLinks.Run,
    ["overlap"] = OverlapStep.Run,
    ["nccl"] = NcclBandwidth.Run,
    ["live-replan"] = LiveReplan.Run,
    ["pipeline"] = PipelineStages.Run,
    ["zero"] = ZeroMemory.Run,
    ["recompute"] = RecomputeCost.Run,
    ["all-to-all"] = AllToAllBandwidth.Run,
    ["moe"] = MoeCost.Run,
    ["api"] = ApiLatency.Run,
    ["plan-scale"] = PlanScale.Run,
    ["plan-accuracy"] = PlanAccuracy.Run,
    ["published-scale"] = PublishedScale.Run,
    ["llama-vs-gpt2"] = LlamaVsGpt2.Run,
    ["data-prepare"] = DataPrepare.Run,
    ["dataset-source"] = DatasetSource.Run,
    ["chaos"] = ChaosCommand.Run,
    ["restart-cost"] = RestartCost.Run,
};
// Worker modes: the all-reduce, all-to-all and pipeline benchmarks run each rank (and the raw TCP baseline) in its own process.
var workers = new Dictionary<string, Func<string[], Task<int>>>
{
    ["allreduce-worker"] = AllReduceBandwidth.Worker,
    ["raw-tcp-worker"] = AllReduceBandwidth.RawWorker,
    ["pipeline-worker"] = PipelineStages.Worker,
    ["stage-link-worker"] = PipelineStages.LinkWorker,
    ["plan-memory-worker"] = PlanAccuracy.MemoryWorker,
};
if (args.Length > 0 && workers.TryGetValue(args[0], out var worker)) return await worker(args[1..]);
if (args.Length == 0 || !benchmarks.TryGetValue(args[0], out var run))
{
    Console.Error.WriteLine($"usage: dotnet run -c Release --project Benchmarks -- <{string.Join("|", benchmarks.Keys)}> [options]");
    return 2;
}
return await run(args[1..]);
