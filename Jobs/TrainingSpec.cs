using System.Text.Json.Serialization;

namespace Elastic.Jobs;

/// <summary>
/// What a user asks the engine to train. The trajectory of a run is a function of this spec alone
/// (seed included): the number of devices that run it never enters the math.
/// </summary>
public sealed record TrainingSpec
{
    /// <summary>A label for reports and run folders.</summary>
    public string Name { get; init; } = "job";
    public ulong Seed { get; init; } = 1234;
    /// <summary>Optimizer steps to run.</summary>
    public int Steps { get; init; } = 100;
    public ModelSpec Model { get; init; } = new();
    public DataSpec Data { get; init; } = new();
    public BatchSpec Batch { get; init; } = new();
    public OptimizerSpec Optimizer { get; init; } = new();
    public EvalSpec Eval { get; init; } = new();
    public RuntimeSpec Runtime { get; init; } = new();
    public DeviceSpec Devices { get; init; } = new();
    /// <summary>
    /// 0 to <see cref="SpecValidator.MaxPriority"/>: a cluster serves higher priorities first, and a job that waits shrinks
    /// running jobs of a lower priority (never below their devices.min) to start. Never enters the math.
    /// </summary>
    public int Priority { get; init; }
    public ParallelSpec Parallel { get; init; } = new();
    public OutputSpec Output { get; init; } = new();
    public CheckpointSpec Checkpoint { get; init; } = new();
}

/// <summary>
/// A decoder-only transformer: <c>gpt2</c> (pre-LayerNorm, learned positions, GELU MLP, biases) or <c>llama</c> (RMSNorm,
/// rotary positions, SwiGLU MLP, grouped-query attention, no biases).
/// </summary>
public sealed record ModelSpec
{
    /// <summary>The architecture names the spec accepts.</summary>
    public static readonly IReadOnlyList<string> Architectures = ["gpt2", "llama"];

    /// <summary><c>gpt2</c> or <c>llama</c>.</summary>
    public string Architecture { get; init; } = "gpt2";
    public int Layers { get; init; } = 4;
    public int DModel { get; init; } = 128;
    public int Heads { get; init; } = 4;
    /// <summary>
    /// Llama: key/value heads (grouped-query attention; 1 is multi-query), a divisor of heads; 0 means heads. Split over the
    /// virtual shards when S divides them, else each shard computes the one it reads (S must then be a multiple of them).
    /// </summary>
    public int KvHeads { get; init; }
    /// <summary>Llama: the base of the rotary position embedding's frequencies.</summary>
    public double RopeTheta { get; init; } = 10000;
    /// <summary>The epsilon of every normalisation (LayerNorm for gpt2, RMSNorm for llama).</summary>
    public double NormEps { get; init; } = 1e-5;
    /// <summary>Hidden size of the MLP; 0 means 4 x dModel (gpt2) or 8/3 x dModel rounded up to a multiple of 64 (llama's SwiGLU, about the same parameters).</summary>
    public int Ffn { get; init; }
    public int Vocab { get; init; } = 256;
    /// <summary>Context length in tokens.</summary>
    public int Context { get; init; } = 128;
    public double Dropout { get; init; } = 0.1;
    /// <summary>Share the token embedding with the output projection.</summary>
    public bool TiedEmbeddings { get; init; } = true;

    /// <summary>
    /// S, the virtual tensor shards every split layer is computed in (part of the model's numerics): a power of two
    /// dividing heads, the MLP width, the vocabulary and the context; any tensor-parallel degree dividing it gives the
    /// same bits. 0 means the largest of 1, 2, 4, 8 that divides them all.
    /// </summary>
    public int TensorShards { get; init; }

    /// <summary>Experts in place of the MLP of some layers; null: every layer is dense.</summary>
    public MoeSpec? Moe { get; init; }

    /// <summary>Starting weights; null: initialised from the seed.</summary>
    public ModelInitSpec? Init { get; init; }

    public bool IsLlama => Architecture == "llama";

    public int FfnSize => Ffn != 0 ? Ffn : IsLlama ? (8 * DModel / 3 + 63) / 64 * 64 : 4 * DModel;

