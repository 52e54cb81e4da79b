using CudaSwa.Training;

namespace CudaSwa.Cli;

/// <summary>A named set of defaults for `cudaswa train --preset NAME`.</summary>
public sealed record PresetInfo(string Name, string Description, bool NeedsRealData, Func<DatasetKind, bool, RunSettings> Create);

/// <summary>
/// `quick` (the embedded default: synthetic data, about two minutes on 2 CPU cores) and the SWA
/// paper's CIFAR settings (Izmailov et al. 2018, Sec. 5.1 and its reference code): batch 128,
/// momentum 0.9; the SWA run takes 1.5x the SGD budget by default, --sgd-only gives the SGD budget
/// with the paper's SGD schedule (decay to 1% of lr_init).
/// </summary>
public static class Presets
{
    private static RunSettings Paper(string model, double lr, double wd, int sgdEpochs, int swaEpochs, int swaStart, double swaLr, bool sgdOnly, DatasetKind dataset, string preset) => new()
    {
        Preset = preset,
        Dataset = dataset,
        Training = new TrainingOptions
        {
            Model = model,
            Lr = lr,
            WeightDecay = wd,
            Momentum = 0.9,
            BatchSize = 128,
            Schedule = ScheduleKind.Swa,
            Epochs = sgdOnly ? sgdEpochs : swaEpochs,
            SwaStart = sgdOnly ? null : swaStart,
            SwaLr = sgdOnly ? null : swaLr,
            SgdOnly = sgdOnly,
            EvalEvery = 5,
        },
    };

    public static readonly IReadOnlyList<PresetInfo> All =
    [
        new("quick", "resnet8 on the embedded synthetic data, 8 epochs, SWA from epoch 5: SGD vs SWA in about two minutes on 2 CPU cores", false,
            (d, sgdOnly) => new RunSettings
            {
                Preset = "quick", Dataset = d,
                Training = new TrainingOptions { SgdOnly = sgdOnly, SwaStart = sgdOnly ? null : 5, SwaLr = sgdOnly ? null : 0.01 },
            }),
        new("paper-vgg16", "VGG-16, lr 0.05, wd 5e-4; SGD 200 epochs, SWA 300 epochs from 161 with swa_lr 0.01", true,
            (d, s) => Paper("vgg16", 0.05, 5e-4, 200, 300, 161, 0.01, s, d, "paper-vgg16")),
        new("paper-preresnet110", "PreResNet-110, lr 0.1, wd 3e-4; SGD 150 epochs, SWA 225 from 126, swa_lr 0.05 (CIFAR-100) / 0.01 (CIFAR-10)", true,
            (d, s) => Paper("preresnet110", 0.1, 3e-4, 150, 225, 126, d == DatasetKind.Cifar100 ? 0.05 : 0.01, s, d, "paper-preresnet110")),
        new("paper-preresnet164", "PreResNet-164, lr 0.1, wd 3e-4; SGD 150 epochs, SWA 225 from 126, swa_lr 0.05 (CIFAR-100) / 0.01 (CIFAR-10)", true,
            (d, s) => Paper("preresnet164", 0.1, 3e-4, 150, 225, 126, d == DatasetKind.Cifar100 ? 0.05 : 0.01, s, d, "paper-preresnet164")),
        new("paper-wrn28x10", "WideResNet-28-10, lr 0.1, wd 5e-4; SGD 200 epochs, SWA 300 from 161, swa_lr 0.05", true,
            (d, s) => Paper("wrn28x10", 0.1, 5e-4, 200, 300, 161, 0.05, s, d, "paper-wrn28x10")),
    ];

    public static PresetInfo Find(string name) =>
        All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new OptionException($"--preset: unknown preset '{name}'; known presets: {string.Join(", ", All.Select(p => p.Name))}.");
}
