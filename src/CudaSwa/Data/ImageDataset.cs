namespace CudaSwa.Data;

/// <summary>
/// A labelled image set in host memory, CIFAR layout: per image 3 planes (R, G, B) of
/// Height x Width bytes, row-major, then the next image.
/// </summary>
public sealed class ImageDataset
{
    /// <summary>
    /// A dataset over <paramref name="images"/> (image after image, each <paramref name="channels"/> planes of
    /// <paramref name="height"/> x <paramref name="width"/> bytes) with one label per image in
    /// 0..<paramref name="numClasses"/>-1; throws <see cref="ArgumentException"/> when sizes or labels do not
    /// fit. The arrays are kept, not copied.
    /// </summary>
    public ImageDataset(string name, byte[] images, int[] labels, int numClasses, int channels = 3, int height = 32, int width = 32)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        int imageBytes = channels * height * width;
        if (images.Length != (long)labels.Length * imageBytes)
            throw new ArgumentException($"Dataset '{name}': {images.Length} image bytes do not match {labels.Length} labels of {imageBytes} bytes each.");
        for (int i = 0; i < labels.Length; i++)
            if ((uint)labels[i] >= (uint)numClasses)
                throw new ArgumentException($"Dataset '{name}': label {labels[i]} of sample {i} is outside 0..{numClasses - 1}.");
        Name = name;
        Images = images;
        Labels = labels;
        NumClasses = numClasses;
        Channels = channels;
        Height = height;
        Width = width;
    }

    /// <summary>A name for logs, e.g. "cifar10-train".</summary>
    public string Name { get; }
    /// <summary>Every pixel, image after image, each as planes of row-major bytes.</summary>
    public byte[] Images { get; }
    /// <summary>One class per image, in 0..NumClasses-1.</summary>
    public int[] Labels { get; }
    /// <summary>Number of classes.</summary>
    public int NumClasses { get; }
    /// <summary>Colour planes per image.</summary>
    public int Channels { get; }
    /// <summary>Image height in pixels.</summary>
    public int Height { get; }
    /// <summary>Image width in pixels.</summary>
    public int Width { get; }
    /// <summary>Number of images.</summary>
    public int Count => Labels.Length;
    /// <summary>Bytes per image: Channels x Height x Width.</summary>
    public int ImageBytes => Channels * Height * Width;

    /// <summary>The pixels of image <paramref name="index"/> (a view into <see cref="Images"/>).</summary>
    public ReadOnlySpan<byte> Image(int index) => Images.AsSpan(index * ImageBytes, ImageBytes);

    /// <summary>
    /// A class-balanced subset of <paramref name="count"/> samples: shuffled (seeded), then taken
    /// round-robin over the classes so every class gets count/classes samples (±1), as far as it has them.
    /// </summary>
    public ImageDataset Subset(int count, ulong seed)
    {
        if (count <= 0 || count > Count)
            throw new ArgumentOutOfRangeException(nameof(count), $"Subset size must be in 1..{Count} for dataset '{Name}'; got {count}.");
        if (count == Count) return this;
        var order = Util.Philox.Permutation(Count, seed, 0x5B5E7);
        var byClass = new List<int>[NumClasses];
        for (int c = 0; c < NumClasses; c++) byClass[c] = [];
        foreach (int i in order) byClass[Labels[i]].Add(i);
        var chosen = new List<int>(count);
        var cursor = new int[NumClasses];
        while (chosen.Count < count)
        {
            bool any = false;
            for (int c = 0; c < NumClasses && chosen.Count < count; c++)
            {
                if (cursor[c] >= byClass[c].Count) continue;
                chosen.Add(byClass[c][cursor[c]++]);
                any = true;
            }
            if (!any) break;
        }
        chosen.Sort();
        var images = new byte[chosen.Count * ImageBytes];
        var labels = new int[chosen.Count];
        for (int j = 0; j < chosen.Count; j++)
        {
            Image(chosen[j]).CopyTo(images.AsSpan(j * ImageBytes));
            labels[j] = Labels[chosen[j]];
        }
        return new ImageDataset($"{Name} (subset of {chosen.Count})", images, labels, NumClasses, Channels, Height, Width);
    }
}
