using System.Globalization;

namespace Elastic.Jobs;

/// <summary>
/// Checks a spec on its own and reports every error at once, naming each field and its value. Whether
/// the data source can be read is checked where it is read (the engine adds those errors to these).
/// </summary>
public static class SpecValidator
{
    /// <summary>Tokenizers a spec can name, with their vocabulary sizes.</summary>
    public static IReadOnlyDictionary<string, int> TokenizerVocabularies { get; } = new Dictionary<string, int> { ["byte"] = 256 };

    /// <summary>
    /// The data-parallel widths a job may run at, widest first: powers of two in [devices.min, devices.max] that
    /// divide the micro-batches per step (so every replica's block is a subtree of the accumulation tree).
    /// </summary>
    public static IReadOnlyList<int> DataParallelWidths(TrainingSpec spec)
    {
        var microBatches = spec.Batch.MicroBatchesPerStep;
        var widths = new List<int>();
        for (var dp = 1; dp <= Math.Min(spec.Devices.Max, microBatches); dp *= 2)
            if (dp >= spec.Devices.Min && microBatches % dp == 0) widths.Add(dp);
        widths.Reverse();
        return widths;
    }

    public static List<SpecError> Validate(TrainingSpec spec)
    {
        var errors = new List<SpecError>();
        void Fail(string field, object? value, string message) =>
            errors.Add(new SpecError(field, value is null ? null : Convert.ToString(value, CultureInfo.InvariantCulture), message));

        if (string.IsNullOrWhiteSpace(spec.Name)) Fail("name", spec.Name, "must not be empty");
        if (spec.Steps < 1) Fail("steps", spec.Steps, "must be at least 1");

        var m = spec.Model;
        if (m.Layers < 1) Fail("model.layers", m.Layers, "must be at least 1");
        if (m.DModel < 1) Fail("model.dModel", m.DModel, "must be at least 1");
        if (m.Heads < 1) Fail("model.heads", m.Heads, "must be at least 1");
        else if (m.DModel >= 1 && m.DModel % m.Heads != 0)
            Fail("model.dModel", m.DModel, $"is not divisible by model.heads {m.Heads}");
        if (m.Ffn < 0) Fail("model.ffn", m.Ffn, "must be positive (or 0 for 4 x dModel)");
        if (m.Context < 1) Fail("model.context", m.Context, "must be at least 1");
        if (m.Dropout is < 0 or >= 1 || double.IsNaN(m.Dropout)) Fail("model.dropout", m.Dropout, "must be in [0, 1)");

        var d = spec.Data;
        if (d.Format is not ("text" or "uint16")) Fail("data.format", d.Format, "must be 'text' or 'uint16'");
        if (!TokenizerVocabularies.TryGetValue(d.Tokenizer, out var tokenizerVocab))
            Fail("data.tokenizer", d.Tokenizer, $"unknown tokenizer; known: {string.Join(", ", TokenizerVocabularies.Keys)}");
        else if (d.Format == "text" && m.Vocab < tokenizerVocab)
            Fail("model.vocab", m.Vocab, $"is smaller than the vocabulary of tokenizer '{d.Tokenizer}' ({tokenizerVocab})");
        if (m.Vocab < 2 || m.Vocab > 65536) Fail("model.vocab", m.Vocab, "must be in [2, 65536]");
        if (d.HeldOutFraction is <= 0 or >= 0.5 || double.IsNaN(d.HeldOutFraction))
            Fail("data.heldOutFraction", d.HeldOutFraction, "must be in (0, 0.5)");
        if (string.IsNullOrWhiteSpace(d.Source)) Fail("data.source", d.Source, "must name a bundled corpus or a file");

        var b = spec.Batch;
        if (b.Global < 1) Fail("batch.global", b.Global, "must be at least 1");
        if (b.Micro < 1) Fail("batch.micro", b.Micro, "must be at least 1");
        if (b.Global >= 1 && b.Micro >= 1 && b.Global % b.Micro != 0)
            Fail("batch.global", b.Global, $"is not divisible by batch.micro {b.Micro}");

        var o = spec.Optimizer;
        if (!(o.Lr > 0) || double.IsInfinity(o.Lr)) Fail("optimizer.lr", o.Lr, "must be positive");
        if (!(o.MinLr >= 0) || o.MinLr > o.Lr) Fail("optimizer.minLr", o.MinLr, $"must be in [0, optimizer.lr {o.Lr.ToString(CultureInfo.InvariantCulture)}]");
        if (o.WarmupSteps < 0 || o.WarmupSteps > spec.Steps)
            Fail("optimizer.warmupSteps", o.WarmupSteps, $"must be in [0, steps {spec.Steps}]");
        if (!(o.WeightDecay >= 0)) Fail("optimizer.weightDecay", o.WeightDecay, "must not be negative");
        if (o.Beta1 is < 0 or >= 1 || double.IsNaN(o.Beta1)) Fail("optimizer.beta1", o.Beta1, "must be in [0, 1)");
        if (o.Beta2 is < 0 or >= 1 || double.IsNaN(o.Beta2)) Fail("optimizer.beta2", o.Beta2, "must be in [0, 1)");
        if (!(o.Eps > 0)) Fail("optimizer.eps", o.Eps, "must be positive");
        if (!(o.ClipNorm >= 0)) Fail("optimizer.clipNorm", o.ClipNorm, "must not be negative (0 disables clipping)");

        if (spec.Eval.Every < 0) Fail("eval.every", spec.Eval.Every, "must not be negative");
        if (spec.Eval.Batches < 1) Fail("eval.batches", spec.Eval.Batches, "must be at least 1");
        var devices = spec.Devices;
        if (devices.Min < 1) Fail("devices.min", devices.Min, "must be at least 1");
        if (devices.Max < devices.Min) Fail("devices.max", devices.Max, $"must be at least devices.min {devices.Min}");
        else if (devices.Min >= 1 && b.Global >= 1 && b.Micro >= 1 && b.Global % b.Micro == 0 && DataParallelWidths(spec).Count == 0)
            Fail("devices.min", devices.Min, $"no data-parallel width in [devices.min {devices.Min}, devices.max {devices.Max}] is a power of two dividing the {b.MicroBatchesPerStep} micro-batches per step (batch.global {b.Global} / batch.micro {b.Micro})");
        if (spec.Checkpoint.EverySteps < 0) Fail("checkpoint.everySteps", spec.Checkpoint.EverySteps, "must not be negative (0 disables checkpoints)");
        if (!(spec.Checkpoint.EveryMinutes >= 0)) Fail("checkpoint.everyMinutes", spec.Checkpoint.EveryMinutes, "must not be negative (0: not by time)");
        if (spec.Checkpoint.KeepLast < 1) Fail("checkpoint.keepLast", spec.Checkpoint.KeepLast, "must be at least 1");
        if (spec.Checkpoint.KeepEvery < 0) Fail("checkpoint.keepEvery", spec.Checkpoint.KeepEvery, "must not be negative");
        if (spec.Output.Directory is { } output && !Path.IsPathFullyQualified(output))
            Fail("output.directory", output, "must be an absolute path here");
        if (spec.Runtime.ThreadsPerDevice < 1) Fail("runtime.threadsPerDevice", spec.Runtime.ThreadsPerDevice, "must be at least 1");
        return errors;
    }
}
