using System.Globalization;
using Elastic.Checkpoints.HuggingFace;
using Elastic.Data;
using Elastic.GrainInterfaces;
using Elastic.Grains.Capacity;
using Elastic.Grains.Scheduling;
using Elastic.Jobs;
using Elastic.Planning;

namespace Elastic.Grains.Jobs;

/// <summary>
/// Everything a cluster checks before it admits a job, beyond the spec's own rules: data it can read and
/// outputs it may write (inside the configured roots), and devices that can hold the job at its narrowest
/// layout (memory, threads). Every problem is listed at once; nothing is written or started for a refusal.
/// </summary>
public static class JobAdmission
{
    /// <summary>
    /// The spec as the cluster will run it (a model imported with model.init.from takes its config's fields) and every reason to
    /// refuse it. Starting weights are read only from inside the data roots.
    /// </summary>
    public static (TrainingSpec Spec, List<SpecError> Errors) Admit(TrainingSpec spec, AdmissionOptions options, IReadOnlyList<SiloInventory> inventory)
    {
        if (spec.Model?.Init?.From is { } from && Path.IsPathFullyQualified(from) && options.DataRoots.Problem(from, "Elastic:Jobs:DataRoots") is { } problem)
            return (spec, [.. SpecValidator.Validate(spec), new SpecError("model.init.from", from, problem)]);
        var (resolved, importErrors) = ModelImport.Resolve(spec);
        if (importErrors.Count > 0) return (spec, [.. SpecValidator.Validate(spec), .. importErrors]);
        return (resolved, Check(resolved, options, inventory));
    }

    public static List<SpecError> Check(TrainingSpec spec, AdmissionOptions options, IReadOnlyList<SiloInventory> inventory)
    {
        var pathErrors = new List<SpecError>();
        // Relative paths are the validator's to refuse.
        foreach (var (field, data) in spec.Data?.Sources() ?? [])
            if (data?.Source is { } source && Path.IsPathFullyQualified(source) && options.DataRoots.Problem(source, "Elastic:Jobs:DataRoots") is { } dataProblem)
                pathErrors.Add(new SpecError($"{field}.source", source, dataProblem));
        if (spec.Output?.Directory is { } output && Path.IsPathFullyQualified(output) && options.OutputRoots.Problem(output, "Elastic:Jobs:OutputRoots") is { } outputProblem)
            pathErrors.Add(new SpecError("output.directory", output, outputProblem));
        // A source outside the roots is never opened, not even to check it.
        var errors = pathErrors.Any(e => e.Field.StartsWith("data.", StringComparison.Ordinal)) ? SpecValidator.Validate(spec) : JobValidation.Validate(spec).ToList();
        errors.AddRange(pathErrors);
        if (errors.Count == 0) errors.AddRange(DeviceProblems(spec, inventory));
        return errors;
    }

    /// <summary>
    /// Refuses a job no layout of which the cluster's devices could hold (its own narrowest layout is tried first, then the
    /// planner's over every dimension the spec leaves free), or whose tensor-parallel group (on one silo) no silo can hold; an
    /// empty cluster refuses nothing (the job waits for devices).
    /// </summary>
    public static IEnumerable<SpecError> DeviceProblems(TrainingSpec spec, IReadOnlyList<SiloInventory> inventory)
    {
        var offering = inventory.Where(s => s.Devices > 0).ToList();
        if (offering.Count == 0) return [];
        var problems = DeviceProblems(spec, offering.Max(s => s.DeviceMemoryMiB), offering.Max(s => s.ThreadsPerDevice), "the largest device of this cluster").ToList();
        if (problems.Any(p => p.Field == "model") && new Planner(spec).Rank(InventoryShape.Of(offering), SpecLayout.Pins(spec), keep: 1).Choice is not null)
            problems.RemoveAll(p => p.Field == "model");
        var largest = offering.Max(s => s.Devices);
        if (spec.Parallel.Tensor is { } tensor && tensor > largest)
            problems.Add(new SpecError("parallel.tensor", tensor.ToString(CultureInfo.InvariantCulture),
                $"a tensor-parallel group lives on one silo's devices, but the largest silo of this cluster has {largest}"));
        return problems;
    }

    /// <summary>Refuses a job whose narrowest layout needs more devices than its tenant may hold together.</summary>
    public static IEnumerable<SpecError> QuotaProblems(TrainingSpec spec, string tenant, SchedulingOptions scheduling)
    {
        var narrowest = SpecValidator.DataParallelWidths(spec).DefaultIfEmpty(1).Min() * SpecLayout.At(spec, 1).ReplicaDevices;
        if (scheduling.QuotaOf(tenant) is { } quota && narrowest > quota)
            yield return new SpecError("devices.min", spec.Devices.Min.ToString(CultureInfo.InvariantCulture),
                $"the narrowest layout needs {narrowest} device(s), but tenant {tenant} may hold at most {quota} ({scheduling.QuotaSetting(tenant)})");
    }

    /// <summary>Refuses a job that needs more memory per device than <paramref name="deviceMiB"/>, or more intra-op threads than <paramref name="threads"/>.</summary>
    /// <param name="device">Names the device in the message ("this machine", "the largest device of this cluster").</param>
    public static IEnumerable<SpecError> DeviceProblems(TrainingSpec spec, long deviceMiB, int threads, string device)
    {
        var narrowest = SpecValidator.DataParallelWidths(spec).DefaultIfEmpty(1).Min();
        var estimate = MemoryEstimate.For(spec, narrowest);
        if (estimate.TotalMiB > deviceMiB)
            yield return new SpecError("model", $"{spec.Model.Layers} layers, d={spec.Model.DModel}, context {spec.Model.Context}, batch.micro {spec.Batch.Micro}",
                $"needs {estimate} at dp={narrowest}; {device} has {deviceMiB} MiB");
        if (spec.Runtime.ThreadsPerDevice > threads)
            yield return new SpecError("runtime.threadsPerDevice", spec.Runtime.ThreadsPerDevice.ToString(CultureInfo.InvariantCulture),
                $"{device} offers at most {threads} thread(s) per device");
    }
}
