using System.Text;
using Elastic.Data;
using Elastic.Jobs;
using Elastic.Parallelism.Pipeline;
using Elastic.Training.Parallel.Experts;
using Elastic.Training.Parallel.TensorParallel;
using TorchSharp;
using TorchSharp.Modules;
using static Elastic.Training.ExplicitScalars;
using static TorchSharp.torch;

namespace Elastic.Training.Model;

/// <summary>
/// A decoder-only transformer (the architecture's own parts in DecoderModel.Gpt2.cs and DecoderModel.Llama.cs) built
/// from tensor-parallel layers over S = <c>model.tensorShards</c> virtual shards: attention heads, MLP width and
/// vocabulary split into S shards, every sum across them in the canonical tree, so this rank's part of the model
/// computes the same bits whatever tp it runs at. Activations are sequence-major ([sequence, batch, features]).
/// Each parameter is initialised whole from its own generator keyed by (seed, name) and then cut, so its values do
/// not depend on the layout or on which other parameters exist. A pipeline stage holds only its chunks' parameters and
/// runs them one chunk at a time (<see cref="Forward(ModelChunk, Tensor, long, Tensor?, DropoutKeys?)"/>).
/// </summary>
public sealed partial class DecoderModel : IDisposable
{
    private readonly Dictionary<string, ModelParameter> _byName;
    private readonly IReadOnlyList<Embedding> _vocabTables;
    private readonly Matmuls _matmuls;
    private IReadOnlyList<Tensor>? _headLeaves;
    private Func<string, string?, bool, IDisposable>? _gather;
    private readonly Dictionary<int, MoeLayer> _moe = [];
    private readonly List<ExpertLayerLoad> _loads = [];

    /// <param name="group">This rank's tensor-parallel group; null: one device holding all S shards.</param>
    /// <param name="sequenceParallel">With tp > 1: split LayerNorm, dropout and the residual stream along the sequence while training.</param>
    /// <param name="chunks">The pipeline chunks this model holds; null: the whole model as one chunk.</param>
    /// <param name="experts">With MoE layers, this rank's expert group (it holds that rank's experts of each); null: all of them.</param>
    public DecoderModel(ModelSpec spec, ulong seed, ComputePrecision precision = ComputePrecision.Fp32, Device? device = null,
        TensorParallelGroup? group = null, bool sequenceParallel = false, IReadOnlyList<ModelChunk>? chunks = null, ExpertGroup? experts = null)
    {
        Spec = spec;
        Precision = precision;
        Device = device ?? CPU;
        Group = group ?? new TensorParallelGroup(spec.Shards, null);
        if (Group.Shards != spec.Shards)
            throw new ArgumentException($"the tensor-parallel group has {Group.Shards} shards but model.tensorShards is {spec.Shards}", nameof(group));
        SequenceParallel = sequenceParallel && Group.Degree > 1;
        _matmuls = new Matmuls(precision);
        Experts = experts ?? new ExpertGroup(spec.Moe?.Experts ?? 1, null);
        if (spec.Moe is { } mixture && Experts.Experts != mixture.Experts)
            throw new ArgumentException($"the expert group spreads {Experts.Experts} experts but model.moe.experts is {mixture.Experts}", nameof(experts));
        Chunks = chunks ?? [WholeChunk(spec)];
        var tables = new List<Embedding>();
        Parameters = ParameterLayout.Of(spec).Where(l => Chunks.Any(c => ChunkParameters.Holds(c, l.Name, spec.TiedEmbeddings)))
            .Select(layout => Create(layout, seed, spec.Layers, tables)).ToList();
        _byName = Parameters.ToDictionary(p => p.Name);
        _vocabTables = tables;
        if (spec.Moe is { } moe)
            foreach (var layer in Chunks.SelectMany(c => Enumerable.Range(c.First, c.Count)).Where(moe.IsMoeLayer))
                _moe[layer] = new MoeLayer(moe, layer, ExpertMlps.For(spec, _matmuls.Linear), _loads.Add);
    }

