using Elastic.GrainInterfaces;
using Elastic.Jobs;
using Elastic.Training.Engine;

namespace Elastic.Grains.Jobs;

/// <summary>
/// Everything a cluster checks before it admits a job, beyond the spec's own rules: data it can read and
/// outputs it may write (inside the configured roots), and devices that can hold the job at its narrowest
/// layout (memory, threads). Every problem is listed at once; nothing is written or started for a refusal.
/// </summary>
public static class JobAdmission
{
    public static List<SpecError> Check(TrainingSpec spec, AdmissionOptions options, IReadOnlyList<SiloInventory> inventory)
    {
        var errors = JobValidation.Validate(spec).ToList();
        if (errors.Count > 0) return errors;
        var source = spec.Data.Source;
        if (!source.StartsWith(DataSpec.BundledPrefix, StringComparison.Ordinal) && options.DataRoots.Problem(source, "Elastic:Jobs:DataRoots") is { } dataProblem)
            errors.Add(new SpecError("data.source", source, dataProblem));
        if (spec.Output.Directory is { } output && options.OutputRoots.Problem(output, "Elastic:Jobs:OutputRoots") is { } outputProblem)
            errors.Add(new SpecError("output.directory", output, outputProblem));
        errors.AddRange(DeviceProblems(spec, inventory));
        return errors;
    }

    /// <summary>Refuses a job no device of the cluster could run even at its narrowest layout; an empty cluster refuses nothing (the job waits for devices).</summary>
    public static IEnumerable<SpecError> DeviceProblems(TrainingSpec spec, IReadOnlyList<SiloInventory> inventory)
    {
        var offering = inventory.Where(s => s.Devices > 0).ToList();
        if (offering.Count == 0) yield break;
        var narrowest = SpecValidator.DataParallelWidths(spec).DefaultIfEmpty(1).Min();
        var estimate = MemoryEstimate.For(spec, narrowest);
        var largest = offering.Max(s => s.DeviceMemoryMiB);
        if (estimate.TotalMiB > largest)
            yield return new SpecError("model", $"{spec.Model.Layers} layers, d={spec.Model.DModel}, context {spec.Model.Context}, batch.micro {spec.Batch.Micro}",
                $"needs {estimate} at dp={narrowest}; the largest device of this cluster has {largest} MiB");
        var threads = offering.Max(s => s.ThreadsPerDevice);
        if (spec.Runtime.ThreadsPerDevice > threads)
            yield return new SpecError("runtime.threadsPerDevice", spec.Runtime.ThreadsPerDevice.ToString(System.Globalization.CultureInfo.InvariantCulture),
                $"the devices of this cluster offer at most {threads} thread(s) each (Elastic:Devices:ThreadsPerDevice)");
    }
}