    /// <summary>Key/value heads as used: <see cref="KvHeads"/> for llama (0: one per query head); GPT-2 has one per query head.</summary>
    public int KeyValueHeads => IsLlama && KvHeads != 0 ? KvHeads : Heads;

    public int HeadDim => Heads == 0 ? 0 : DModel / Heads;

    /// <summary>Features of the keys (and of the values): key/value heads x head dimension.</summary>
    public int KeyValueWidth => KeyValueHeads * HeadDim;

    /// <summary>d x ffn matrices in a dense MLP: 2 (GELU: up, down) or 3 (SwiGLU: gate, up, down).</summary>
    public int MlpMatrices => IsLlama ? 3 : 2;

    /// <summary>Whether the key/value projection is split over <paramref name="shards"/> (else every shard computes the head it reads from a replica).</summary>
    public bool KeyValueSplit(int shards) => KeyValueHeads % shards == 0;

    /// <summary>S as used: <see cref="TensorShards"/>, or its default.</summary>
    public int Shards => TensorShards != 0 ? TensorShards : new[] { 8, 4, 2 }.FirstOrDefault(s => ShardProblems(s).Count == 0, 1);

    /// <summary>What keeps <paramref name="shards"/> from splitting this model: each model field it does not divide.</summary>
    public IReadOnlyList<(string Field, int Value)> ShardProblems(int shards) =>
        new[] { ("model.heads", Heads), ("model.ffn", FfnSize), ("model.vocab", Vocab), ("model.context", Context) }
            .Where(f => shards < 1 || f.Item2 % shards != 0)
            // Key/value heads either split over the shards or each shard reads one of them: S a multiple of kvHeads.
            .Concat(shards >= 1 && KeyValueHeads >= 1 && KeyValueHeads % shards != 0 && shards % KeyValueHeads != 0 ? [("model.kvHeads", KeyValueHeads)] : [])
            .ToList();
}

/// <summary>Where a model's starting weights come from.</summary>
public sealed record ModelInitSpec
{
    /// <summary>
    /// A Hugging Face-format folder (config.json, model.safetensors or shards with model.safetensors.index.json) of a GPT-2 or
    /// Llama model, absolute or relative to the spec file. The model's fields come from its config.json: one the spec sets
    /// otherwise is an error naming both.
    /// </summary>
    public string? From { get; init; }
}

public sealed record DataSpec
{
    /// <summary>The values of <see cref="Format"/>.</summary>
    public static readonly IReadOnlyList<string> Formats = ["text", "uint16", "uint32", "jsonl", "sft"];

    /// <summary>Sources that start with this name a corpus bundled with the engine.</summary>
    public const string BundledPrefix = "bundled:";

    /// <summary><c>bundled:kjv</c>, or a path (relative to the spec file) to a text file or a file of token ids.</summary>
    public string Source { get; init; } = "bundled:kjv";
    /// <summary>
    /// <c>text</c> (tokenized with <see cref="Tokenizer"/>); pre-tokenized little-endian ids, <c>uint16</c> or <c>uint32</c>; <c>jsonl</c>
    /// (JSON lines, the text of each record's <see cref="Field"/>, records ended by end-of-text); <c>sft</c> (JSON lines of
    /// prompt/completion pairs or chat messages, the loss taken over completions only).
    /// </summary>
    public string Format { get; init; } = "text";
    /// <summary>The text field of a <c>jsonl</c> record.</summary>
    public string Field { get; init; } = "text";
    /// <summary>
    /// <c>byte</c> (UTF-8 bytes, vocabulary 256), <c>tiktoken:gpt2</c>, <c>tiktoken:cl100k</c>, <c>tiktoken:o200k</c>, or a path (relative to
    /// the spec file) to a Hugging Face <c>tokenizer.json</c> or a SentencePiece <c>.model</c>. model.vocab must cover its ids.
    /// </summary>
    public string Tokenizer { get; init; } = "byte";
    /// <summary>The tail fraction of the token stream held out for evaluation.</summary>
    public double HeldOutFraction { get; init; } = 0.02;

