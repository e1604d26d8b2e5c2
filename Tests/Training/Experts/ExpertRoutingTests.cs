using Elastic.Training.Parallel.Experts;

namespace Elastic.Tests.Training.Experts;

/// <summary>Routing from router probabilities: top-k with ties to the lower index, capacity in priority order, empty experts.</summary>
public sealed class ExpertRoutingTests
{
    [Fact]
    public void Top_k_takes_the_highest_probabilities_first_and_breaks_ties_by_the_lower_expert_index()
    {
        float[] probabilities =
        [
            0.1f, 0.4f, 0.1f, 0.4f, // a tie for first: 1 before 3
            0.25f, 0.25f, 0.25f, 0.25f, // all tied: 0, 1
            0.7f, 0.1f, 0.05f, 0.15f, // 0, then 3
        ];

        var routing = ExpertRouting.Decide(probabilities, tokens: 3, experts: 4, topK: 2, capacityFactor: null);

        Assert.Equal([1, 3, 0, 1, 0, 3], Enumerable.Range(0, 6).Select(i => routing.Choice(i / 2, i % 2)));
        Assert.Equal([0, 1, 2], routing.TokensOf(0).Concat(routing.TokensOf(1)).Distinct().Order());
        Assert.Equal([1, 2], routing.TokensOf(0));
        Assert.Equal([0, 0], routing.SlotsOf(0).Take(1).Concat(routing.SlotsOf(1).Take(1)));
        Assert.Empty(routing.TokensOf(2));
        Assert.Equal([2, 2, 0, 2], routing.Load);
        Assert.Equal(0, routing.Dropped);
        Assert.Equal(int.MaxValue, routing.Capacity);
    }

    [Fact]
    public void Not_a_number_never_wins_so_a_diverged_router_still_routes_deterministically()
    {
        float[] probabilities = [float.NaN, float.NaN, 0.2f, float.NaN];

        var routing = ExpertRouting.Decide(probabilities, tokens: 1, experts: 4, topK: 2, capacityFactor: null);

        Assert.Equal(2, routing.Choice(0, 0));
        Assert.Equal(0, routing.Choice(0, 1));
    }

    [Fact]
    public void With_every_token_on_one_expert_its_capacity_keeps_the_first_tokens_and_drops_the_rest()
    {
        const int tokens = 8, experts = 4;
        var probabilities = Enumerable.Range(0, tokens).SelectMany(_ => new[] { 0.1f, 0.7f, 0.1f, 0.1f }).ToArray();

        var routing = ExpertRouting.Decide(probabilities, tokens, experts, topK: 1, capacityFactor: 1.0);

        // ceil(1.0 x 8 tokens x 1 choice / 4 experts) = 2.
        Assert.Equal(2, routing.Capacity);
        Assert.Equal([0, 1], routing.TokensOf(1));
        Assert.Equal(6, routing.Dropped);
        Assert.Equal([0, 8, 0, 0], routing.Load);
        Assert.All(new[] { 0, 2, 3 }, e => Assert.Empty(routing.TokensOf(e)));
    }

    [Fact]
    public void First_choices_of_every_token_come_before_any_second_choice()
    {
        // Token 0 picks 1 then 0; tokens 1 and 2 pick 0 first. Expert 0 has room for 2 (ceil(1.0 x 3 x 2 / 3)).
        float[] probabilities =
        [
            0.4f, 0.5f, 0.1f,
            0.6f, 0.3f, 0.1f,
            0.6f, 0.1f, 0.3f,
        ];

        var routing = ExpertRouting.Decide(probabilities, tokens: 3, experts: 3, topK: 2, capacityFactor: 1.0);

        Assert.Equal(2, routing.Capacity);
        // Expert 0: the first choices of tokens 1 and 2 win over token 0's second choice, though token 0 comes first.
        Assert.Equal([1, 2], routing.TokensOf(0));
        Assert.Equal([0, 0], routing.SlotsOf(0));
        Assert.Equal(1, routing.Dropped);
        // Each expert's tokens are in token order, whatever the choice that brought them.
        Assert.Equal([0, 1], routing.TokensOf(1));
        Assert.Equal([0, 1], routing.SlotsOf(1));
    }

    [Fact]
    public void Bad_arguments_are_refused_with_their_numbers()
    {
        var size = Assert.Throws<ArgumentException>(() => ExpertRouting.Decide(new float[7], 2, 4, 1, null));
        Assert.Contains("7 probabilities for 2 tokens x 4 experts", size.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => ExpertRouting.Decide(new float[8], 2, 4, 5, null));
    }
}
