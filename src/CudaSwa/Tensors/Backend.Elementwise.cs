namespace CudaSwa.Tensors;

public abstract partial class Backend
{
    // ---------------------------------------------------------------- elementwise

    /// <summary>y = max(x, 0), elementwise; y has the shape of x.</summary>
    public void ReluForward(Tensor x, Tensor y)
    {
        Own(x, nameof(x)); Own(y, nameof(y));
        RequireShape(y, x.Shape, nameof(y));
        Wrote(y);
        using (new OpTimer(this, "ReluForward")) ReluForwardCore(x, y);
    }

    /// <summary>dx = dy where y &gt; 0, else 0 (from the output, so x need not be kept).</summary>
    public void ReluBackward(Tensor y, Tensor dy, Tensor dx, bool accumulate)
    {
        Own(y, nameof(y)); Own(dy, nameof(dy)); Own(dx, nameof(dx));
        RequireShape(dy, y.Shape, nameof(dy));
        RequireShape(dx, y.Shape, nameof(dx));
        Wrote(dx);
        using (new OpTimer(this, "ReluBackward")) ReluBackwardCore(y, dy, dx, accumulate);
    }

    /// <summary>y = a + b (the residual join).</summary>
    public void Add(Tensor a, Tensor b, Tensor y)
    {
        Own(a, nameof(a)); Own(b, nameof(b)); Own(y, nameof(y));
        RequireShape(b, a.Shape, nameof(b));
        RequireShape(y, a.Shape, nameof(y));
        Wrote(y);
        using (new OpTimer(this, "Add")) AddCore(a, b, y);
    }

    /// <summary>
    /// y = origin + s·direction, one pass (one launch on a device): a weight vector on the line
    /// through <paramref name="origin"/> along <paramref name="direction"/> (the loss-landscape
    /// points). The product is rounded before the sum on every backend, so s = 0 gives origin exactly.
    /// </summary>
    public void PointOnLine(Tensor origin, Tensor direction, float s, Tensor y)
    {
        Own(origin, nameof(origin)); Own(direction, nameof(direction)); Own(y, nameof(y));
        RequireFloat(origin, nameof(origin)); RequireFloat(direction, nameof(direction)); RequireFloat(y, nameof(y));
        RequireLength(direction, origin.Length, nameof(direction), "as many values as origin");
        RequireLength(y, origin.Length, nameof(y), "as many values as origin");
        if (!float.IsFinite(s)) throw new ArgumentOutOfRangeException(nameof(s), $"The position on the line must be finite; got {s}.");
        Wrote(y);
        using (new OpTimer(this, "PointOnLine")) PointOnLineCore(origin, direction, s, y);
    }

    /// <summary>dst = src, or dst += src when accumulate.</summary>
    public void AccumulateGradient(Tensor source, Tensor destination, bool accumulate)
    {
        Own(source, nameof(source)); Own(destination, nameof(destination));
        RequireShape(destination, source.Shape, nameof(destination));
        Wrote(destination);
        using (new OpTimer(this, "AccumulateGradient")) AccumulateGradientCore(source, destination, accumulate);
    }

    /// <summary>y = max(a + b, 0): the residual join and the ReLU after it, in one pass where the backend can.</summary>
    public void AddRelu(Tensor a, Tensor b, Tensor y)
    {
        Own(a, nameof(a)); Own(b, nameof(b)); Own(y, nameof(y));
        RequireShape(b, a.Shape, nameof(b));
        RequireShape(y, a.Shape, nameof(y));
        Wrote(y);
        using (new OpTimer(this, "AddRelu")) AddReluCore(a, b, y);
    }

    /// <summary>
    /// The backward pass of y = max(a + b, 0): g = dy where y &gt; 0, else 0, goes to both inputs —
    /// da = g (or da += g when <paramref name="accumulateA"/>), likewise db. <paramref name="dy"/>
    /// may be overwritten (backends that run the steps apart mask it in place).
    /// </summary>
    public void AddReluBackward(Tensor y, Tensor dy, Tensor da, bool accumulateA, Tensor db, bool accumulateB)
    {
        Own(y, nameof(y)); Own(dy, nameof(dy)); Own(da, nameof(da)); Own(db, nameof(db));
        RequireShape(dy, y.Shape, nameof(dy));
        RequireShape(da, y.Shape, nameof(da));
        RequireShape(db, y.Shape, nameof(db));
        Wrote(dy); Wrote(da); Wrote(db);
        using (new OpTimer(this, "AddReluBackward")) AddReluBackwardCore(y, dy, da, accumulateA, db, accumulateB);
    }

