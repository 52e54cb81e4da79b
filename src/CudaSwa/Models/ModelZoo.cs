using CudaSwa.Layers;

namespace CudaSwa.Models;

/// <summary>One selectable model: its name, what it is, and the parameter count its paper publishes.</summary>
/// <param name="Name">The name <see cref="ModelZoo.Create"/> and TrainingOptions.Model take (e.g. resnet20).</param>
/// <param name="Description">What the model is, in a few words.</param>
/// <param name="PublishedParameters">The parameter count its paper gives (or a note where it gives none).</param>
/// <param name="Describe">Describes the network for a number of classes.</param>
public sealed record ModelInfo(string Name, string Description, string PublishedParameters, Func<int, NetworkBuilder> Describe);

/// <summary>The models selectable by name (`--model`).</summary>
public static class ModelZoo
{
    private static readonly ModelInfo[] s_models =
    [
        new("resnet8", "He et al.-style CIFAR ResNet with one block per stage (quick runs, tests)", "0.078M (not in the paper)", c => ResNetCifar.Describe(8, c)),
        new("resnet20", "He et al. CIFAR ResNet-20", "0.27M", c => ResNetCifar.Describe(20, c)),
        new("resnet32", "He et al. CIFAR ResNet-32", "0.46M", c => ResNetCifar.Describe(32, c)),
        new("resnet44", "He et al. CIFAR ResNet-44", "0.66M", c => ResNetCifar.Describe(44, c)),
        new("resnet56", "He et al. CIFAR ResNet-56", "0.85M", c => ResNetCifar.Describe(56, c)),
        new("resnet110", "He et al. CIFAR ResNet-110", "1.7M", c => ResNetCifar.Describe(110, c)),
        new("preresnet110", "pre-activation ResNet-110 as the SWA paper trained it: bottleneck blocks, n = 12", "1.15M (the SWA reference code's)", c => PreResNet.Describe(110, true, c)),
        new("preresnet110-basic", "pre-activation ResNet-110 with basic blocks, n = 18 (He et al.'s; not the SWA paper's)", "1.7M", c => PreResNet.Describe(110, false, c)),
        new("preresnet164", "pre-activation ResNet-164, bottleneck blocks (SWA paper)", "1.7M", c => PreResNet.Describe(164, true, c)),
        new("vgg16", "SWA paper's CIFAR VGG-16 (512-512 classifier, dropout)", "15.2M (computed; the paper gives none)", c => Vgg.Describe(false, c)),
        new("vgg16bn", "SWA paper's CIFAR VGG-16 with batch norm", "15.3M (computed; the paper gives none)", c => Vgg.Describe(true, c)),
        new("wrn28x10", "Wide ResNet-28-10 (SWA paper)", "36.5M", c => WideResNet.Describe(28, 10, c)),
    ];

    /// <summary>Every selectable model.</summary>
    public static IReadOnlyList<ModelInfo> Models => s_models;

    /// <summary>The model named <paramref name="name"/> (case-insensitive); throws <see cref="ArgumentException"/> listing the known models otherwise.</summary>
    public static ModelInfo Find(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        foreach (var m in s_models)
            if (string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase))
                return m;
        throw new ArgumentException($"Unknown model '{name}'. Known models: {string.Join(", ", s_models.Select(m => m.Name))}.", nameof(name));
    }

    /// <summary>Describes model <paramref name="name"/> with a classifier over <paramref name="numClasses"/> classes (at least 2), ready to build.</summary>
    public static NetworkBuilder Describe(string name, int numClasses)
    {
        if (numClasses < 2) throw new ArgumentOutOfRangeException(nameof(numClasses), $"A classifier needs at least 2 classes; got {numClasses}.");
        return Find(name).Describe(numClasses);
    }

    /// <summary>
    /// Describes and builds model <paramref name="name"/> on <paramref name="backend"/> for batches of up to
    /// <paramref name="batchSize"/> samples, initialised from <paramref name="seed"/>. The caller disposes the network.
    /// </summary>
    public static Network Create(string name, int numClasses, Tensors.Backend backend, int batchSize, ulong seed = 0) =>
        Describe(name, numClasses).Build(backend, batchSize, seed);
}
