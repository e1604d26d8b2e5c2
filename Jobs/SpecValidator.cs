using System.Globalization;
using Elastic.Parallelism;
using Elastic.Parallelism.Pipeline;

namespace Elastic.Jobs;

/// <summary>
/// Checks a spec on its own and reports every error at once, naming each field and its value. Whether
/// the data source can be read is checked where it is read (the engine adds those errors to these).
/// </summary>
public static class SpecValidator
{
    /// <summary>Tokenizers a spec can name, with their vocabulary sizes.</summary>
    /// <summary>The tokenizers a spec names (not a file) and their vocabularies, specials included.</summary>
    public static IReadOnlyDictionary<string, int> TokenizerVocabularies { get; } = new Dictionary<string, int>
    {
        ["byte"] = 256,
        ["tiktoken:gpt2"] = 50257,
        ["tiktoken:cl100k"] = 100277,
        ["tiktoken:o200k"] = 200019,
    };

    /// <summary>The largest model.vocab: token ids are stored as 32-bit integers, and the embedding must stay addressable.</summary>
    public const int MaxVocab = 1 << 22;

    /// <summary>
    /// The data-parallel widths a job may run at, widest first, with dp x pp x tp devices in [devices.min, devices.max]. Replicas
    /// may hold blocks of unequal size (<see cref="MicroBatchSplit"/>), and every width that makes a step shorter than all
    /// narrower ones is offered (the narrowest for each longest block: with 8 micro-batches 1, 2, 3, 4 and 8; 5 to 7 replicas
    /// take 2 each at most, as 4 do), provided each replica's pipeline can run its block (interleaving needs multiples of pp,
    /// which the split keeps). Experts are spread over <see cref="ExpertRanks"/> replicas, so no width is ruled out by them.
    /// </summary>
    public static IReadOnlyList<int> DataParallelWidths(TrainingSpec spec, int? tensorParallel = null, int? pipeline = null)
    {
        var family = SpecLayout.At(spec, 1) with
        {
            Pp = Math.Max(1, pipeline ?? spec.Parallel.Pipeline ?? 1),
            Tp = Math.Max(1, tensorParallel ?? spec.Parallel.Tensor ?? 1),
        };
        var widths = LayoutRules.Widths(spec, family, spec.Devices.Max);
        widths.Reverse();
        return widths;
    }

    /// <summary>
    /// The replicas each MoE layer's experts are spread over at data-parallel width <paramref name="dp"/>: the widest power of
    /// two up to the expert-parallel degree <paramref name="ep"/> that divides dp (expert groups are dp / that consecutive replicas).
    /// </summary>
    public static int ExpertRanks(int ep, int dp)
    {
        var ranks = 1;
        while (ranks * 2 <= ep && dp % (ranks * 2) == 0) ranks *= 2;
        return ranks;
    }

    /// <summary>
    /// Whether <paramref name="dp"/> replicas split the micro-batches into equal subtrees of the accumulation tree: a power of two
    /// dividing them into whole <paramref name="unit"/>s.
    /// </summary>
    public static bool EqualBlocks(int microBatches, int dp, int unit) =>
        dp >= 1 && (dp & (dp - 1)) == 0 && unit >= 1 && microBatches % unit == 0 && microBatches / unit % dp == 0;

    /// <summary>Why <paramref name="start"/> cannot be the layout a spec starts on: its notation, the layout rules, or a pin it does not keep.</summary>
    private static IEnumerable<string> StartProblems(TrainingSpec spec, string start)
    {
        ParallelLayout asked;
        try
        {
            asked = ParallelLayout.Parse(start);
        }
        catch (ParallelGridException e)
        {
            return e.Errors;
        }
        var layout = SpecLayout.Asked(spec, SpecLayout.At(spec, asked.Grid.Dp), asked);
        var problems = LayoutRules.Problems(spec, layout);
        if (!SpecLayout.Pins(spec).Admit(layout)) problems.Add($"does not keep what the spec pins ({SpecLayout.Pins(spec)}): {layout}");
        return problems;
    }

    /// <summary>A pinned number as written, or "auto".</summary>
    private static string Show(int? value) => value?.ToString(CultureInfo.InvariantCulture) ?? AutoConverter.Auto;

    /// <summary>The highest ZeRO stage the engine runs.</summary>
    public const int MaxZero = Layout.MaxZero;

    /// <summary>The highest job priority.</summary>
    public const int MaxPriority = 9;

    /// <summary>The longest job name: it names run folders and job ids.</summary>
    public const int MaxNameLength = 64;