    /// <summary>What each MoE layer did in the forwards since the last call (in the order they ran), and forgets it.</summary>
    public IReadOnlyList<ExpertLayerLoad> TakeExpertLoads()
    {
        var loads = _loads.ToList();
        _loads.Clear();
        return loads;
    }

    public ModelSpec Spec { get; }
    public ComputePrecision Precision { get; }
    public Device Device { get; }
    public TensorParallelGroup Group { get; private set; }

    /// <summary>The ranks this model's MoE experts are spread over (one rank holding all when there are none).</summary>
    public ExpertGroup Experts { get; private set; }

    /// <summary>The gradient keys (name#expert) of the expert pieces this model holds.</summary>
    public IReadOnlySet<string> ExpertKeys => Parameters.Where(p => p.Layout.Experts).SelectMany(p => p.Named().Select(n => n.Key)).ToHashSet();

    /// <summary>The model's MoE layers, by layer index.</summary>
    public IReadOnlyDictionary<int, MoeLayer> MoeLayers => _moe;

    /// <summary>
    /// Moves the model to the tensor-parallel group of a new generation (the same shards on the same rank, new
    /// communicator): a unit that adopts the state its device kept across a re-plan joins the new group first.
    /// </summary>
    public void Rejoin(TensorParallelGroup group)
    {
        if (group.Shards != Group.Shards || group.Degree != Group.Degree || group.Rank != Group.Rank)
            throw new ArgumentException($"this model holds shards {Group.FirstShard}..{Group.FirstShard + Group.ShardsPerRank - 1} of {Group.Shards} as tensor rank {Group.Rank} of {Group.Degree}; the new group makes it rank {group.Rank} of {group.Degree} over {group.Shards} shards", nameof(group));
        Group = group;
    }

    /// <summary>Moves the model to the expert group of a new generation (the same experts on the same rank, new communicator).</summary>
    public void Rejoin(ExpertGroup experts)
    {
        if (experts.Experts != Experts.Experts || experts.Degree != Experts.Degree || experts.Rank != Experts.Rank)
            throw new ArgumentException($"this model holds experts {Experts.First}..{Experts.First + Experts.PerRank - 1} of {Experts.Experts} as expert rank {Experts.Rank} of {Experts.Degree}; the new group makes it rank {experts.Rank} of {experts.Degree}", nameof(experts));
        Experts = experts;
    }
    public bool SequenceParallel { get; }

    /// <summary>What training forwards keep for backward; the rest is computed again there (the same bits).</summary>
    public ActivationRecompute Recompute { get; set; }

    /// <summary>The pipeline chunks this model holds, in order.</summary>
    public IReadOnlyList<ModelChunk> Chunks { get; }

    /// <summary>The whole model as one chunk: embedding, every layer, head.</summary>
    public static ModelChunk WholeChunk(ModelSpec spec) => new(0, 0, spec.Layers, true, true, 0);

    /// <summary>Dropout on and sequence chunks for the gradient sums; off for evaluation and sampling.</summary>
    public bool Training { get; set; } = true;

    /// <summary>Every logical parameter, in name order.</summary>
    public IReadOnlyList<ModelParameter> Parameters { get; }

    /// <summary>Values in the whole model, whatever share of it this rank holds.</summary>
    public long WholeParameterCount => Parameters.Sum(p => p.Layout.Shape.Aggregate(1L, (a, b) => a * b));

    /// <summary>This rank's parameter tensors (shards of split parameters), in the canonical order of flat buffers, with whether weight decay applies.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter, bool Decay)> ParametersByName() =>
        Parameters.SelectMany(p => p.Named().Select(n => (n.Key, n.Tensor, p.Layout.Decay))).ToList();

    /// <summary>The parameters <paramref name="chunk"/> holds, as <see cref="ParametersByName"/> lists them.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter, bool Decay)> ParametersOf(ModelChunk chunk) =>
        Parameters.Where(p => ChunkParameters.Holds(chunk, p.Name, Spec.TiedEmbeddings))
            .SelectMany(p => p.Named().Select(n => (n.Key, n.Tensor, p.Layout.Decay))).ToList();

