using System.Reflection;
using Elastic.Grains.Jobs;
using Elastic.Units.Replicas;

namespace Elastic.Tests.Coordination;

/// <summary>Coordination (the job's coordinator, capacity, registry) never loads libtorch: only the units that run on devices do.</summary>
public sealed class AssemblyBoundaryTests
{
    private static HashSet<string> Closure(Assembly root)
    {
        var seen = new HashSet<string>();
        var pending = new Stack<AssemblyName>([root.GetName()]);
        while (pending.TryPop(out var name))
        {
            if (!seen.Add(name.Name!) || name.Name!.StartsWith("System", StringComparison.Ordinal) || name.Name.StartsWith("Microsoft", StringComparison.Ordinal)) continue;
            foreach (var reference in Assembly.Load(name).GetReferencedAssemblies()) pending.Push(reference);
        }
        return seen;
    }

    [Fact]
    public void The_coordination_assembly_references_neither_the_engine_nor_TorchSharp_even_indirectly()
    {
        var closure = Closure(typeof(JobGrain).Assembly);

        Assert.DoesNotContain("TorchSharp", closure);
        Assert.DoesNotContain("Elastic.Training", closure);
        Assert.DoesNotContain("Elastic.Units", closure);
        Assert.Contains("Elastic.Checkpoints", closure);
    }

    [Fact]
    public void The_units_that_run_on_devices_do_reference_TorchSharp()
    {
        Assert.Contains("TorchSharp", Closure(typeof(ShardGroupGrain).Assembly));
    }
}
