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

    /// <summary>
    /// Epoch records of earlier versions kept each model's scores as columns, swa_ also for EMA: they
    /// read as scores named by the run's method; the calibration columns they may lack read as null.
    /// </summary>
    [Test]
    public void EpochScoresSavedAsColumnsReadAsAList()
    {
        var state = JsonNode.Parse(new TrainingState { Options = new TrainingOptions { Average = AveragingKind.Ema } }.ToJson())!.AsObject();
        state["history"] = JsonNode.Parse("""
            [{"epoch": 1, "test_loss": 0.5, "test_accuracy": 0.8, "test_ece": 0.03, "test_brier": 0.2},
             {"epoch": 2, "test_loss": 0.4, "test_accuracy": 0.85, "swa_test_loss": 0.3, "swa_test_accuracy": 0.9, "averaged_models": 7}]
            """);
        var history = TrainingState.FromJson(state.ToJsonString(), "state.json").History;
        Assert.That(history[0].Scores, Is.EqualTo(new[] { new ModelScore(ScoredModel.Trained, "SGD", 0.5, 0.8, 0.03, 0.2) }));
        Assert.That(history[1].Trained, Is.EqualTo(new ModelScore(ScoredModel.Trained, "SGD", 0.4, 0.85, null, null)));
        Assert.That(history[1].Average, Is.EqualTo(new ModelScore(ScoredModel.Average, "EMA", 0.3, 0.9, null, null)), "swa_ columns held the EMA");
        Assert.That(history[1].Ensemble, Is.Null);
        Assert.That(history[1].AveragedModels, Is.EqualTo(7));
        // And the list round-trips.
        var again = TrainingState.FromJson(new TrainingState { History = history }.ToJson(), "state.json").History;
        Assert.That(again.Select(r => r.Scores), Is.EqualTo(history.Select(r => r.Scores)));
    }
}
