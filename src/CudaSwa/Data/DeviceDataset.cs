using CudaSwa.Tensors;

namespace CudaSwa.Data;

/// <summary>
/// A dataset uploaded once to a backend as uint8 images and int32 labels, so that batches are
/// assembled (and augmented) on the device with no host copies per step.
/// </summary>
public sealed class DeviceDataset : IDisposable
{
    public DeviceDataset(ImageDataset source, Backend backend)
    {
        Source = source;
        Backend = backend;
        Images = backend.AllocateTensor(TensorShape.Nchw(source.Count, source.Channels, source.Height, source.Width), DType.UInt8);
        backend.Upload<byte>(source.Images, Images);
        Labels = backend.AllocateTensor(new TensorShape(source.Count), DType.Int32);
        backend.Upload<int>(source.Labels, Labels);
    }

    public ImageDataset Source { get; }
    public Backend Backend { get; }
    public Tensor Images { get; }
    public Tensor Labels { get; }
    public int Count => Source.Count;

    public void Dispose()
    {
        Images.Buffer.Dispose();
        Labels.Buffer.Dispose();
    }
}