    /// <summary>
    /// With tied embeddings, gives the head its own autograd leaves over the token embedding's storage, so that the head's
    /// gradient lands in its own buffer region: the embedding's and the head's contributions are each summed over the
    /// micro-batches and added once, the same on every pipeline layout (where they come from different stages). Call after
    /// the parameters have their final storage (the optimizer moves them into its flat buffer).
    /// </summary>
    public IReadOnlyList<(string Name, Tensor Leaf)> SeparateTiedHead()
    {
        if (!Spec.TiedEmbeddings || !Chunks.Any(c => c.Head)) return [];
        var wte = _byName["wte.weight"];
        // Held by this model for its lifetime: no dispose scope or finalizer may free them while the head uses them.
        _headLeaves ??= wte.Local.Select(p => p.detach().requires_grad_(true).DetachFromDisposeScope()).ToList();
        return wte.Named().Select((n, i) => (TiedHeadPrefix + n.Key, _headLeaves[i])).ToList();
    }

    /// <summary>Names the head's leaves over the tied token embedding in gradient buffers.</summary>
    public const string TiedHeadPrefix = "head:";

    /// <summary>
    /// ZeRO 3: from now on each unit of the model (the embeddings, a layer, the head and loss) runs between a gather of its
    /// parameters and their release (<paramref name="gather"/>), and a training forward keeps only each unit's input: the
    /// unit is run again, gathered again, in backward. The gather is told the unit (<see cref="UnitParameters"/>), the unit
    /// that runs after it (to start gathering it now), and whether its buffer is worth keeping for the next unit (false for
    /// the one-off gather of everything).
    /// </summary>
    public void GatherParametersWith(Func<string, string?, bool, IDisposable> gather) => _gather = gather;

    /// <summary>
    /// While set, a training forward marks each unit whose input takes a gradient (a layer, the head) so that its backward tells
    /// this the unit's name once every gradient of the unit's parameters is final (<see cref="UnitBackwardDone"/>); the keys of
    /// those gradients are the ones <see cref="Completes"/> names. Must not throw.
    /// </summary>
    public Action<string>? UnitDone { get; set; }

    /// <summary>Whether the backward of <paramref name="unit"/> finishes the gradient named <paramref name="key"/> in a flat buffer.</summary>
    public static bool Completes(string unit, string key) => unit == "head"
        ? key.StartsWith("ln_f.", StringComparison.Ordinal) || key.StartsWith("lm_head.", StringComparison.Ordinal) || key.StartsWith(TiedHeadPrefix, StringComparison.Ordinal)
        : key.StartsWith(unit + ".", StringComparison.Ordinal);

    /// <summary>Every held parameter gathered at once (ZeRO 3; nothing otherwise), for digests and export.</summary>
    public IDisposable? GatherAll() => _gather is null ? null : Enter("*");

    private IDisposable Enter(string unit, string? next = null) => _gather!(unit, next, unit != "*");

    /// <summary>The head's leaves over a tied token embedding, by the embedding shard whose storage each shares (none without them).</summary>
    public IReadOnlyList<(Parameter Embedding, Tensor HeadLeaf)> TiedHeadLeaves() =>
        _headLeaves is null ? [] : _byName["wte.weight"].Local.Zip(_headLeaves).ToList();

    /// <summary>The held parameters a unit uses: <c>embedding</c>, <c>h.N</c>, <c>head</c> (with a tied embedding, the token embedding), or <c>*</c>.</summary>
    internal IReadOnlyList<ModelParameter> UnitParameters(string unit) => Parameters.Where(p => unit switch
    {
        "*" => true,
        "embedding" => p.Name is "wte.weight" or "wpe.weight",
        "head" => p.Name.StartsWith("ln_f.", StringComparison.Ordinal) || p.Name == (Spec.TiedEmbeddings ? "wte.weight" : "lm_head.weight"),
        _ => p.Name.StartsWith(unit + ".", StringComparison.Ordinal),
    }).ToList();