    /// <summary>
    /// Several sources drawn by weight (in place of <see cref="Source"/>, <see cref="Format"/> and <see cref="Field"/>): sample i comes
    /// from the source furthest behind its share; each source keeps its own shuffled epochs and held-out tail. Null: one source.
    /// </summary>
    public IReadOnlyList<MixtureSource>? Mixture { get; init; }

    /// <summary>The sources a job reads, with the spec field that names each: the mixture's, or the one source.</summary>
    public IReadOnlyList<(string Field, MixtureSource Source)> Sources() => Mixture is { } mixture
        ? mixture.Select((s, i) => ($"data.mixture[{i}]", s)).ToList()
        : [("data", new MixtureSource { Source = Source, Format = Format, Field = Field })];
}

/// <summary>One source of a weighted mixture: as data.source, data.format and data.field, with its weight.</summary>
public sealed record MixtureSource
{
    public string Source { get; init; } = "";
    public double Weight { get; init; } = 1;
    public string Format { get; init; } = "text";
    public string Field { get; init; } = "text";
}

/// <summary>Global batch B = micro x micro-batches per step; gradients of the micro-batches are accumulated.</summary>
public sealed record BatchSpec
{
    /// <summary>Samples per optimizer step (B).</summary>
    public int Global { get; init; } = 16;
    /// <summary>Samples per forward/backward pass (b).</summary>
    public int Micro { get; init; } = 4;

    public int MicroBatchesPerStep => Micro == 0 ? 0 : Global / Micro;
}

/// <summary>AdamW with linear warmup and cosine decay, and global-norm gradient clipping.</summary>
public sealed record OptimizerSpec
{
    public double Lr { get; init; } = 3e-3;
    public double MinLr { get; init; } = 3e-4;
    public int WarmupSteps { get; init; } = 10;
    public double WeightDecay { get; init; } = 0.1;
    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.95;
    public double Eps { get; init; } = 1e-8;
    /// <summary>Clip the global gradient norm to this value; 0 disables clipping.</summary>
    public double ClipNorm { get; init; } = 1.0;
}

public sealed record EvalSpec
{
    /// <summary>Evaluate held-out loss every this many steps (and after the last); 0 only after the last.</summary>
    public int Every { get; init; } = 50;
    /// <summary>Held-out micro-batches per evaluation.</summary>
    public int Batches { get; init; } = 4;
}

/// <summary>
/// The parallel layout a job pins. Every dimension left out (or written <c>"auto"</c>, null here) is the planner's to choose
/// when the job starts and to change as devices come and go; a pinned one is kept through every re-plan. The data-parallel
/// width is always the service's, within <see cref="DeviceSpec"/>. Every layout gives the same bits. Run on the engine alone
/// (no cluster), an unpinned dimension takes its neutral value: one device, no ZeRO, no recomputation.
/// </summary>
public sealed record ParallelSpec
{
    /// <summary>tp: the devices of one silo that each replica's layers are split over; a power of two dividing model.tensorShards. Null: auto.</summary>
    [JsonConverter(typeof(AutoConverter))]
    public int? Tensor { get; init; }
    /// <summary>With tp > 1, split LayerNorm, dropout and the residual stream along the sequence (same bits either way, less activation memory).</summary>
    public bool Sequence { get; init; } = true;
    /// <summary>pp: the stages each replica's layers are split over (contiguous layers, balanced by FLOPs); stages may sit on different silos. Null: auto.</summary>
    [JsonConverter(typeof(AutoConverter))]
    public int? Pipeline { get; init; }
    /// <summary>How each stage orders its forwards and backwards: <c>1f1b</c> or <c>interleaved</c> (with <see cref="VirtualStages"/> chunks per stage). Null: auto (interleaved when v > 1).</summary>
    [JsonConverter(typeof(AutoConverter))]
    public string? Schedule { get; init; }
    /// <summary>v: model chunks per stage under the interleaved schedule (the bubble shrinks by v). Null: auto.</summary>
    [JsonConverter(typeof(AutoConverter))]
    public int? VirtualStages { get; init; }
    /// <summary>
    /// ZeRO stage over the data-parallel group: 0 every replica keeps the whole optimizer state; 1 each replica keeps the AdamW
    /// moments of its part of the parameters and updates only that part, then the parts are all-gathered; 2 also reduces the
    /// gradients to their part's owner only (reduce-scatter instead of all-reduce); 3 also keeps only its part of the
    /// parameters, each layer's gathered before it runs forward and again (recomputed) in backward. The same bits at every level. Null: auto.
    /// </summary>
    [JsonConverter(typeof(AutoConverter))]
    public int? Zero { get; init; }

