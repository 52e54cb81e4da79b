namespace CudaSwa.Tensors;

public abstract partial class Backend
{
    // ---------------------------------------------------------------- loss

    /// <summary>
    /// Mean softmax cross-entropy over the batch. Adds the summed loss and the number of correct
    /// top-1 predictions to stats[0] and stats[1] (so an epoch's totals stay on the device until
    /// read). When dLogits is given it receives (softmax - onehot) / N, the gradient of the mean.
    /// </summary>
    public void SoftmaxCrossEntropy(Tensor logits, Tensor labels, Tensor dLogits, Tensor stats)
    {
        Own(logits, nameof(logits)); Own(labels, nameof(labels)); Own(stats, nameof(stats));
        RequireFloat(logits, nameof(logits));
        if (labels.DType != DType.Int32)
            throw new ArgumentException($"Labels must be int32; got {labels.DType}.", nameof(labels));
        RequireLength(labels, logits.Shape.N, nameof(labels), "one label per row of logits");
        RequireLength(stats, 2, nameof(stats), "[loss sum, correct count]");
        if (!dLogits.IsNull)
        {
            Own(dLogits, nameof(dLogits));
            RequireShape(dLogits, logits.Shape, nameof(dLogits));
        }
        Wrote(dLogits); Wrote(stats);
        using (new OpTimer(this, "SoftmaxCrossEntropy")) SoftmaxCrossEntropyCore(logits, labels, dLogits, stats);
    }

    /// <summary>Row-wise softmax probabilities (for prediction ensembles).</summary>
    public void Softmax(Tensor logits, Tensor probabilities)
    {
        Own(logits, nameof(logits)); Own(probabilities, nameof(probabilities));
        RequireShape(probabilities, logits.Shape, nameof(probabilities));
        Wrote(probabilities);
        using (new OpTimer(this, "Softmax")) SoftmaxCore(logits, probabilities);
    }

    // ---------------------------------------------------------------- the Core methods a backend writes

    /// <summary>The backend's implementation of <see cref="SoftmaxCrossEntropy"/>; the arguments are already validated.</summary>
    private protected abstract void SoftmaxCrossEntropyCore(Tensor logits, Tensor labels, Tensor dLogits, Tensor stats);
    /// <summary>The backend's implementation of <see cref="Softmax"/>; the arguments are already validated.</summary>
    private protected abstract void SoftmaxCore(Tensor logits, Tensor probabilities);
}