    /// <summary>
    /// Runs one unit on <paramref name="input"/>: under ZeRO 3 between the gather and release of its parameters, and, in a
    /// training forward, recomputed in backward; otherwise recomputed when <paramref name="recompute"/>, or plainly.
    /// </summary>
    /// <param name="units">The chunk's units in forward order, <paramref name="unit"/> among them: the next gathered in
    /// forward follows it, in backward precedes it.</param>
    /// <param name="owned">A tensor out of any dispose scope that <paramref name="piece"/> reads besides its input, disposed after the recomputation.</param>
    private Tensor Run(string unit, List<string> units, Func<Tensor, Tensor> piece, Tensor input, bool recompute, Tensor? owned = null)
    {
        if (UnitDone is { } done && input.requires_grad && is_grad_enabled()) input = UnitBackwardDone.Apply(unit, done, input);
        if (_gather is not null)
        {
            var at = units.IndexOf(unit);
            var (before, after) = (at > 0 ? units[at - 1] : null, at + 1 < units.Count ? units[at + 1] : null);
            if (is_grad_enabled()) return Recomputed.Apply(Group, piece, input, backward => Enter(unit, backward ? before : after), owned);
            using (Enter(unit, after)) return piece(input);
        }
        return recompute && is_grad_enabled() ? Recomputed.Apply(Group, piece, input, owned: owned) : piece(input);
    }

    /// <summary>
    /// Every parameter whole, in name order: on tp > 1 the split ones are gathered from the tensor-parallel group (a
    /// collective: every rank of the group must ask at the same time).
    /// </summary>
    public IEnumerable<(string Name, Tensor Tensor)> WholeParameters()
    {
        foreach (var p in Parameters)
        {
            var local = p.Joined();
            if (p.Layout.Experts) yield return (p.Name, Experts.Gather(local));
            else if (!p.Layout.TensorSplit || Group.Degree == 1) yield return (p.Name, local);
            else yield return (p.Name, Group.Gather(local.movedim([p.Layout.SplitDim!.Value], [0]).contiguous()).movedim([0], [p.Layout.SplitDim.Value]));
        }
    }

    /// <summary>Mean next-token cross-entropy of a batch (tokens and targets [batch, time]), in fp32 whatever the compute precision.</summary>
    public Tensor Loss(Tensor tokens, Tensor targets, DropoutKeys? keys) => Forward(AllLayers(), tokens, tokens.shape[1], targets, keys);

