using CudaSwa.Tensors;

namespace CudaSwa.Data;

/// <summary>
/// A dataset uploaded once to a backend as uint8 images and int32 labels, so that batches are
/// assembled (and augmented) on the device with no host copies per step.
/// </summary>
public sealed class DeviceDataset : IDisposable
{
    /// <summary>Uploads the images and labels of <paramref name="source"/> to <paramref name="backend"/>; the dataset owns the device copies.</summary>
    public DeviceDataset(ImageDataset source, Backend backend)
    {
        Source = source;
        Backend = backend;
        Images = backend.AllocateTensor(TensorShape.Nchw(source.Count, source.Channels, source.Height, source.Width), DType.UInt8);
        backend.Upload<byte>(source.Images, Images);
        Labels = backend.AllocateTensor(new TensorShape(source.Count), DType.Int32);
        backend.Upload<int>(source.Labels, Labels);
    }

    /// <summary>The host dataset that was uploaded.</summary>
    public ImageDataset Source { get; }
    /// <summary>The backend holding the images and labels.</summary>
    public Backend Backend { get; }
    /// <summary>The images (count, C, H, W), uint8.</summary>
    public Tensor Images { get; }
    /// <summary>The labels (count), int32.</summary>
    public Tensor Labels { get; }
    /// <summary>Number of samples.</summary>
    public int Count => Source.Count;

    /// <summary>Frees the device copies.</summary>
    public void Dispose()
    {
        Images.Buffer.Dispose();
        Labels.Buffer.Dispose();
    }
}
