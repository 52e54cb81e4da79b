namespace CudaSwa.Tensors;

public abstract partial class Backend
{
    // ---------------------------------------------------------------- linear

    /// <summary>y = x W^T + b. x is (N, In) or any (N, ...) with In values per sample; W (Out, In); b (Out); y (N, Out).</summary>
    public void LinearForward(Tensor x, Tensor w, Tensor b, Tensor y)
    {
        CheckLinear(x, w, y);
        RequireLength(b, w.Shape.N, nameof(b), "one value per output feature");
        Wrote(y);
        using (new OpTimer(this, "LinearForward")) LinearForwardCore(x, w, b, y);
    }

    /// <summary>dx = dy W.</summary>
    public void LinearBackwardData(Tensor dy, Tensor w, Tensor dx, bool accumulate)
    {
        CheckLinear(dx, w, dy);
        Wrote(dx);
        using (new OpTimer(this, "LinearBackwardData")) LinearBackwardDataCore(dy, w, dx, accumulate);
    }

    /// <summary>dW += dy^T x; dB += column sums of dy.</summary>
    public void LinearBackwardWeights(Tensor x, Tensor dy, Tensor dw, Tensor db)
    {
        CheckLinear(x, dw, dy);
        RequireLength(db, dw.Shape.N, nameof(db), "one value per output feature");
        Wrote(dw); Wrote(db);
        using (new OpTimer(this, "LinearBackwardWeights")) LinearBackwardWeightsCore(x, dy, dw, db);
    }

    // ---------------------------------------------------------------- the Core methods a backend writes

    /// <summary>The backend's implementation of <see cref="LinearForward"/>; the arguments are already validated.</summary>
    private protected abstract void LinearForwardCore(Tensor x, Tensor w, Tensor b, Tensor y);
    /// <summary>The backend's implementation of <see cref="LinearBackwardData"/>; the arguments are already validated.</summary>
    private protected abstract void LinearBackwardDataCore(Tensor dy, Tensor w, Tensor dx, bool accumulate);
    /// <summary>The backend's implementation of <see cref="LinearBackwardWeights"/>; the arguments are already validated.</summary>
    private protected abstract void LinearBackwardWeightsCore(Tensor x, Tensor dy, Tensor dw, Tensor db);

    // ---------------------------------------------------------------- validation helpers

    private void CheckLinear(Tensor x, Tensor w, Tensor y)
    {
        Own(x, "x"); Own(w, "w"); Own(y, "y");
        if (w.Shape.Rank != 2) throw new ArgumentException($"Linear weight must be (Out, In); got {w.Shape}.");
        if (x.Shape.SampleLength != w.Shape.C)
            throw new ArgumentException($"Linear layer expects {w.Shape.C} input features per sample; x {x.Shape} has {x.Shape.SampleLength}.");
        var expected = new TensorShape(x.Shape.N, w.Shape.N);
        if (y.Shape.N != x.Shape.N || y.Shape.Length != expected.Length)
            throw new ArgumentException($"Linear output has shape {y.Shape}; expected {expected}.");
    }
}