    public static List<SpecError> Validate(TrainingSpec spec)
    {
        var errors = new List<SpecError>();
        void Fail(string field, object? value, string message) =>
            errors.Add(new SpecError(field, value is null ? null : Convert.ToString(value, CultureInfo.InvariantCulture), message));
        // Non-finite numbers can only come from code (JSON has none); every range check below assumes finite values.
        bool Finite(string field, double value)
        {
            if (double.IsFinite(value)) return true;
            Fail(field, value, "must be a finite number");
            return false;
        }

        // Sections and strings can be null when a spec is built in code (SDK); nothing else is checked then.
        foreach (var (field, section) in new (string, object?)[] { ("model", spec.Model), ("data", spec.Data), ("batch", spec.Batch),
                     ("optimizer", spec.Optimizer), ("eval", spec.Eval), ("runtime", spec.Runtime), ("devices", spec.Devices),
                     ("parallel", spec.Parallel), ("output", spec.Output), ("checkpoint", spec.Checkpoint), ("name", spec.Name) })
            if (section is null) Fail(field, null, "must be given, not null");
        if (spec.Data is { } data)
            foreach (var (field, text) in new[] { ("data.source", data.Source), ("data.format", data.Format), ("data.tokenizer", data.Tokenizer) })
                if (text is null) Fail(field, null, "must be given, not null");
        if (spec.Runtime is { Precision: null }) Fail("runtime.precision", null, "must be given, not null");
        if (errors.Count > 0) return errors;

        if (NameProblem(spec.Name) is { } nameProblem) Fail("name", spec.Name, nameProblem);
        if (spec.Steps < 1) Fail("steps", spec.Steps, "must be at least 1");
        if (spec.Priority is < 0 or > MaxPriority) Fail("priority", spec.Priority, $"must be in [0, {MaxPriority}] (higher is served first)");

        var m = spec.Model;
        if (m.Architecture is null) Fail("model.architecture", null, "must be given, not null");
        else if (!ModelSpec.Architectures.Contains(m.Architecture))
            Fail("model.architecture", m.Architecture, $"unknown architecture; known: {string.Join(", ", ModelSpec.Architectures)}");
        if (m.Layers < 1) Fail("model.layers", m.Layers, "must be at least 1");
        if (m.DModel < 1) Fail("model.dModel", m.DModel, "must be at least 1");
        if (m.Heads < 1) Fail("model.heads", m.Heads, "must be at least 1");
        else if (m.DModel >= 1 && m.DModel % m.Heads != 0)
            Fail("model.dModel", m.DModel, $"is not divisible by model.heads {m.Heads}");
        if (m.Ffn < 0) Fail("model.ffn", m.Ffn, "must be positive (or 0 for the architecture's default)");
        if (m.IsLlama) ValidateLlama(m, Fail, Finite);
        else if (m.KvHeads != 0) Fail("model.kvHeads", m.KvHeads, "applies to architecture 'llama' only (gpt2 has one key/value head per query head)");
        if (Finite("model.normEps", m.NormEps) && !(m.NormEps > 0)) Fail("model.normEps", m.NormEps, "must be positive");
        if (m.Context < 1) Fail("model.context", m.Context, "must be at least 1");
        if (m.TensorShards != 0)
        {
            if (m.TensorShards < 1 || (m.TensorShards & (m.TensorShards - 1)) != 0)
                Fail("model.tensorShards", m.TensorShards, "must be a power of two (1, 2, 4, 8, ...) or 0 for the default");
            else if (m.Heads >= 1 && m.DModel >= 1 && m.Context >= 1)
                foreach (var (field, value) in m.ShardProblems(m.TensorShards))
                    Fail("model.tensorShards", m.TensorShards, field == "model.kvHeads"
                        ? $"neither divides nor is a multiple of {field} {value} (each virtual shard must hold whole key/value heads or read exactly one)"
                        : $"does not divide {field} {value}");
        }
        if (Finite("model.dropout", m.Dropout) && m.Dropout is < 0 or >= 1) Fail("model.dropout", m.Dropout, "must be in [0, 1)");

        var d = spec.Data;
        if (d.Mixture is { } mixture)
        {
            if (mixture.Count is 0 or > 256) Fail("data.mixture", mixture.Count, "must list 1 to 256 sources");
            if (d.Source != new DataSpec().Source) Fail("data.source", d.Source, "give data.source or data.mixture, not both");
        }
        foreach (var (prefix, source) in d.Sources())
        {
            if (source is null) { Fail(prefix, null, "must be given, not null"); continue; }
            if (!DataSpec.Formats.Contains(source.Format)) Fail($"{prefix}.format", source.Format, $"must be one of {string.Join(", ", DataSpec.Formats.Select(f => $"'{f}'"))}");
            if (source.Format == "jsonl" && string.IsNullOrWhiteSpace(source.Field)) Fail($"{prefix}.field", source.Field, "must name the text field of each record");
            if (string.IsNullOrWhiteSpace(source.Source)) Fail($"{prefix}.source", source.Source, "must name a bundled corpus, a file or a dataset");
            if (d.Mixture is not null && Finite($"{prefix}.weight", source.Weight) && !(source.Weight > 0)) Fail($"{prefix}.weight", source.Weight, "must be positive");
        }
        if (TokenizerVocabularies.TryGetValue(d.Tokenizer, out var tokenizerVocab))
        {
            if (d.Sources().Any(s => s.Source?.Format == "text") && m.Vocab < tokenizerVocab)
                Fail("model.vocab", m.Vocab, $"is smaller than the vocabulary of tokenizer '{d.Tokenizer}' ({tokenizerVocab})");
        }
        else if (!IsTokenizerFile(d.Tokenizer))
            Fail("data.tokenizer", d.Tokenizer, $"unknown tokenizer; known: {string.Join(", ", TokenizerVocabularies.Keys)}, or a path to a tokenizer.json or SentencePiece .model file");
        if (m.Vocab < 2 || m.Vocab > MaxVocab) Fail("model.vocab", m.Vocab, $"must be in [2, {MaxVocab}]");
        if (Finite("data.heldOutFraction", d.HeldOutFraction) && d.HeldOutFraction is <= 0 or >= 0.5)
            Fail("data.heldOutFraction", d.HeldOutFraction, "must be in (0, 0.5)");

        var b = spec.Batch;
        if (b.Global < 1) Fail("batch.global", b.Global, "must be at least 1");
        if (b.Micro < 1) Fail("batch.micro", b.Micro, "must be at least 1");
        if (b.Global >= 1 && b.Micro >= 1 && b.Global % b.Micro != 0)
            Fail("batch.global", b.Global, $"is not divisible by batch.micro {b.Micro}");

        var o = spec.Optimizer;
        if (Finite("optimizer.lr", o.Lr) && !(o.Lr > 0)) Fail("optimizer.lr", o.Lr, "must be positive");
        if (Finite("optimizer.minLr", o.MinLr) && (o.MinLr < 0 || o.MinLr > o.Lr))
            Fail("optimizer.minLr", o.MinLr, $"must be in [0, optimizer.lr {o.Lr.ToString(CultureInfo.InvariantCulture)}]");
        if (o.WarmupSteps < 0 || o.WarmupSteps > spec.Steps)
            Fail("optimizer.warmupSteps", o.WarmupSteps, $"must be in [0, steps {spec.Steps}]");
        if (Finite("optimizer.weightDecay", o.WeightDecay) && o.WeightDecay < 0) Fail("optimizer.weightDecay", o.WeightDecay, "must not be negative");
        if (Finite("optimizer.beta1", o.Beta1) && o.Beta1 is < 0 or >= 1) Fail("optimizer.beta1", o.Beta1, "must be in [0, 1)");
        if (Finite("optimizer.beta2", o.Beta2) && o.Beta2 is < 0 or >= 1) Fail("optimizer.beta2", o.Beta2, "must be in [0, 1)");
        if (Finite("optimizer.eps", o.Eps) && !(o.Eps > 0)) Fail("optimizer.eps", o.Eps, "must be positive");
        if (Finite("optimizer.clipNorm", o.ClipNorm) && o.ClipNorm < 0) Fail("optimizer.clipNorm", o.ClipNorm, "must not be negative (0 disables clipping)");

        if (spec.Eval.Every < 0) Fail("eval.every", spec.Eval.Every, "must not be negative");
        if (spec.Eval.Batches < 1) Fail("eval.batches", spec.Eval.Batches, "must be at least 1");
        var devices = spec.Devices;
        if (devices.Min < 1) Fail("devices.min", devices.Min, "must be at least 1");
        if (devices.Max < devices.Min) Fail("devices.max", devices.Max, $"must be at least devices.min {devices.Min}");
        else if (devices.Min >= 1 && b.Global >= 1 && b.Micro >= 1 && b.Global % b.Micro == 0 && LayoutRules.DeviceCounts(spec).Count == 0)
            Fail("devices.min", devices.Min, $"no data-parallel width dp in [devices.min {devices.Min}, devices.max {devices.Max}] / (parallel.pipeline {Show(spec.Parallel.Pipeline)} x parallel.tensor {Show(spec.Parallel.Tensor)}) is at most the {b.MicroBatchesPerStep} micro-batches per step (batch.global {b.Global} / batch.micro {b.Micro}){(spec.Parallel.Schedule == PipelineSchedule.Interleaved && spec.Parallel.Pipeline > 1 ? " and leaves each replica a multiple of parallel.pipeline" : "")}");
        var parallel = spec.Parallel;
        var virtualStages = parallel.VirtualStages ?? 1;
        if (parallel.Schedule is { } schedule && schedule is not (PipelineSchedule.OneFOneB or PipelineSchedule.Interleaved))
            Fail("parallel.schedule", schedule, $"must be '{PipelineSchedule.OneFOneB}', '{PipelineSchedule.Interleaved}' or '{AutoConverter.Auto}'");
        else if (m.Layers >= 1)
        {
            // Without a pinned pipeline only what the schedule says of v can be checked; the planner keeps the rest.
            var asWritten = parallel.Schedule ?? (virtualStages > 1 ? PipelineSchedule.Interleaved : PipelineSchedule.OneFOneB);
            var problems = parallel.Pipeline is { } pipeline
                ? PipelineSchedule.Problems(asWritten, pipeline, b.MicroBatchesPerStep, virtualStages, m.Layers)
                : PipelineSchedule.Problems(asWritten, 1, b.MicroBatchesPerStep, virtualStages, m.Layers);
            foreach (var problem in problems)
                Fail("parallel", $"pipeline {Show(parallel.Pipeline)}, schedule {parallel.Schedule ?? AutoConverter.Auto}, virtualStages {Show(parallel.VirtualStages)}", problem);
        }
        if (parallel.Zero is < 0 or > MaxZero)
            Fail("parallel.zero", parallel.Zero, "must be 0 (replicated optimizer state), 1 (sharded moments), 2 (also gradients reduced to their owner) or 3 (also parameters, gathered per layer)");
        if (spec.Parallel.Tensor is { } tensor)
        {
            if (tensor < 1 || (tensor & (tensor - 1)) != 0) Fail("parallel.tensor", tensor, "must be a power of two (1, 2, 4, 8, ...)");
            else if (m.Shards % tensor != 0) Fail("parallel.tensor", tensor, $"does not divide model.tensorShards {m.Shards}");
        }
        ValidateExperts(spec, Fail, Finite);
        if (parallel.Start is { } start && errors.Count == 0)
            foreach (var problem in StartProblems(spec, start)) Fail("parallel.start", start, problem);
        if (spec.Checkpoint.EverySteps < 0) Fail("checkpoint.everySteps", spec.Checkpoint.EverySteps, "must not be negative (0 disables checkpoints)");
        if (Finite("checkpoint.everyMinutes", spec.Checkpoint.EveryMinutes) && spec.Checkpoint.EveryMinutes < 0)
            Fail("checkpoint.everyMinutes", spec.Checkpoint.EveryMinutes, "must not be negative (0: not by time)");
        if (spec.Checkpoint.KeepLast < 1) Fail("checkpoint.keepLast", spec.Checkpoint.KeepLast, "must be at least 1");
        if (spec.Checkpoint.KeepEvery < 0) Fail("checkpoint.keepEvery", spec.Checkpoint.KeepEvery, "must not be negative");
        if (spec.Output.Directory is { } output && !Path.IsPathFullyQualified(output))
            Fail("output.directory", output, "must be an absolute path here");
        if (!OutputSpec.Dtypes.Contains(spec.Output.Dtype)) Fail("output.dtype", spec.Output.Dtype, $"must be one of {string.Join(", ", OutputSpec.Dtypes.Select(d => $"'{d}'"))}");
        if (spec.Runtime.ThreadsPerDevice < 1) Fail("runtime.threadsPerDevice", spec.Runtime.ThreadsPerDevice, "must be at least 1");
        if (spec.Runtime.Precision is not ("fp32" or "tf32" or "bf16")) Fail("runtime.precision", spec.Runtime.Precision, "must be 'fp32', 'tf32' or 'bf16'");
        if (spec.Runtime.Recompute is not (null or "none" or "selective" or "full"))
            Fail("runtime.recompute", spec.Runtime.Recompute, "must be 'none', 'selective' (the attention core) or 'full' (each layer from its input)");
        return errors;
    }

