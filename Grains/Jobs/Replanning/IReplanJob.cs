using Elastic.GrainInterfaces;
using Elastic.Parallelism;
using Elastic.Planning;

namespace Elastic.Grains.Jobs.Replanning;

/// <summary>
/// What a <see cref="Replanner"/> needs of the job it moves: its record and journal, its checkpoints and policy, the capacity
/// grain, the planner, and the calls that make and release units. The job grain is one; the tests give a fake with fake units.
/// </summary>
public interface IReplanJob
{
    string JobId { get; }
    JobRecord Record { get; }
    JobJournal Journal { get; }
    CheckpointCoordinator Checkpoints { get; }
    ElasticityPolicy Policy { get; }
    JobStanding Standing { get; }

    /// <summary>The device counts some layout of the job runs on, widest first.</summary>
    IReadOnlyList<int> Widths { get; }

    LayoutChooser Chooser { get; }
    bool CancelRequested { get; }

    /// <summary>The units of the running generation, one per data-parallel replica.</summary>
    IReplicaGrain[] Units { get; set; }

    Task<T> OnCapacity<T>(Func<ICapacityGrain, Task<T>> call);
    Task<PlanRanking> Rank(CapacityReview review, IReadOnlyCollection<SiloAddress>? exclude);

    /// <summary>A plan in the next generation, persisted before any unit of it exists.</summary>
    Task<ParallelPlan> NewPlan(IReadOnlyList<DeviceSlot> devices, Layout layout);

    /// <summary>One prepared unit per replica; <paramref name="adopt"/>[r]: replica r takes over the state left on its devices.</summary>
    Task<IReplicaGrain[]> Prepare(ParallelPlan plan, bool[] adopt, TimeSpan joinTimeout);

    /// <summary>
    /// The unit on the devices of <paramref name="plan"/>'s one replica that stages the state a failed attempt parked there (holder
    /// <paramref name="holder"/>), and its assignment.
    /// </summary>
    (IReplicaGrain Unit, ShardAssignment Assignment) ParkedState(ParallelPlan plan, int holder);

    /// <summary>Releases units without failing (a unit on a lost silo has nothing left to release).</summary>
    Task ReleaseQuietly(IReplicaGrain[] units);

    /// <summary>One tensor rank of a replica's pipeline stage, to release apart when its replica grain was lost.</summary>
    IShardGroupGrain ShardGroup(string key);

    /// <summary>The data-plane secret of the plan's generation.</summary>
    byte[] PeerSecret(ParallelPlan plan);

    /// <summary>Persists the record soon, in the background.</summary>
    void WriteSoon();
}
