using System.Globalization;
using Elastic.Jobs;
using Elastic.Parallelism;
using Elastic.Planning.Hardware;

namespace Elastic.Planning;

/// <summary>
/// A step's predicted time on a layout, by where it goes (seconds): the forward and backward compute of the micro-batches
/// of the busiest stage, recomputation, the pipeline's fill and drain (bubble), tensor-parallel collectives, stage-to-stage
/// sends, the data-parallel gradient reduction and parameter gather, ZeRO 3's per-unit gathers, MoE all-to-alls and the optimizer.
/// </summary>
public sealed record StepTimeEstimate(
    double Compute, double Recompute, double Bubble, double TensorParallel, double PipelineSends,
    double DataParallel, double ZeroGathers, double ExpertAllToAll, double Optimizer)
{
    public double Seconds => Compute + Recompute + Bubble + TensorParallel + PipelineSends + DataParallel + ZeroGathers + ExpertAllToAll + Optimizer;

    /// <summary>Each term on its own, for a planner's explanation (terms that are zero left out).</summary>
    public IEnumerable<(string Term, double Seconds)> Terms =>
        new (string, double)[]
        {
            ("compute", Compute), ("recompute", Recompute), ("bubble", Bubble), ("tp collectives", TensorParallel), ("pp sends", PipelineSends),
            ("dp reduction", DataParallel), ("zero-3 gathers", ZeroGathers), ("all-to-all", ExpertAllToAll), ("optimizer", Optimizer),
        }.Where(t => t.Item2 > 0);

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Format(Seconds)} per step ({string.Join(", ", Terms.Select(t => $"{t.Term} {Format(t.Seconds)}"))})");

    public static string Format(double seconds) => seconds >= 1
        ? string.Create(CultureInfo.InvariantCulture, $"{seconds:0.00} s")
        : string.Create(CultureInfo.InvariantCulture, $"{seconds * 1e3:0.0} ms");
}

/// <summary>
/// Predicts a step's time on a layout from the stage costs and a device profile. Each stage's micro-batch takes its matmuls
/// at the device's sustained matmul rate, its elementwise traffic at memory bandwidth and a fixed cost per kernel, plus the
/// collectives it waits for on the link that carries them: tensor-parallel groups stay inside a node; a pipeline or
/// data-parallel group crosses nodes when the devices it spans do not fit in one. The engine overlaps no communication with
/// compute yet, so every collective is exposed. A pipeline of p stages runs m micro-batches at the busiest stage's pace plus
/// the fill and drain through the other stages, 1/v of it when interleaved: Narayanan et al. 2021's bubble, with uneven stages.
/// </summary>
public static class StepTimeModel
{
    /// <summary>
    /// A prediction refined by what a running job measures: <paramref name="model"/> (the model's step time for a layout) scaled
    /// by how the job's measured step on its current layout compares with the model's for that layout (the ratio kept within
    /// 0.2x .. 5x: a step slowed by a one-off stall is not the model's error); the model's own figure before anything was measured.
    /// </summary>
    public static double Refined(double model, double modelNow, double? measuredNow) =>
        measuredNow is > 0 && modelNow > 0 ? model * Math.Clamp(measuredNow.Value / modelNow, 0.2, 5) : model;

    /// <summary>How much longer the reduction of a block that is not one subtree takes (measured: 1.3x to 1.45x, uneven-allreduce).</summary>
    public const double UnevenBlocks = 1.45;

