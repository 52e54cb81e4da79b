using System.Text.Json.Serialization;
using CudaSwa.Averaging;
using CudaSwa.Optim;
using CudaSwa.Tensors;

namespace CudaSwa.Training;

public enum ScheduleKind { Swa, Swalr, Cyclic, Cosine, Constant }

public enum DatasetKind { Cifar10, Cifar100 }

/// <summary>
/// Everything that defines a training run. Saved in state.json so a resumed run continues with
/// exactly the same settings. Defaults are the `quick` preset's.
/// </summary>
public sealed record TrainingOptions
{
    public string Model { get; init; } = "resnet8";
    public DatasetKind Dataset { get; init; } = DatasetKind.Cifar10;

    /// <summary>Folder with CIFAR binaries; null means the embedded synthetic dataset.</summary>
    public string? DataDir { get; init; }

    public int SyntheticTrain { get; init; } = 8000;
    public int SyntheticTest { get; init; } = 2000;
    public int? TrainSubset { get; init; }
    public int? TestSubset { get; init; }
    public PaddingMode Padding { get; init; } = PaddingMode.Zero;

    public int Epochs { get; init; } = 8;
    public int BatchSize { get; init; } = 128;
    public double Lr { get; init; } = 0.05;
    public double Momentum { get; init; } = 0.9;
    public double WeightDecay { get; init; } = 5e-4;
    public bool Nesterov { get; init; }

    [JsonConverter(typeof(JsonStringEnumConverter<ScheduleKind>))]
    public ScheduleKind Schedule { get; init; } = ScheduleKind.Swa;

    /// <summary>1-based epoch count after which averaging starts (the SWA reference code's swa_start).</summary>
    public int? SwaStart { get; init; } = 5;

    public double? SwaLr { get; init; } = 0.01;

    /// <summary>The cyclic schedule's low end (alpha2); default swa-lr / 10. The cycle runs from swa-lr down to it.</summary>
    public double? SwaLrMin { get; init; }

    /// <summary>Cycle length in epochs (cyclic schedule; SWA then averages at each cycle end).</summary>
    public int Cycle { get; init; } = 1;

    public int AnnealEpochs { get; init; } = 3;

    [JsonConverter(typeof(JsonStringEnumConverter<AnnealStrategy>))]
    public AnnealStrategy Anneal { get; init; } = AnnealStrategy.Cos;

    /// <summary>No averaging at all: the plain SGD baseline.</summary>
    public bool SgdOnly { get; init; }

    [JsonConverter(typeof(JsonStringEnumConverter<AveragingKind>))]
    public AveragingKind Average { get; init; } = AveragingKind.Swa;

    public double EmaDecay { get; init; } = 0.999;

    /// <summary>Average every k steps instead of per epoch/cycle (0: per epoch; EMA defaults to 1).</summary>
    public int AverageEverySteps { get; init; }

    [JsonConverter(typeof(JsonStringEnumConverter<BatchNormRecomputeMode>))]
    public BatchNormRecomputeMode BnUpdate { get; init; } = BatchNormRecomputeMode.Exact;

    /// <summary>Skip the BN recompute of the averaged model (evaluate it with the statistics it has).</summary>
    public bool NoBnUpdate { get; init; }

    public int EvalEvery { get; init; } = 1;
    public bool Ensemble { get; init; } = true;
    public string Device { get; init; } = "auto";

    /// <summary>Let cuDNN/cuBLAS use TF32 tensor cores on Ampere+ GPUs (faster, ~10-bit mantissa products). Off: exact float32.</summary>
    public bool Tf32 { get; init; }
    public ulong Seed { get; init; } = 1;
    public string? Preset { get; init; }

    public bool Averaging => !SgdOnly;
    public int NumClasses => Dataset == DatasetKind.Cifar10 ? 10 : 100;

