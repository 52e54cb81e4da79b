using System.Text.Json.Nodes;
using CudaSwa.Averaging;
using CudaSwa.Training;
using NUnit.Framework;

namespace CudaSwa.Tests.Training;

/// <summary>
/// The options' JSON (state.json's "options", experiment definitions) round-trips, and what earlier
/// versions wrote still reads: the BN recompute was "bn_update" (with "None" for no recompute), and
/// before that a flag "no_bn_update"; an option the JSON lacks (added since) takes its default.
/// </summary>
public class OptionsJsonTests
{
    [TestCase(BatchNormRecomputeMode.Exact)]
    [TestCase(BatchNormRecomputeMode.EqualBatches)]
    [TestCase(null)]
    public void TheBnRecomputeRoundTripsNoneIncluded(BatchNormRecomputeMode? mode)
    {
        var options = new TrainingOptions { BnRecompute = mode, Seed = 9 };
        var json = options.ToJson();
        Assert.That(json.ContainsKey("bn_recompute"), "written even when null: absent would read as the default");
        var back = TrainingOptions.FromJson(JsonNode.Parse(json.ToJsonString())!);
        Assert.That(back.BnRecompute, Is.EqualTo(mode));
        Assert.That(back.Seed, Is.EqualTo(9UL));
    }

    [TestCase("{\"bn_update\":\"SampleWeighted\"}", BatchNormRecomputeMode.SampleWeighted)]
    [TestCase("{\"bn_update\":\"None\"}", null)]
    [TestCase("{\"no_bn_update\":true}", null)]
    [TestCase("{\"no_bn_update\":false,\"bn_update\":\"EqualBatches\"}", BatchNormRecomputeMode.EqualBatches)]
    [TestCase("{}", BatchNormRecomputeMode.Exact)]
    public void EarlierNamesStillRead(string json, BatchNormRecomputeMode? expected)
    {
        Assert.That(TrainingOptions.FromJson(JsonNode.Parse(json)!).BnRecompute, Is.EqualTo(expected));
        // The same inside a saved state.
        var state = JsonNode.Parse(new TrainingState().ToJson())!.AsObject();
        state["options"] = JsonNode.Parse(json);
        Assert.That(TrainingState.FromJson(state.ToJsonString(), "state.json").Options.BnRecompute, Is.EqualTo(expected));
    }

    [Test]
    public void OptionsMissingFromTheJsonTakeTheirDefaults()
    {
        var read = TrainingOptions.FromJson(JsonNode.Parse("{\"epochs\": 10, \"model\": \"resnet20\"}")!);
        var defaults = new TrainingOptions();
        Assert.That(read, Is.EqualTo(defaults with { Epochs = 10, Model = "resnet20" }), "e.g. a run saved before LawaK existed must not read it as 0");
        Assert.DoesNotThrow(read.Validate);
    }
}