    public static StepTimeEstimate Of(TrainingSpec spec, StageCosts costs, Layout layout, DeviceProfile device, int devicesPerNode)
    {
        var precision = spec.Runtime.Precision;
        // CPU devices of one node that together run more threads than it has cores share them (first as if all were busy all
        // the time, then by how busy the pipeline keeps them: a stage idle in the bubble leaves its cores to the others); the
        // engine reaches a share of the measured rates (its cost per kernel is measured on the engine itself).
        var busyThreads = (double)Math.Min(layout.Devices, devicesPerNode) * spec.Runtime.ThreadsPerDevice;
        var oversubscribed = device.SharedCores > 0 ? busyThreads / device.SharedCores : 1;
        double activationBytes = precision == "bf16" ? 2 : 4;
        var (dp, pp, tp, v) = (Math.Max(1, layout.Dp), costs.Pp, costs.Tp, costs.VirtualStages);
        var work = costs.WorkOf(spec, layout);
        var (local, zero, recompute) = (work.LongestBlock, work.Zero, work.Recompute);
        var intra = device.IntraNode;
        // The very intra-node instance when the group fits a node (link values may coincide, the place does not).
        LinkProfile Spanning(long devices) => devices > devicesPerNode ? device.InterNode : intra;
        var (pipeLink, dataLink, expertLink) = (Spanning((long)pp * tp), Spanning((long)dp * pp * tp), Spanning((long)layout.Ep * pp * tp));
        var message = costs.Shape.Tokens * spec.Model.DModel * activationBytes;
        var moe = spec.Model.Moe;

        StageTime[] Stages(double shared)
        {
            var flops = device.MatmulFlops(precision) * device.EngineEfficiency / shared;
            var memory = device.MemoryBandwidthGBs * 1e9 * device.EngineEfficiency / shared;
            var overhead = device.KernelOverheadMicroseconds * 1e-6 * shared;
            var shardOverhead = device.ShardKernelMicroseconds * 1e-6 * shared;
            // Between CPU devices of one node a collective is the cores' own work (copies and adds): shared like the rest.
            var inMemory = device.SharedCores > 0 ? shared : 1;
            double Local(LinkProfile link, double seconds) => ReferenceEquals(link, intra) ? seconds * inMemory : seconds;
            var stages = new StageTime[pp];
            for (var s = 0; s < pp; s++)
            {
                var pass = costs.ForwardFlops[s] / flops + costs.Elementwise[s] * activationBytes / memory + costs.Kernels[s] * overhead
                    + costs.ExtraShardKernels[s] * shardOverhead;
                // Backward computes two matmuls per forward one; the micro-batch's gradient is added into the accumulation tree.
                var backward = 2 * pass + costs.Parameters[s] * 12.0 / memory;
                var again = recompute switch
                {
                    Recomputation.Full => pass,
                    Recomputation.Selective => costs.AttentionCoreFlops[s] / flops + costs.Layers[s] * (3.0 * costs.Shape.AttentionWeights / tp * activationBytes / memory + 2 * Math.Max(1, spec.Model.Shards / tp) * overhead),
                    _ => 0,
                };
                // Two sums across the tensor ranks per layer forward (attention and MLP outputs: all-reduces, or reduce-scatter and
                // all-gather with the sequence split, the same bytes), two backward, two more when the layer is run again.
                var sums = costs.Layers[s] * (4 + (recompute == Recomputation.Full ? 2 : 0)) + (s == 0 ? 1 : 0);
                var tensor = Local(intra, sums * CollectiveTime.AllReduce(message, tp, intra) + (costs.HoldsHead[s] ? 3 * CollectiveTime.AllReduce(costs.Shape.Tokens * 4.0, tp, intra) : 0));
                // Dispatch and combine forward and backward (and forward again when recomputed), each token to its top-k experts.
                var allToAll = moe is null ? 0 : Local(expertLink, costs.MoeLayers[s] * (4 + (recompute == Recomputation.Full ? 2 : 0))
                    * CollectiveTime.AllToAll(costs.Shape.Tokens * moe.TopK * spec.Model.DModel * activationBytes, layout.Ep, expertLink));
                // ZeRO 3 gathers every unit before its forward and again before its backward.
                var gathers = zero >= 3 ? Local(dataLink, 2 * CollectiveTime.AllGather(costs.Parameters[s] * 4.0, dp, dataLink)) : 0;
                // Each chunk sends its output forward and its input's gradient back.
                var sends = pp > 1 ? Local(pipeLink, 2 * v * CollectiveTime.Send(message / (costs.SequenceSplit ? tp : 1), pipeLink)) : 0;
                stages[s] = new StageTime(pass + backward, again, tensor, sends, gathers, allToAll);
            }
            return stages;
        }
        double Pipeline(StageTime[] stages) => local * stages.Max(t => t.Total) + (stages.Sum(t => t.Total) - stages.Max(t => t.Total)) / v;
        var shared = Math.Max(1, oversubscribed);
        var stages = Stages(shared);
        if (shared > 1)
        {
            // How busy the devices are over the pipeline's time (1 without a bubble), and the cores that leaves each of them.
            var busy = local * stages.Average(t => t.Total) / Pipeline(stages);
            shared = Math.Max(1, oversubscribed * busy);
            stages = Stages(shared);
        }
        var busiest = stages.MaxBy(t => t.Total)!;
        // Narayanan et al.: m micro-batches at the busiest stage's pace, plus the fill and drain through the others, shortened v times by interleaving.
        var pipeline = Pipeline(stages);

        // After the last backward: gradients reduced over the replicas (an all-reduce; ZeRO 2 and 3 a reduce-scatter), and under
        // ZeRO 1 and 2 the updated parts all-gathered. The busiest stage's tensor rank holds the most.
        var top = Array.IndexOf(stages, busiest);
        var gradientBytes = (costs.Parameters[top] + (spec.Model.TiedEmbeddings && costs.HoldsHead[top] ? (long)spec.Model.Vocab * spec.Model.DModel / tp : 0)) * 4.0;
        var uneven = work.EqualBlocks ? 1 : UnevenBlocks;
        var reductionShare = device.SharedCores > 0 && ReferenceEquals(dataLink, intra) ? Math.Max(1, oversubscribed) : 1;
        var reduction = reductionShare * zero switch
        {
            0 => uneven * CollectiveTime.AllReduce(gradientBytes, dp, dataLink),
            1 => uneven * CollectiveTime.AllReduce(gradientBytes, dp, dataLink) + CollectiveTime.AllGather(costs.Parameters[top] * 4.0, dp, dataLink),
            2 => uneven * CollectiveTime.AllGather(gradientBytes, dp, dataLink) + CollectiveTime.AllGather(costs.Parameters[top] * 4.0, dp, dataLink),
            _ => uneven * CollectiveTime.AllGather(gradientBytes, dp, dataLink),
        };
        // AdamW reads and writes the parameters and both moments and reads the gradient (about 32 bytes a parameter), a few kernels
        // a tensor: on every device at once.
        var updated = costs.Parameters[top] / (double)(zero > 0 ? dp : 1);
        var optimizer = (updated * 32 / (device.MemoryBandwidthGBs * 1e9 * device.EngineEfficiency)
            + (costs.Layers[top] * costs.Shape.LayerTensors + 4) * 10 * device.KernelOverheadMicroseconds * 1e-6) * Math.Max(1, oversubscribed);
        return new StepTimeEstimate(local * busiest.Compute, local * busiest.Recompute, pipeline - local * busiest.Total, local * busiest.Tensor,
            local * busiest.Sends, reduction, local * busiest.Gathers, local * busiest.AllToAll, optimizer);
    }

    private sealed record StageTime(double Compute, double Recompute, double Tensor, double Sends, double Gathers, double AllToAll)
    {
        public double Total => Compute + Recompute + Tensor + Sends + Gathers + AllToAll;
    }
}
