namespace CudaSwa.Tensors;

public abstract partial class Backend
{
    // ---------------------------------------------------------------- pooling

    /// <summary>(N,C,H,W) -> (N,C): mean over the spatial axes.</summary>
    public void GlobalAveragePoolForward(Tensor x, Tensor y)
    {
        Own(x, nameof(x)); Own(y, nameof(y));
        RequireShape(y, new TensorShape(x.Shape.N, x.Shape.C), nameof(y));
        Wrote(y);
        using (new OpTimer(this, "GlobalAveragePoolForward")) GlobalAveragePoolForwardCore(x, y);
    }

    /// <summary>dx[n,c,h,w] = dy[n,c] / (H*W), overwriting dx unless <paramref name="accumulate"/>. dy is (N,C), dx (N,C,H,W).</summary>
    public void GlobalAveragePoolBackward(Tensor dy, Tensor dx, bool accumulate)
    {
        Own(dy, nameof(dy)); Own(dx, nameof(dx));
        RequireShape(dy, new TensorShape(dx.Shape.N, dx.Shape.C), nameof(dy));
        Wrote(dx);
        using (new OpTimer(this, "GlobalAveragePoolBackward")) GlobalAveragePoolBackwardCore(dy, dx, accumulate);
    }

    /// <summary>2x2 max pooling with stride 2 (VGG). The first maximum in row-major order wins ties.</summary>
    public void MaxPoolForward(Tensor x, Tensor y)
    {
        Own(x, nameof(x)); Own(y, nameof(y));
        RequireShape(y, TensorShape.Nchw(x.Shape.N, x.Shape.C, x.Shape.H / 2, x.Shape.W / 2), nameof(y));
        Wrote(y);
        using (new OpTimer(this, "MaxPoolForward")) MaxPoolForwardCore(x, y);
    }

    /// <summary>
    /// Routes each dy value to the position of its window's maximum in x (the first in row-major order on
    /// ties); other positions of dx get 0. Overwrites dx unless <paramref name="accumulate"/>.
    /// </summary>
    public void MaxPoolBackward(Tensor x, Tensor dy, Tensor dx, bool accumulate)
    {
        Own(x, nameof(x)); Own(dy, nameof(dy)); Own(dx, nameof(dx));
        RequireShape(dx, x.Shape, nameof(dx));
        RequireShape(dy, TensorShape.Nchw(x.Shape.N, x.Shape.C, x.Shape.H / 2, x.Shape.W / 2), nameof(dy));
        Wrote(dx);
        using (new OpTimer(this, "MaxPoolBackward")) MaxPoolBackwardCore(x, dy, dx, accumulate);
    }

    // ---------------------------------------------------------------- the Core methods a backend writes

    /// <summary>The backend's implementation of <see cref="GlobalAveragePoolForward"/>; the arguments are already validated.</summary>
    private protected abstract void GlobalAveragePoolForwardCore(Tensor x, Tensor y);
    /// <summary>The backend's implementation of <see cref="GlobalAveragePoolBackward"/>; the arguments are already validated.</summary>
    private protected abstract void GlobalAveragePoolBackwardCore(Tensor dy, Tensor dx, bool accumulate);
    /// <summary>The backend's implementation of <see cref="MaxPoolForward"/>; the arguments are already validated.</summary>
    private protected abstract void MaxPoolForwardCore(Tensor x, Tensor y);
    /// <summary>The backend's implementation of <see cref="MaxPoolBackward"/>; the arguments are already validated.</summary>
    private protected abstract void MaxPoolBackwardCore(Tensor x, Tensor dy, Tensor dx, bool accumulate);
}