    /// <summary>Checks every value; the message names the option and what was expected.</summary>
    public void Validate()
    {
        void Fail(string option, string problem) => throw new OptionException($"--{option}: {problem}");
        _ = Models.ModelZoo.Models.FirstOrDefault(m => string.Equals(m.Name, Model, StringComparison.OrdinalIgnoreCase))
            ?? throw new OptionException($"--model: unknown model '{Model}'; known models: {string.Join(", ", Models.ModelZoo.Models.Select(m => m.Name))}.");
        if (Epochs < 1) Fail("epochs", $"must be >= 1; got {Epochs}.");
        if (BatchSize < 2) Fail("batch", $"must be >= 2 (batch norm needs two samples); got {BatchSize}.");
        if (!(Lr > 0) || double.IsInfinity(Lr)) Fail("lr", $"must be a number > 0; got {Lr}.");
        if (!(Momentum >= 0 && (float)Momentum < 1)) Fail("momentum", $"must be in [0, 1) (as a float32); got {Momentum}.");
        if (Nesterov && Momentum == 0) Fail("nesterov", "needs --momentum > 0.");
        if (!(WeightDecay >= 0) || !double.IsFinite(WeightDecay)) Fail("wd", $"must be a finite number >= 0; got {WeightDecay}.");
        if (EvalEvery < 1) Fail("eval-every", $"must be >= 1; got {EvalEvery}.");
        if (Cycle < 1) Fail("cycle", $"must be >= 1 epoch; got {Cycle}.");
        if (AnnealEpochs < 0) Fail("anneal-epochs", $"must be >= 0; got {AnnealEpochs}.");
        if (AverageEverySteps < 0) Fail("average-every-steps", $"must be >= 0; got {AverageEverySteps}.");
        if (Average == AveragingKind.Ema && !(EmaDecay > 0 && EmaDecay < 1)) Fail("ema-decay", $"must be in (0, 1); got {EmaDecay}.");
        if (SwaLrMin is not null && !(SwaLrMin > 0 && SwaLrMin <= SwaLr)) Fail("swa-lr-min", $"must be in (0, --swa-lr]; got {SwaLrMin}.");
        if (SwaLr is double swaLr && (!(swaLr > 0) || !double.IsFinite(swaLr))) Fail("swa-lr", $"must be a finite number > 0; got {swaLr}.");
        if (SyntheticTrain > MaxSynthetic || SyntheticTest > MaxSynthetic) Fail("synthetic-train", $"the synthetic sets hold at most {MaxSynthetic:N0} images each; got {SyntheticTrain:N0} and {SyntheticTest:N0}.");
        if (TrainSubset is < 2) Fail("train-subset", $"must be >= 2; got {TrainSubset}.");
        if (TestSubset is < 1) Fail("test-subset", $"must be >= 1; got {TestSubset}.");
        if (SyntheticTrain < 20 || SyntheticTest < 10) Fail("synthetic", "needs at least 20 train and 10 test images.");
        bool needsSwaStart = Averaging || Schedule is ScheduleKind.Swalr or ScheduleKind.Cyclic;
        if (needsSwaStart)
        {
            if (SwaStart is null) Fail("swa-start", "is required for averaging and for the swalr and cyclic schedules.");
            if (SwaStart < 1 || SwaStart > Epochs) Fail("swa-start", $"must be in 1..{Epochs} (--epochs); got {SwaStart}.");
        }
        bool needsSwaLr = Schedule is ScheduleKind.Swalr or ScheduleKind.Cyclic || (Schedule == ScheduleKind.Swa && Averaging);
        if (needsSwaLr && !(SwaLr > 0)) Fail("swa-lr", $"must be a number > 0 for the {Schedule.ToString().ToLowerInvariant()} schedule; got {SwaLr?.ToString() ?? "nothing"}.");
        if (Device is not ("auto" or "cpu" or "cuda") &&
            !(Device.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(Device.AsSpan(5), System.Globalization.NumberStyles.None, null, out _)))
            Fail("device", $"must be auto, cpu, cuda or cuda:N with N a device number (0, 1, ...); got '{Device}'.");
        try
        {
            CreateSchedule(); // the schedules check their own arguments too
        }
        catch (ArgumentException e)
        {
            throw new OptionException($"--schedule {Schedule.ToString().ToLowerInvariant()}: {e.Message}");
        }
    }

    /// <summary>The largest synthetic set (its bytes must fit one array).</summary>
    public const int MaxSynthetic = 500_000;

    public LearningRateSchedule CreateSchedule() => Schedule switch
    {
        ScheduleKind.Swa => Averaging ? new SwaPaperSchedule(Lr, Epochs, SwaStart, SwaLr) : new SwaPaperSchedule(Lr, Epochs),
        ScheduleKind.Swalr => new SwalrSchedule(Lr, Epochs, SwaStart!.Value, SwaLr!.Value, AnnealEpochs, Anneal),
        ScheduleKind.Cyclic => new CyclicSchedule(Lr, SwaStart!.Value, SwaLr!.Value, SwaLrMin ?? SwaLr.Value / 10, Cycle),
        ScheduleKind.Cosine => new CosineSchedule(Lr, Epochs),
        _ => new ConstantSchedule(Lr),
    };

    /// <summary>When to average: every k steps from the first step of epoch swa-start (EMA: every step), else per epoch or cycle end.</summary>
    public AveragingSchedule CreateAveragingSchedule(int iterationsPerEpoch)
    {
        int steps = AverageEverySteps > 0 ? AverageEverySteps : Average == AveragingKind.Ema ? 1 : 0;
        if (steps > 0) return AveragingSchedule.Steps(steps, startStep: (long)(SwaStart!.Value - 1) * iterationsPerEpoch + 1);
        return AveragingSchedule.Epochs(SwaStart!.Value, Schedule == ScheduleKind.Cyclic ? Cycle : 1);
    }
}

/// <summary>A bad command-line option or option combination; the message names the option.</summary>
public sealed class OptionException(string message) : Exception(message);