    /// <summary>
    /// One pipeline chunk's forward: from token ids [batch, time] (the first chunk) or the previous chunk's output, to the
    /// mean loss against <paramref name="targets"/> [batch, time] (the last chunk) or this chunk's output activation
    /// (<see cref="BoundaryShape"/>, for the next chunk).
    /// </summary>
    /// <param name="lossScale">Null: the mean loss over every target; otherwise the sum over the targets that are not -1, times it.</param>
    public Tensor Forward(ModelChunk chunk, Tensor input, long length, Tensor? targets, DropoutKeys? keys, double? lossScale = null)
    {
        using var scope = NewDisposeScope();
        // A recomputation during a backward may have recorded its loads since the last forward's were taken.
        _loads.Clear();
        var sequence = Sequence(length);
        var units = UnitsOf(chunk);
        var x = Blocks(chunk, units, chunk.Embedding ? Run("embedding", units, tokens => Embed(tokens, keys, sequence), input.t(), recompute: false) : input, keys, sequence);
        if (!chunk.Head) return x.MoveToOuterDisposeScope();
        var targetsByTime = (targets ?? throw new ArgumentNullException(nameof(targets))).t();
        // A head run again in backward reads the targets after this scope has ended: it gets a reference of its own.
        var headTargets = _gather is not null && is_grad_enabled() ? targetsByTime.detach().DetachFromDisposeScope() : null;
        var loss = Run("head", units, h => VocabParallelCrossEntropy.Loss(Group, Head(h, sequence), headTargets ?? targetsByTime, lossScale), x, recompute: false, owned: headTargets);
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>The shape of the activation between two chunks on this rank: [time (this rank's part when the sequence is split), batch, d].</summary>
    public long[] BoundaryShape(long length, long batch) => [Sequence(length) is { Split: true } ? length / Group.Degree : length, batch, Spec.DModel];

    /// <summary>Whole fp32 logits [batch, time, vocab] for token ids [batch, time] (every shard and chunk must be local).</summary>
    public Tensor forward(Tensor tokens)
    {
        if (Group.Degree != 1) throw new InvalidOperationException($"whole logits need every vocabulary shard; this rank holds {Group.ShardsPerRank} of {Group.Shards}");
        if (_gather is not null) throw new InvalidOperationException("a ZeRO 3 rank holds part of the parameters: save the model (ModelFolder) and compute logits from the saved one");
        using var scope = NewDisposeScope();
        var sequence = Sequence(tokens.shape[1]);
        var whole = AllLayers();
        var logits = Head(Blocks(whole, UnitsOf(whole), Embed(tokens.t(), null, sequence), null, sequence), sequence);
        return cat(logits.ToList(), 2).transpose(0, 1).MoveToOuterDisposeScope();
    }

    private ModelChunk AllLayers() => Chunks is [{ Embedding: true, Head: true } whole]
        ? whole
        : throw new InvalidOperationException($"this model holds pipeline chunk(s) {string.Join(", ", Chunks)}, not the whole model");

    private SequencePart Sequence(long length)
    {
        var split = SequenceParallel && Training;
        // Training sums replicated parameters' gradients per virtual sequence chunk; evaluation and sampling (any length) need no chunks.
        var chunks = !Training ? 1 : split ? Group.ShardsPerRank : Group.Shards;
        return new SequencePart(split ? Group.Rank * length / Group.Degree : 0, length, chunks, split);
    }

    private Tensor Embed(Tensor tokens, DropoutKeys? keys, SequencePart sequence)
    {
        var x = VocabParallelEmbedding.Forward(Group, tokens, _vocabTables, sequence.Split);
        // GPT-2 adds learned positions here; Llama rotates queries and keys in attention instead.
        if (!Spec.IsLlama) x = SequenceChunks.AddPositions(Group, x, Whole("wpe.weight"), sequence);
        return Dropout(x, keys, sequence, DropoutKeys.Site(null));
    }

    private Tensor Blocks(ModelChunk chunk, List<string> units, Tensor x, DropoutKeys? keys, SequencePart sequence)
    {
        for (var i = chunk.First; i < chunk.First + chunk.Count; i++)
        {
            var layer = i;
            x = Run($"h.{layer}", units, input => Block(layer, input, keys, sequence), x, Recompute == ActivationRecompute.Full);
        }
        return x;
    }

    /// <summary>A chunk's units in the order its forward runs them.</summary>
    private static List<string> UnitsOf(ModelChunk chunk) =>
        [.. chunk.Embedding ? ["embedding"] : Array.Empty<string>(), .. Enumerable.Range(chunk.First, chunk.Count).Select(i => $"h.{i}"), .. chunk.Head ? ["head"] : Array.Empty<string>()];

    /// <summary>This rank's vocabulary shards of the logits, [time, batch, V/S] each, fp32.</summary>
    private IReadOnlyList<Tensor> Head(Tensor x, SequencePart sequence)
    {
        var h = Norm("ln_f.", x, sequence);
        IReadOnlyList<Tensor> head = Spec.TiedEmbeddings ? _headLeaves ?? _byName["wte.weight"].Local : _byName["lm_head.weight"].Local;
        return ColumnParallelLinear.Forward(Group, h, head.ToList(), null, sequence.Split, _matmuls.Linear)
            .Select(l => l.to_type(ScalarType.Float32)).ToList();
    }

    /// <summary>
    /// A pre-norm block: x + attention(norm(x)), then x + MLP(norm(x)), each branch through dropout. Its intermediate tensors are
    /// released when it ends (what backward needs autograd keeps), not when the chunk's forward does: a chunk's forward would
    /// otherwise hold every layer's temporaries at once.
    /// </summary>
    private Tensor Block(int layer, Tensor x, DropoutKeys? keys, SequencePart sequence)
    {
        using var scope = NewDisposeScope();
        var p = $"h.{layer}.";
        var a = Norm(p + "ln_1.", x, sequence);
        var projected = Spec.IsLlama ? LlamaQkv(p, a, sequence) : Gpt2Qkv(p, a, sequence);
        Func<Tensor, Tensor> core = Spec.IsLlama ? LlamaAttention : Gpt2Attention;
        // A layer that is recomputed as a whole (ZeRO 3) has nothing to gain from recomputing its core again.
        var heads = Recompute == ActivationRecompute.Selective && _gather is null && is_grad_enabled()
            ? projected.Select(q => Recomputed.Apply(Group, core, q)).ToList()
            : projected.Select(core).ToList();
        var attention = RowParallelLinear.Forward(Group, heads, Shards(p + "attn.c_proj.weight"), Bias(p + "attn.c_proj.bias"), sequence, _matmuls.Linear);
        x = x.add(Dropout(attention, keys, sequence, DropoutKeys.Site(layer, 0)), alpha: One);
        var b = Norm(p + "ln_2.", x, sequence);
        var mlp = _moe.TryGetValue(layer, out var moe) ? MixtureOfExperts(moe, b, sequence) : Spec.IsLlama ? SwiGlu(p, b, sequence) : Gelu(p, b, sequence);
        return x.add(Dropout(mlp, keys, sequence, DropoutKeys.Site(layer, 1)), alpha: One).MoveToOuterDisposeScope();
    }

    /// <summary>The architecture's normalisation of <paramref name="x"/> with the parameters named <paramref name="prefix"/>weight (and bias).</summary>
    private Tensor Norm(string prefix, Tensor x, SequencePart sequence) => Spec.IsLlama
        ? SequenceChunks.RmsNorm(Group, x, Whole(prefix + "weight"), sequence, Spec.NormEps)
        : SequenceChunks.LayerNorm(Group, x, Whole(prefix + "weight"), Whole(prefix + "bias"), sequence, Spec.NormEps);

    /// <summary>A replicated bias, or null where the architecture has none.</summary>
    private Tensor? Bias(string name) => _byName.TryGetValue(name, out var bias) ? bias.Local[0] : null;

    /// <summary>
    /// A MoE layer over the whole micro-batch on every tensor rank alike (a split sequence is gathered first and split again
    /// after): its tokens in canonical order, by sample and then position.
    /// </summary>
    private Tensor MixtureOfExperts(MoeLayer moe, Tensor b, SequencePart sequence)
    {
        var whole = sequence.Split ? ReplicatedRegion.Enter(Group, b) : b;
        var (time, batch, d) = (whole.shape[0], whole.shape[1], whole.shape[2]);
        var p = $"h.{moe.Layer}.mlp.";
        var weights = ExpertWeights.Names(Spec).Select(n => _byName[p + "experts." + n]).ToList();
        var experts = weights[0].Local.Select((_, i) => new ExpertWeights(weights[0].FirstShard + i, weights.Select(w => (Tensor)w.Local[i]).ToList())).ToList();
        var tokens = moe.Forward(Group, Experts, whole.transpose(0, 1).reshape(batch * time, d), Whole(p + "router.weight"), experts);
        var back = tokens.view(batch, time, d).transpose(0, 1).contiguous();
        return sequence.Split ? ReplicatedRegion.Leave(Group, back) : back;
    }

    private Tensor Dropout(Tensor x, DropoutKeys? keys, SequencePart sequence, ulong site)
    {
        var p = Spec.Dropout;
        if (!Training || p == 0) return x;
        return keys is null ? nn.functional.dropout(x, p, training: true) : keys.Apply(x, p, sequence.First, sequence.Length, site);
    }

    private Tensor Whole(string name) => _byName[name].Local[0];

    /// <summary>The local shards of a split parameter, flattened to <paramref name="dims"/> dimensions (c_attn's [3, d/S, d] as [3d/S, d]).</summary>
    private IReadOnlyList<Tensor> Shards(string name, int? dims = null) =>
        _byName[name].Local.Select(s => dims is { } n && s.dim() != n ? s.flatten(0, (int)s.dim() - n) : s).ToList();

    private ModelParameter Create(ParameterLayout layout, ulong seed, int layers, List<Embedding> tables)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var whole = empty(layout.Shape, dtype: ScalarType.Float32);
        using (var value = 1.0.ToScalar())
        using (var generator = new Generator(SplitMix64.Derive(seed, RandomPurpose.Init, NameKey(layout.Name)), CPU))
        {
            _ = layout.Init switch
            {
                ParameterInit.Zeros => whole.zero_(),
                ParameterInit.Ones => whole.fill_(value),
                ParameterInit.Normal => whole.normal_(0, 0.02, generator),
                _ => whole.normal_(0, 0.02 / Math.Sqrt(2.0 * layers), generator),
            };
        }
        if (layout.Experts)
        {
            // One piece per expert, [1, ...]: an expert's arithmetic is the same whichever rank holds it.
            var experts = whole.split(1, 0).Skip(Experts.First).Take(Experts.PerRank)
                .Select(e => new Parameter(e.contiguous().to(Device, copy: true).DetachFromDisposeScope())).ToList();
            return new ModelParameter(layout, Experts.Experts, Experts.First, experts);
        }
        if (layout.SplitDim is not { } dim)
            return new ModelParameter(layout, 1, 0, [new Parameter(whole.to(Device, copy: true).DetachFromDisposeScope())]);
        var pieces = whole.split(layout.Shape[dim] / Group.Shards, dim);
        var local = Group.LocalShards.Select(s =>
        {
            if (layout.Name != "wte.weight") return new Parameter(pieces[s].contiguous().to(Device, copy: true).DetachFromDisposeScope());
            // The token embedding's shards are Embedding modules: their backward is libtorch's deterministic embedding backward.
            var table = nn.Embedding(pieces[s].shape[0], pieces[s].shape[1], device: Device);
            // Each .weight read is a new wrapper, owned by the current dispose scope unless detached from it.
            var weight = (Parameter)table.weight!.DetachFromDisposeScope();
            weight.copy_(pieces[s]);
            tables.Add(table);
            return weight;
        }).ToList();
        return new ModelParameter(layout, Group.Shards, Group.FirstShard, local);
    }

    /// <summary>
    /// Sets every held parameter from whole float32 values by name (a saved or imported model): each rank copies in the
    /// region of each parameter it holds, so any layout starts from the same values.
    /// </summary>
    public void Load(IReadOnlyDictionary<string, byte[]> whole)
    {
        foreach (var p in Parameters)
        {
            var count = p.Layout.Shape.Aggregate(1L, (a, b) => a * b);
            if (!whole.TryGetValue(p.Name, out var bytes) || bytes.Length != count * sizeof(float))
                throw new InvalidDataException($"no {count} float32 values for {p.Name} [{string.Join(", ", p.Layout.Shape)}]");
            using var scope = NewDisposeScope();
            var host = empty(p.Layout.Shape, dtype: ScalarType.Float32);
            bytes.CopyTo(host.bytes);
            var region = p.Region;
            var part = host;
            for (var dim = 0; dim < region.Shape.Length; dim++)
                if (region.Shape[dim] != p.Layout.Shape[dim]) part = part.narrow(dim, region.Offset[dim], region.Shape[dim]);
            p.CopyFrom(part.to(Device));
        }
    }

    /// <summary>FNV-1a of the UTF-8 name: a stable key (string.GetHashCode is randomised per process).</summary>
    private static ulong NameKey(string name)
    {
        var h = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(name)) h = (h ^ b) * 1099511628211UL;
        return h;
    }

    public void Dispose()
    {
        foreach (var table in _vocabTables) table.Dispose();
        foreach (var p in Parameters.SelectMany(p => p.Local)) p.Dispose();
        foreach (var leaf in _headLeaves ?? []) leaf.Dispose();
        foreach (var (cos, sin) in _rotary.Values)
        {
            cos.Dispose();
            sin.Dispose();
        }
    }
}