    /// <summary>
    /// ep: the devices each MoE layer's experts are spread over (E / ep each), taken from the data-parallel replicas: tokens
    /// go to their experts' devices and back (all-to-all). A power of two dividing model.moe.experts; the data-parallel width
    /// is then a multiple of it. The same bits at every ep. Null: auto.
    /// </summary>
    [JsonConverter(typeof(AutoConverter))]
    public int? Expert { get; init; }

    /// <summary>
    /// The layout to start on, in the <c>--plan</c> notation (<c>dp=1,pp=2,tp=2,zero=1</c>); null: the planner's choice. It must
    /// keep the pinned dimensions; as devices come and go the planner may leave it for the others.
    /// </summary>
    public string? Start { get; init; }
}

/// <summary>How many devices the job may use (dp x tp); the service picks a data-parallel width whose devices fall in [min, max] and are free.</summary>
public sealed record DeviceSpec
{
    public int Min { get; init; } = 1;
    public int Max { get; init; } = 64;
}

/// <summary>When a running job saves its state to the cluster's checkpoint store, and how many checkpoints it keeps.</summary>
public sealed record CheckpointSpec
{
    /// <summary>Save after every this many steps (and after the last); 0: not by step count.</summary>
    public int EverySteps { get; init; }
    /// <summary>Save at the first step boundary this many minutes after the previous save began; 0: not by time.</summary>
    public double EveryMinutes { get; init; }
    /// <summary>Keep the newest this many checkpoints.</summary>
    public int KeepLast { get; init; } = 3;
    /// <summary>Also keep every checkpoint whose step is a multiple of this; 0: none.</summary>
    public int KeepEvery { get; init; }
}

/// <summary>Where a finished job's trained model goes.</summary>
public sealed record OutputSpec
{
    /// <summary>A directory the silos can write (absolute, or relative to the spec file); the model is written there when the job completes. Null: not written.</summary>
    public string? Directory { get; init; }

    /// <summary>
    /// The dtype of the model's weights in the folders a job writes (runs/NAME, <see cref="Directory"/>, exports): <c>float32</c> as
    /// trained, or <c>bfloat16</c> / <c>float16</c> (rounded to nearest even), as Hugging Face's <c>torch_dtype</c> names them.
    /// </summary>
    public string Dtype { get; init; } = "float32";

    public static readonly IReadOnlyList<string> Dtypes = ["float32", "bfloat16", "float16"];
}

/// <summary>How each device computes. Part of the spec because results are bitwise reproducible only for a fixed value.</summary>
public sealed record RuntimeSpec
{
    /// <summary>Intra-op CPU threads per device.</summary>
    public int ThreadsPerDevice { get; init; } = 1;

    /// <summary>
    /// How matmuls compute: <c>fp32</c>; <c>tf32</c> (fp32 matmuls on tensor cores with TF32 inputs; on a CPU the same as fp32);
    /// <c>bf16</c> (matmuls and attention in bf16 over fp32 master weights, fp32 gradients and optimizer state).
    /// </summary>
    public string Precision { get; init; } = "fp32";

    /// <summary>
    /// Activation recomputation: <c>none</c>; <c>selective</c> (the attention core is run again in backward instead of keeping its
    /// attention weights); <c>full</c> (each layer keeps only its input and is run again in backward). Same bits every way.
    /// Null (<c>"auto"</c>): the planner's to choose, as a parallel dimension is.
    /// </summary>
    [JsonConverter(typeof(AutoConverter))]
    public string? Recompute { get; init; }
}