    /// <summary>The fields only a Llama model has: grouped-query heads and the rotary embedding.</summary>
    private static void ValidateLlama(ModelSpec m, Action<string, object?, string> fail, Func<string, double, bool> finite)
    {
        if (m.KvHeads < 0) fail("model.kvHeads", m.KvHeads, "must be positive (or 0 for one per query head)");
        else if (m.KvHeads > 0 && m.Heads >= 1 && m.Heads % m.KvHeads != 0)
            fail("model.kvHeads", m.KvHeads, $"does not divide model.heads {m.Heads} (each key/value head serves a whole group of query heads)");
        if (m.Heads >= 1 && m.DModel % m.Heads == 0 && m.HeadDim % 2 != 0)
            fail("model.heads", m.Heads, $"gives a head dimension of {m.HeadDim}; rotary embeddings rotate pairs, so it must be even");
        if (finite("model.ropeTheta", m.RopeTheta) && !(m.RopeTheta > 1)) fail("model.ropeTheta", m.RopeTheta, "must be greater than 1");
    }

    /// <summary>Whether data.tokenizer names a file (a Hugging Face tokenizer.json or a SentencePiece model) rather than a built-in.</summary>
    public static bool IsTokenizerFile(string tokenizer) =>
        tokenizer.EndsWith(".json", StringComparison.OrdinalIgnoreCase) || tokenizer.EndsWith(".model", StringComparison.OrdinalIgnoreCase);

