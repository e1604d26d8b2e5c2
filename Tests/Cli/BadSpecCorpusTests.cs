using Elastic.Cli;
using Elastic.Client;
using Elastic.GrainInterfaces;
using Elastic.Grains.Jobs;
using Elastic.Jobs;
using Elastic.Silo.Hosting;

namespace Elastic.Tests.Cli;

/// <summary>
/// Every spec in Tests/Specs/Bad is refused by `train` and by `submit` with a message that names the field its
/// first line names (<c>// field: X</c>), and what its second line quotes (<c>// says: ...</c>); never a stack
/// trace, nothing written, no job admitted, and the cluster still runs a good job afterwards.
/// </summary>
public sealed class BadSpecCorpusTests(BadSpecCorpusTests.Cluster cluster) : IClassFixture<BadSpecCorpusTests.Cluster>, IDisposable
{
    private static readonly string Corpus = Path.Combine(RepoPaths.Root, "Tests", "Specs", "Bad");
    private readonly string _folder = Directory.CreateTempSubdirectory("elastic-bad-spec-").FullName;

    public static TheoryData<string> Specs() => new(Directory.GetFiles(Corpus, "*.json").Select(Path.GetFileName).Order()!);

    [Fact]
    public void The_corpus_covers_every_class_of_bad_input()
    {
        var names = Directory.GetFiles(Corpus, "*.json").Select(Path.GetFileNameWithoutExtension).ToList();
        Assert.True(names.Count >= 40, $"only {names.Count} bad specs");
        foreach (var kind in new[] { "null-", "-as-string", "duplicate-", "empty-document", "nan", "overflow", "name-", "data-", "unknown-" })
            Assert.Contains(names, n => n!.Contains(kind, StringComparison.Ordinal));
    }

    [Theory, MemberData(nameof(Specs))]
    public async Task Train_refuses_it_naming_the_field_and_writes_nothing(string file)
    {
        var (field, says) = Expectation(file);
        var run = Path.Combine(_folder, "run");
        var report = Path.Combine(_folder, "report.json");
        var (exit, output) = await Elastic("train", Path.Combine(Corpus, file), "--out", run, "--report", report);
        AssertRefused(exit, output, field, says);
        Assert.False(Directory.Exists(run), output);
        Assert.False(File.Exists(report), output);
    }

    [Theory, MemberData(nameof(Specs))]
    public async Task Submit_refuses_it_naming_the_field_and_admits_nothing(string file)
    {
        var (field, says) = Expectation(file);
        var (exit, output) = await Elastic("submit", Path.Combine(Corpus, file), "--cluster", cluster.Address);
        AssertRefused(exit, output, field, says);
        Assert.Empty(await cluster.Client.ListAsync());
    }

    [Fact]
    public async Task Through_the_SDK_null_sections_and_non_finite_numbers_are_refused_by_field_and_the_cluster_still_trains()
    {
        var good = TestSpecs.Tiny(steps: 2);
        var refusals = new (TrainingSpec Spec, string Field)[]
        {
            (good with { Model = null! }, "model"),
            (good with { Data = good.Data with { Tokenizer = null! } }, "data.tokenizer"),
            (good with { Optimizer = good.Optimizer with { Lr = double.NaN } }, "optimizer.lr"),
            (good with { Optimizer = good.Optimizer with { WeightDecay = double.PositiveInfinity } }, "optimizer.weightDecay"),
            (good with { Checkpoint = good.Checkpoint with { EveryMinutes = double.NegativeInfinity } }, "checkpoint.everyMinutes"),
            (good with { Name = "../escape" }, "name"),
        };
        foreach (var (spec, field) in refusals)
        {
            var e = await Assert.ThrowsAsync<JobSpecRejectedException>(() => cluster.Client.SubmitAsync(spec));
            Assert.Contains(e.Errors, error => error.Field == field);
        }
        Assert.Empty(await cluster.Client.ListAsync());
        // Refusals left nothing behind: a good job still runs to the end (then the list is emptied for the theories).
        var id = await cluster.Client.SubmitAsync(good);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var status = await cluster.Client.WaitForCompletionAsync(id, timeout.Token);
        Assert.True(status.State == JobState.Completed, $"{status.State}: {status.Error}");
        await cluster.Restart();
    }

    private static (string Field, string? Says) Expectation(string file)
    {
        var lines = File.ReadLines(Path.Combine(Corpus, file)).Take(2).ToList();
        var field = lines[0].StartsWith("// field: ", StringComparison.Ordinal) ? lines[0]["// field: ".Length..] : throw new InvalidDataException($"{file}: first line must be // field: NAME");
        var says = lines.Count > 1 && lines[1].StartsWith("// says: ", StringComparison.Ordinal) ? lines[1]["// says: ".Length..] : null;
        return (field, says);
    }

    private static void AssertRefused(int exit, string output, string field, string? says)
    {
        Assert.True(exit == 2, $"exit {exit}: {output}");
        Assert.Matches($@"(^|\s){System.Text.RegularExpressions.Regex.Escape(field)}( = |: )", output);
        if (says is not null) Assert.Contains(says, output);
        Assert.DoesNotContain("   at ", output);
        Assert.DoesNotContain("Exception", output);
    }

    private static async Task<(int Exit, string Output)> Elastic(params string[] args)
    {
        var output = new StringWriter();
        var exit = await ElasticCommandLine.Create().Parse(args).InvokeAsync(new() { Output = output, Error = output });
        return (exit, output.ToString());
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    /// <summary>One embedded cluster for the class; it may read the corpus's data folder.</summary>
    public sealed class Cluster : IAsyncLifetime
    {
        private readonly string _folder = Directory.CreateTempSubdirectory("elastic-bad-spec-cluster-").FullName;
        private EmbeddedCluster _cluster = null!;
        private ElasticConnection _connection = null!;

        public string Address => $"static:{_cluster.Gateway}";
        public ElasticClient Client => _connection.Client;

        public async Task InitializeAsync() => await Start();

        /// <summary>A fresh cluster: no jobs in its registry.</summary>
        public async Task Restart()
        {
            await DisposeCluster();
            await Start();
        }

        private async Task Start()
        {
            _cluster = await EmbeddedCluster.StartAsync([2], Path.Combine(_folder, "checkpoints"),
                admission: new AdmissionOptions { DataRoots = new PathRoots([Path.Combine(Corpus, "data")]), OutputRoots = new PathRoots([_folder]) });
            _connection = await ElasticConnection.ConnectAsync(ClusterAddress.Static([_cluster.Gateway]));
            await _connection.Client.WaitForDevicesAsync(2, TimeSpan.FromSeconds(30));
        }

        private async Task DisposeCluster()
        {
            await _connection.DisposeAsync();
            await _cluster.DisposeAsync();
        }

        public async Task DisposeAsync()
        {
            await DisposeCluster();
            Directory.Delete(_folder, recursive: true);
        }
    }
}