    /// <summary>
    /// Inverted dropout: y = x / (1 - p) where kept, 0 where dropped. Element i is dropped when
    /// a Philox uniform keyed by (seed, stream) at counter i is below p, so the backward pass and
    /// every backend draw the same mask.
    /// </summary>
    public void DropoutForward(Tensor x, Tensor y, float p, ulong seed, ulong stream)
    {
        Own(x, nameof(x)); Own(y, nameof(y));
        RequireShape(y, x.Shape, nameof(y));
        CheckProbability(p);
        Wrote(y);
        using (new OpTimer(this, "DropoutForward")) DropoutForwardCore(x, y, p, seed, stream);
    }

    /// <summary>
    /// dx = dy / (1 - p) where the mask of <see cref="DropoutForward"/> with the same p, seed and stream kept
    /// the element, 0 where it dropped it. Overwrites dx unless <paramref name="accumulate"/>.
    /// </summary>
    public void DropoutBackward(Tensor dy, Tensor dx, float p, ulong seed, ulong stream, bool accumulate)
    {
        Own(dy, nameof(dy)); Own(dx, nameof(dx));
        RequireShape(dx, dy.Shape, nameof(dx));
        CheckProbability(p);
        Wrote(dx);
        using (new OpTimer(this, "DropoutBackward")) DropoutBackwardCore(dy, dx, p, seed, stream, accumulate);
    }

    // ---------------------------------------------------------------- the Core methods a backend writes

    /// <summary>The backend's implementation of <see cref="ReluForward"/>; the arguments are already validated.</summary>
    private protected abstract void ReluForwardCore(Tensor x, Tensor y);
    /// <summary>The backend's implementation of <see cref="ReluBackward"/>; the arguments are already validated.</summary>
    private protected abstract void ReluBackwardCore(Tensor y, Tensor dy, Tensor dx, bool accumulate);
    /// <summary>The backend's implementation of <see cref="Add"/>; the arguments are already validated.</summary>
    private protected abstract void AddCore(Tensor a, Tensor b, Tensor y);
    /// <summary>The backend's implementation of <see cref="AccumulateGradient"/>; the arguments are already validated.</summary>
    private protected abstract void AccumulateGradientCore(Tensor source, Tensor destination, bool accumulate);

    /// <summary>The backend's implementation of <see cref="DropoutForward"/>; the arguments are already validated.</summary>
    private protected abstract void DropoutForwardCore(Tensor x, Tensor y, float p, ulong seed, ulong stream);
    /// <summary>The backend's implementation of <see cref="DropoutBackward"/>; the arguments are already validated.</summary>
    private protected abstract void DropoutBackwardCore(Tensor dy, Tensor dx, float p, ulong seed, ulong stream, bool accumulate);

    /// <summary>The backend's implementation of <see cref="AddRelu"/>; by default the add, then the ReLU in place.</summary>
    private protected virtual void AddReluCore(Tensor a, Tensor b, Tensor y)
    {
        AddCore(a, b, y);
        ReluForwardCore(y, y);
    }

    /// <summary>The backend's implementation of <see cref="AddReluBackward"/>; by default dy is masked in place, then passed to both inputs.</summary>
    private protected virtual void AddReluBackwardCore(Tensor y, Tensor dy, Tensor da, bool accumulateA, Tensor db, bool accumulateB)
    {
        ReluBackwardCore(y, dy, dy, accumulate: false);
        AccumulateGradientCore(dy, da, accumulateA);
        AccumulateGradientCore(dy, db, accumulateB);
    }

    // ---------------------------------------------------------------- validation helpers

    private static void CheckProbability(float p)
    {
        if (!(p >= 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p), $"Dropout probability must be in [0, 1); got {p}.");
    }

    /// <summary>The backend's implementation of <see cref="PointOnLine"/>; the arguments are already validated.</summary>
    private protected abstract void PointOnLineCore(Tensor origin, Tensor direction, float s, Tensor y);
}