    /// <summary>model.moe and parallel.expert: each refusal names its numbers.</summary>
    private static void ValidateExperts(TrainingSpec spec, Action<string, object?, string> fail, Func<string, double, bool> finite)
    {
        var ep = spec.Parallel.Expert ?? 1;
        if (ep < 1 || (ep & (ep - 1)) != 0) fail("parallel.expert", ep, "must be a power of two (1, 2, 4, 8, ...)");
        if (spec.Parallel.Zero >= 3 && ep > 1)
            fail("parallel.zero", spec.Parallel.Zero, $"3 does not run with parallel.expert {ep} yet (stages 1 and 2 do): its per-layer parameter gathers would have to run over two groups");
        if (ep > 1 && DataParallelWidths(spec) is { Count: > 0 } widths && ep > widths[0])
            fail("parallel.expert", ep, $"is more than the widest data-parallel width {widths[0]} that devices.max {spec.Devices.Max} allows (experts are spread over replicas)");
        if (spec.Model.Moe is not { } moe)
        {
            if (ep > 1) fail("parallel.expert", ep, "spreads experts, but model.moe is not given (a dense model has none)");
            return;
        }
        if (moe.Experts < 2) fail("model.moe.experts", moe.Experts, "must be at least 2");
        else if (ep >= 1 && moe.Experts % ep != 0) fail("parallel.expert", ep, $"does not divide model.moe.experts {moe.Experts}");
        if (moe.TopK < 1 || (moe.Experts >= 2 && moe.TopK > moe.Experts))
            fail("model.moe.topK", moe.TopK, $"must be in [1, model.moe.experts {moe.Experts}]");
        if (moe.Every < 1 || (spec.Model.Layers >= 1 && moe.Every > spec.Model.Layers))
            fail("model.moe.every", moe.Every, $"must be in [1, model.layers {spec.Model.Layers}] (every k-th layer is a MoE layer)");
        if (moe.CapacityFactor is { } capacity && finite("model.moe.capacityFactor", capacity) && !(capacity > 0))
            fail("model.moe.capacityFactor", capacity, "must be positive (or null for dropless)");
        if (finite("model.moe.auxLoss", moe.AuxLoss) && moe.AuxLoss < 0) fail("model.moe.auxLoss", moe.AuxLoss, "must not be negative (0 turns the load-balancing loss off)");
        if (finite("model.moe.zLoss", moe.ZLoss) && moe.ZLoss < 0) fail("model.moe.zLoss", moe.ZLoss, "must not be negative (0 turns the z-loss off)");
        if (finite("model.moe.imbalanceAlert", moe.ImbalanceAlert) && moe.ImbalanceAlert < 1)
            fail("model.moe.imbalanceAlert", moe.ImbalanceAlert, "must be at least 1 (the busiest expert's load over the mean)");
    }

    /// <summary>
    /// Why <paramref name="name"/> cannot name a job, or null. Names become run folders and job ids, so they are
    /// one short path segment: letters, digits, '.', '_' and '-', starting with a letter or digit.
    /// </summary>
    public static string? NameProblem(string name)
    {
        if (name.Length == 0) return "must not be empty";
        if (name.Length > MaxNameLength) return $"is {name.Length} characters long; at most {MaxNameLength}";
        if (!char.IsAsciiLetterOrDigit(name[0]) || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            return "may hold only letters, digits, '.', '_' and '-', and must start with a letter or digit (it names the run folder)";
        return null;
    }
}
