using System.Text;
using TorchSharp;
using Elastic.Training.Data;
using Elastic.Jobs;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static Elastic.Training.ExplicitScalars;

namespace Elastic.Training.Model;

/// <summary>
/// A GPT decoder-only transformer with GPT-2 parameter names (wte, wpe, h.N.*, ln_f, lm_head) and
/// GPT-2 initialisation: normal(0, 0.02), residual projections scaled by 1/sqrt(2 x layers), zero biases,
/// unit LayerNorm gains. Each parameter is initialised from its own generator keyed by (seed, name), so a
/// parameter's initial value does not depend on which others exist or on the order they are created in.
/// </summary>
public sealed class GptModel : nn.Module
{
    // Submodule fields carry the GPT-2 names they are registered under (here and in the blocks): TorchSharp's
    // state_dict also walks fields, and other names would make every parameter appear twice in saved files.
    private readonly Embedding wte;
    private readonly Embedding wpe;
    private readonly ModuleList<TransformerBlock> h;
    private readonly LayerNorm ln_f;
    private readonly Linear? lm_head;
    private readonly Matmuls _matmuls;

    public GptModel(ModelSpec spec, ulong seed, ComputePrecision precision = ComputePrecision.Fp32) : base("GPT")
    {
        Spec = spec;
        Precision = precision;
        _matmuls = new Matmuls(precision);
        wte = nn.Embedding(spec.Vocab, spec.DModel);
        wpe = nn.Embedding(spec.Context, spec.DModel);
        h = nn.ModuleList(Enumerable.Range(0, spec.Layers)
            .Select(_ => new TransformerBlock(spec.DModel, spec.Heads, spec.FfnSize, spec.Dropout, _matmuls)).ToArray());
        ln_f = nn.LayerNorm(spec.DModel);
        register_module("wte", wte);
        register_module("wpe", wpe);
        register_module("h", h);
        register_module("ln_f", ln_f);
        if (!spec.TiedEmbeddings)
        {
            lm_head = nn.Linear(spec.DModel, spec.Vocab, hasBias: false);
            register_module("lm_head", lm_head);
        }
        Initialize(seed);
    }

    public ModelSpec Spec { get; }
    public ComputePrecision Precision { get; }

    /// <summary>The device the parameters live on.</summary>
    public Device Device => wte.weight!.device;

    /// <summary>Parameters sorted by name (ordinal): the canonical order for digests, flat buffers and checkpoints.</summary>
    public IReadOnlyList<(string Name, Parameter Parameter)> ParametersByName() =>
        named_parameters().OrderBy(p => p.name, StringComparer.Ordinal).ToList();

    /// <summary>Logits [batch, time, vocab] for token ids [batch, time]; bf16 when the model computes in bf16.</summary>
    public Tensor forward(Tensor tokens, DropoutKeys? keys)
    {
        using var scope = NewDisposeScope();
        var t = tokens.shape[1];
        // Explicit scalars live until the end of the method; implicit ones can be finalized mid-call.
        using var start = 0L.ToScalar();
        using var stop = t.ToScalar();
        using var stride = 1L.ToScalar();
        var positions = arange(start, stop, stride, dtype: ScalarType.Int64, device: tokens.device);
        var x = Dropout.Apply(wte.call(tokens).add(wpe.call(positions), alpha: One), Spec.Dropout, training, keys);
        foreach (var block in h) x = block.forward(x, keys);
        x = ln_f.call(x);
        var logits = lm_head is null ? _matmuls.Linear(x, wte.weight!) : _matmuls.Linear(lm_head, x);
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>Mean next-token cross-entropy of a batch, in fp32 whatever the compute precision.</summary>
    public Tensor Loss(Tensor tokens, Tensor targets, DropoutKeys? keys)
    {
        using var scope = NewDisposeScope();
        var logits = forward(tokens, keys).to(ScalarType.Float32);
        return nn.functional.cross_entropy(logits.view(-1, logits.shape[2]), targets.reshape(-1)).MoveToOuterDisposeScope();
    }

    private void Initialize(ulong seed)
    {
        using var noGrad = no_grad();
        var residualStd = 0.02 / Math.Sqrt(2.0 * Spec.Layers);
        using var one = 1.0.ToScalar(); // explicit: an implicit Scalar can be finalized mid-call
        foreach (var (name, p) in ParametersByName())
        {
            if (name.EndsWith(".bias", StringComparison.Ordinal)) p.zero_();
            else if (name.StartsWith("ln_", StringComparison.Ordinal) || name.Contains(".ln_", StringComparison.Ordinal)) p.fill_(one);
            else
            {
                using var generator = new Generator(SplitMix64.Derive(seed, RandomPurpose.Init, NameKey(name)), CPU);
                p.normal_(0, name.EndsWith("c_proj.weight", StringComparison.Ordinal) ? residualStd : 0.02, generator);
            }
        }
    }

    /// <summary>FNV-1a of the UTF-8 name: a stable key (string.GetHashCode is randomised per process).</summary>
    private static ulong NameKey(string name)
    {
        var h = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(name)) h = (h ^ b) * 1099511628211UL;
        return h;
    }
}
