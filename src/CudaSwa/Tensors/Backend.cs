using System.Runtime.CompilerServices;

namespace CudaSwa.Tensors;

/// <summary>
/// The seam between layers and hardware. Layers hold shapes, parameters and the order of calls;
/// a backend supplies the ops. Every public op validates its arguments (shapes, dtypes, owning
/// backend) and then calls the matching protected <c>...Core</c> method, so a backend only writes
/// the arithmetic. The CPU backend is the readable reference; the CUDA backend is the fast one.
///
/// Conventions shared by all ops:
/// - Tensors are contiguous NCHW float32 unless named otherwise (labels and indices are int32,
///   images uint8).
/// - Parameter gradients accumulate (dW += ...). Activation gradients overwrite unless the caller
///   passes accumulate = true, which the graph does when a second consumer adds into the same
///   gradient (the skip path of a residual block).
/// - Ops are asynchronous with respect to the host on devices that queue work; Download and
///   Synchronize wait.
/// </summary>
public abstract class Backend : IDisposable
{
    /// <summary>Short name, e.g. "cpu" or "cuda:0".</summary>
    public abstract string Name { get; }

    /// <summary>One line describing the hardware, for logs.</summary>
    public abstract string Description { get; }

    /// <summary>
    /// Whether this backend's buffers are ordinary host memory the CPU can read and write in place
    /// (<see cref="HostSpan"/>); false for device memory, which is reached by copies.
    /// </summary>
    public abstract bool MemoryIsHostVisible { get; }

    /// <summary>A tensor's values as host memory, for backends whose memory is host-visible; throws otherwise.</summary>
    public Span<float> HostSpan(Tensor t)
    {
        Own(t, nameof(t));
        RequireFloat(t, nameof(t));
        if (!MemoryIsHostVisible) throw new NotSupportedException($"Backend '{Name}' keeps its tensors in device memory; use Download/Upload.");
        return HostSpanCore(t);
    }

    /// <summary>The host memory behind a float tensor (only called when <see cref="MemoryIsHostVisible"/>).</summary>
    protected virtual Span<float> HostSpanCore(Tensor t) => throw new NotSupportedException();

    /// <summary>When set, every op is timed (with a device synchronisation around it) into this profiler.</summary>
    public OpProfiler? Profiler { get; set; }

    // ---------------------------------------------------------------- memory

    /// <summary>
    /// Allocates a buffer of <paramref name="length"/> elements of <paramref name="dtype"/> on this backend.
    /// The caller owns it and disposes it. Its contents are not initialised on every backend: write it before reading.
    /// </summary>
    public DeviceBuffer Allocate(long length, DType dtype = DType.Float32)
    {
        if (length < 0) throw new ArgumentOutOfRangeException(nameof(length), $"Buffer length must be >= 0; got {length}.");
        return AllocateCore(length, dtype);
    }

    /// <summary>
    /// Allocates a buffer that fits <paramref name="shape"/> and returns a view of all of it. The caller owns
    /// the buffer (<see cref="Tensor.Buffer"/>) and disposes it.
    /// </summary>
    public Tensor AllocateTensor(TensorShape shape, DType dtype = DType.Float32) => new(Allocate(shape.Length, dtype), 0, shape);

    /// <summary>
    /// Copies host values into a tensor of this backend. <typeparamref name="T"/> must have the tensor's
    /// element size and <paramref name="source"/> exactly as many elements as <paramref name="destination"/>.
    /// </summary>
    public void Upload<T>(ReadOnlySpan<T> source, Tensor destination) where T : unmanaged
    {
        Own(destination, nameof(destination));
        RequireElement<T>(destination, nameof(destination));
        if (source.Length != destination.Length)
            throw new ArgumentException($"Upload of {source.Length} elements into a view of {destination.Length} elements {destination.Shape}.", nameof(source));
        UploadCore(System.Runtime.InteropServices.MemoryMarshal.AsBytes(source), destination);
    }

    /// <summary>
    /// Copies a tensor's values into host memory, after the queued work that writes them.
    /// <paramref name="destination"/> must hold exactly as many elements as <paramref name="source"/>, of its element size.
    /// </summary>
    public void Download<T>(Tensor source, Span<T> destination) where T : unmanaged
    {
        Own(source, nameof(source));
        RequireElement<T>(source, nameof(source));
        if (destination.Length != source.Length)
            throw new ArgumentException($"Download of a view of {source.Length} elements {source.Shape} into a span of {destination.Length}.", nameof(destination));
        DownloadCore(source, System.Runtime.InteropServices.MemoryMarshal.AsBytes(destination));
    }

    /// <summary>Downloads a float32 tensor into a new array (waits for queued work).</summary>
    public float[] ToArray(Tensor source)
    {
        var result = new float[source.Length];
        Download<float>(source, result);
        return result;
    }

    /// <summary>Sets every element of a float32 tensor to <paramref name="value"/>.</summary>
    public void Fill(Tensor t, float value)
    {
        Own(t, nameof(t));
        RequireFloat(t, nameof(t));
        using (new OpTimer(this, "Fill")) FillCore(t, value);
    }

    /// <summary>Copies <paramref name="source"/> into <paramref name="destination"/> element for element; both need the same dtype and length (shapes may differ).</summary>
    public void Copy(Tensor source, Tensor destination)
    {
        Own(source, nameof(source));
        Own(destination, nameof(destination));
        if (source.DType != destination.DType || source.Length != destination.Length)
            throw new ArgumentException($"Copy needs equal length and type; got {source.Length} {source.DType} -> {destination.Length} {destination.DType}.");
        using (new OpTimer(this, "Copy")) CopyCore(source, destination);
    }

    /// <summary>Waits until all queued work has finished (a no-op on the CPU).</summary>
    public virtual void Synchronize() { }

    // ---------------------------------------------------------------- convolution

    /// <summary>
    /// Prepares a convolution shape ahead of time (algorithm choice, scratch), so that no
    /// allocation happens inside a training step. Calling an op with an unprepared shape prepares
    /// it on the spot.
    /// </summary>
    public void PrepareConvolution(ConvGeometry geometry) => PrepareConvolutionCore(geometry);

    /// <summary>y = conv(x, w): cross-correlation as in cuDNN and PyTorch. x (N,C,H,W), w (K,C,R,S), y (N,K,P,Q).</summary>
    public void ConvolutionForward(Tensor x, Tensor w, Tensor y, ConvSpec spec)
    {
        var g = CheckConvolution(x, w, y, spec);
        using (new OpTimer(this, "ConvolutionForward")) ConvolutionForwardCore(x, w, y, g);
    }

    /// <summary>dx = conv_transpose(dy, w), overwriting dx unless accumulate.</summary>
    public void ConvolutionBackwardData(Tensor dy, Tensor w, Tensor dx, ConvSpec spec, bool accumulate)
    {
        var g = CheckConvolution(dx, w, dy, spec);
        using (new OpTimer(this, "ConvolutionBackwardData")) ConvolutionBackwardDataCore(dy, w, dx, g, accumulate);
    }

    /// <summary>dw += correlation of x with dy (parameter gradients accumulate).</summary>
    public void ConvolutionBackwardFilter(Tensor x, Tensor dy, Tensor dw, ConvSpec spec)
    {
        var g = CheckConvolution(x, dw, dy, spec);
        using (new OpTimer(this, "ConvolutionBackwardFilter")) ConvolutionBackwardFilterCore(x, dy, dw, g);
    }

    /// <summary>y[n,c,h,w] += bias[c].</summary>
    public void AddChannelBias(Tensor y, Tensor bias)
    {
        Own(y, nameof(y)); Own(bias, nameof(bias));
        RequireFloat(y, nameof(y)); RequireFloat(bias, nameof(bias));
        RequireLength(bias, y.Shape.C, nameof(bias), "one value per channel of y");
        using (new OpTimer(this, "AddChannelBias")) AddChannelBiasCore(y, bias);
    }

    /// <summary>dBias[c] += sum over n,h,w of dy[n,c,h,w].</summary>
    public void ChannelBiasBackward(Tensor dy, Tensor dBias)
    {
        Own(dy, nameof(dy)); Own(dBias, nameof(dBias));
        RequireLength(dBias, dy.Shape.C, nameof(dBias), "one value per channel of dy");
        using (new OpTimer(this, "ChannelBiasBackward")) ChannelBiasBackwardCore(dy, dBias);
    }

    // ---------------------------------------------------------------- batch normalisation

    /// <summary>
    /// Training-mode batch norm, exactly as cuDNN's cudnnBatchNormalizationForwardTraining:
    /// normalises with the batch mean and the biased batch variance, then updates
    /// running = (1 - factor) * running + factor * batch, storing the unbiased variance
    /// (times M/(M-1), M = N*H*W). factor = 1/(1+n) on the n-th call (0-based) gives the
    /// cumulative average. saveMean and saveInvStd (1/sqrt(var + eps)) feed the backward pass.
    /// </summary>
    public void BatchNormForwardTraining(Tensor x, Tensor y, Tensor gamma, Tensor beta,
        Tensor runningMean, Tensor runningVar, double factor, double epsilon, Tensor saveMean, Tensor saveInvStd)
    {
        CheckBatchNorm(x, y, gamma, beta, runningMean, runningVar, epsilon);
        RequireLength(saveMean, x.Shape.C, nameof(saveMean), "one value per channel");
        RequireLength(saveInvStd, x.Shape.C, nameof(saveInvStd), "one value per channel");
        if (!(factor >= 0 && factor <= 1))
            throw new ArgumentOutOfRangeException(nameof(factor), $"The running-average factor must be in [0, 1]; got {factor}.");
        if ((long)x.Shape.N * x.Shape.H * x.Shape.W < 2)
            throw new ArgumentException($"Training-mode batch norm needs at least 2 values per channel; got {x.Shape}.", nameof(x));
        using (new OpTimer(this, "BatchNormForwardTraining")) BatchNormForwardTrainingCore(x, y, gamma, beta, runningMean, runningVar, factor, epsilon, saveMean, saveInvStd);
    }

    /// <summary>Inference-mode batch norm with the running statistics.</summary>
    public void BatchNormForwardInference(Tensor x, Tensor y, Tensor gamma, Tensor beta,
        Tensor runningMean, Tensor runningVar, double epsilon)
    {
        CheckBatchNorm(x, y, gamma, beta, runningMean, runningVar, epsilon);
        using (new OpTimer(this, "BatchNormForwardInference")) BatchNormForwardInferenceCore(x, y, gamma, beta, runningMean, runningVar, epsilon);
    }

    /// <summary>Batch norm backward from the saved batch statistics: dx (overwrite unless accumulate), dGamma += , dBeta += .</summary>
    public void BatchNormBackward(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd,
        Tensor dx, Tensor dGamma, Tensor dBeta, double epsilon, bool accumulate)
    {
        if (!(epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), $"Epsilon must be > 0; got {epsilon}.");
        Own(x, nameof(x)); Own(dy, nameof(dy)); Own(dx, nameof(dx));
        RequireShape(dy, x.Shape, nameof(dy));
        RequireShape(dx, x.Shape, nameof(dx));
        int c = x.Shape.C;
        RequireLength(gamma, c, nameof(gamma), "one value per channel");
        RequireLength(saveMean, c, nameof(saveMean), "one value per channel");
        RequireLength(saveInvStd, c, nameof(saveInvStd), "one value per channel");
        RequireLength(dGamma, c, nameof(dGamma), "one value per channel");
        RequireLength(dBeta, c, nameof(dBeta), "one value per channel");
        using (new OpTimer(this, "BatchNormBackward")) BatchNormBackwardCore(x, dy, gamma, saveMean, saveInvStd, dx, dGamma, dBeta, epsilon, accumulate);
    }

    /// <summary>
    /// Merges one batch's per-channel statistics into a running (mean, M2) pair with Chan's
    /// parallel formula, so that after the last batch accMean is the population mean and
    /// accM2/(count-1) the unbiased population variance over every value seen. The batch variance
    /// is read back from saveInvStd (biased, 1/invStd^2 - eps). <paramref name="batchCount"/> is
    /// values per channel in this batch (N*H*W); <paramref name="previousCount"/> those merged before.
    /// </summary>
    public void BatchNormMergeStatistics(Tensor saveMean, Tensor saveInvStd, double epsilon,
        long batchCount, long previousCount, Tensor accMean, Tensor accM2)
    {
        int c = checked((int)saveMean.Length);
        RequireLength(saveInvStd, c, nameof(saveInvStd), "as many channels as saveMean");
        RequireLength(accMean, c, nameof(accMean), "as many channels as saveMean");
        RequireLength(accM2, c, nameof(accM2), "as many channels as saveMean");
        if (batchCount <= 0 || previousCount < 0)
            throw new ArgumentOutOfRangeException(nameof(batchCount), $"Counts must be positive; got batch {batchCount}, previous {previousCount}.");
        using (new OpTimer(this, "BatchNormMergeStatistics")) BatchNormMergeStatisticsCore(saveMean, saveInvStd, epsilon, batchCount, previousCount, accMean, accM2);
    }

    // ---------------------------------------------------------------- elementwise

    /// <summary>y = max(x, 0), elementwise; y has the shape of x.</summary>
    public void ReluForward(Tensor x, Tensor y)
    {
        Own(x, nameof(x)); Own(y, nameof(y));
        RequireShape(y, x.Shape, nameof(y));
        using (new OpTimer(this, "ReluForward")) ReluForwardCore(x, y);
    }

    /// <summary>dx = dy where y &gt; 0, else 0 (from the output, so x need not be kept).</summary>
    public void ReluBackward(Tensor y, Tensor dy, Tensor dx, bool accumulate)
    {
        Own(y, nameof(y)); Own(dy, nameof(dy)); Own(dx, nameof(dx));
        RequireShape(dy, y.Shape, nameof(dy));
        RequireShape(dx, y.Shape, nameof(dx));
        using (new OpTimer(this, "ReluBackward")) ReluBackwardCore(y, dy, dx, accumulate);
    }

    /// <summary>y = a + b (the residual join).</summary>
    public void Add(Tensor a, Tensor b, Tensor y)
    {
        Own(a, nameof(a)); Own(b, nameof(b)); Own(y, nameof(y));
        RequireShape(b, a.Shape, nameof(b));
        RequireShape(y, a.Shape, nameof(y));
        using (new OpTimer(this, "Add")) AddCore(a, b, y);
    }

    /// <summary>dst = src, or dst += src when accumulate.</summary>
    public void AccumulateGradient(Tensor source, Tensor destination, bool accumulate)
    {
        Own(source, nameof(source)); Own(destination, nameof(destination));
        RequireShape(destination, source.Shape, nameof(destination));
        using (new OpTimer(this, "AccumulateGradient")) AccumulateGradientCore(source, destination, accumulate);
    }

    // ---------------------------------------------------------------- pooling and dropout

    /// <summary>(N,C,H,W) -> (N,C): mean over the spatial axes.</summary>
    public void GlobalAveragePoolForward(Tensor x, Tensor y)
    {
        Own(x, nameof(x)); Own(y, nameof(y));
        RequireShape(y, new TensorShape(x.Shape.N, x.Shape.C), nameof(y));
        using (new OpTimer(this, "GlobalAveragePoolForward")) GlobalAveragePoolForwardCore(x, y);
    }

    /// <summary>dx[n,c,h,w] = dy[n,c] / (H*W), overwriting dx unless <paramref name="accumulate"/>. dy is (N,C), dx (N,C,H,W).</summary>
    public void GlobalAveragePoolBackward(Tensor dy, Tensor dx, bool accumulate)
    {
        Own(dy, nameof(dy)); Own(dx, nameof(dx));
        RequireShape(dy, new TensorShape(dx.Shape.N, dx.Shape.C), nameof(dy));
        using (new OpTimer(this, "GlobalAveragePoolBackward")) GlobalAveragePoolBackwardCore(dy, dx, accumulate);
    }

    /// <summary>2x2 max pooling with stride 2 (VGG). The first maximum in row-major order wins ties.</summary>
    public void MaxPoolForward(Tensor x, Tensor y)
    {
        Own(x, nameof(x)); Own(y, nameof(y));
        RequireShape(y, TensorShape.Nchw(x.Shape.N, x.Shape.C, x.Shape.H / 2, x.Shape.W / 2), nameof(y));
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
        using (new OpTimer(this, "MaxPoolBackward")) MaxPoolBackwardCore(x, dy, dx, accumulate);
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
        using (new OpTimer(this, "DropoutBackward")) DropoutBackwardCore(dy, dx, p, seed, stream, accumulate);
    }

    // ---------------------------------------------------------------- linear

    /// <summary>y = x W^T + b. x is (N, In) or any (N, ...) with In values per sample; W (Out, In); b (Out); y (N, Out).</summary>
    public void LinearForward(Tensor x, Tensor w, Tensor b, Tensor y)
    {
        CheckLinear(x, w, y);
        RequireLength(b, w.Shape.N, nameof(b), "one value per output feature");
        using (new OpTimer(this, "LinearForward")) LinearForwardCore(x, w, b, y);
    }

    /// <summary>dx = dy W.</summary>
    public void LinearBackwardData(Tensor dy, Tensor w, Tensor dx, bool accumulate)
    {
        CheckLinear(dx, w, dy);
        using (new OpTimer(this, "LinearBackwardData")) LinearBackwardDataCore(dy, w, dx, accumulate);
    }

    /// <summary>dW += dy^T x; dB += column sums of dy.</summary>
    public void LinearBackwardWeights(Tensor x, Tensor dy, Tensor dw, Tensor db)
    {
        CheckLinear(x, dw, dy);
        RequireLength(db, dw.Shape.N, nameof(db), "one value per output feature");
        using (new OpTimer(this, "LinearBackwardWeights")) LinearBackwardWeightsCore(x, dy, dw, db);
    }

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
        using (new OpTimer(this, "SoftmaxCrossEntropy")) SoftmaxCrossEntropyCore(logits, labels, dLogits, stats);
    }

    /// <summary>Row-wise softmax probabilities (for prediction ensembles).</summary>
    public void Softmax(Tensor logits, Tensor probabilities)
    {
        Own(logits, nameof(logits)); Own(probabilities, nameof(probabilities));
        RequireShape(probabilities, logits.Shape, nameof(probabilities));
        using (new OpTimer(this, "Softmax")) SoftmaxCore(logits, probabilities);
    }

    // ---------------------------------------------------------------- optimisation and averaging

    /// <summary>
    /// One SGD step over flat buffers with PyTorch semantics:
    /// g += wd*w; v = momentum*v + g; w -= lr * (nesterov ? g + momentum*v : v).
    /// </summary>
    public void SgdStep(Tensor weights, Tensor gradients, Tensor velocity, SgdHyper hyper)
    {
        Own(weights, nameof(weights)); Own(gradients, nameof(gradients)); Own(velocity, nameof(velocity));
        RequireLength(gradients, weights.Length, nameof(gradients), "as many values as weights");
        RequireLength(velocity, weights.Length, nameof(velocity), "as many values as weights");
        using (new OpTimer(this, "SgdStep")) SgdStepCore(weights, gradients, velocity, hyper);
    }

    /// <summary>
    /// Prepares the running-average update over a fixed list of pairs (validated here, once):
    /// each later <see cref="AverageUpdate(AveragePlan, float)"/> is one fused pass over all of
    /// them. The plan holds the buffers' addresses; dispose it before freeing them.
    /// </summary>
    public AveragePlan PrepareAverage(IReadOnlyList<AveragePair> pairs)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        var array = new AveragePair[pairs.Count];
        for (int i = 0; i < array.Length; i++)
        {
            var p = pairs[i];
            Own(p.Average, "average"); Own(p.Current, "current");
            RequireFloat(p.Average, "average"); RequireFloat(p.Current, "current");
            if (p.Average.Length != p.Current.Length)
                throw new ArgumentException($"Pair {i}: average and current buffers differ in length: {p.Average.Length} vs {p.Current.Length}.", nameof(pairs));
            array[i] = p;
        }
        return PrepareAverageCore(array);
    }

    /// <summary>
    /// average += alpha * (current - average) over every pair of the plan, in one fused pass (one
    /// launch on a device). alpha = 1/(n+1) is the SWA running mean after n models; alpha =
    /// 1 - decay is an EMA; alpha = 1 copies exactly (whatever average held before).
    /// </summary>
    public void AverageUpdate(AveragePlan plan, float alpha)
    {
        ArgumentNullException.ThrowIfNull(plan);
        if (!(alpha > 0 && alpha <= 1))
            throw new ArgumentOutOfRangeException(nameof(alpha), $"The averaging weight must be in (0, 1]; got {alpha}.");
        if (!ReferenceEquals(plan.Backend, this))
            throw new ArgumentException($"The averaging plan was prepared on backend '{plan.Backend.Name}', not on '{Name}'.", nameof(plan));
        ObjectDisposedException.ThrowIf(plan.IsDisposed, plan);
        foreach (var p in plan.Pairs)
            if (p.Average.Buffer.IsDisposed || p.Current.Buffer.IsDisposed)
                throw new ObjectDisposedException(nameof(plan), "A buffer of the averaging plan was freed after the plan was prepared.");
        if (plan.Pairs.Count > 0) using (new OpTimer(this, "AverageUpdate")) AverageUpdateCore(plan, alpha);
    }

    /// <summary>One update over pairs prepared for this call only (for repeated updates, prepare a plan once).</summary>
    public void AverageUpdate(ReadOnlySpan<AveragePair> pairs, float alpha)
    {
        using var plan = PrepareAverage(pairs.ToArray());
        AverageUpdate(plan, alpha);
    }

    /// <summary>One update of a single pair: average += alpha * (current - average).</summary>
    public void AverageUpdate(Tensor average, Tensor current, float alpha) =>
        AverageUpdate([new AveragePair(average, current)], alpha);

    // ---------------------------------------------------------------- data

    /// <summary>
    /// Builds a batch from a uint8 image set kept on this backend: for each position b, sample
    /// indices[b] is padded, cropped, flipped (Philox keyed by spec.Seed, epoch and the sample
    /// index) and normalised into x[b]; labels[b] is copied from sourceLabels.
    /// images (count, 3, 32, 32) uint8; sourceLabels (count) int32; indices (B) int32; x (B,3,32,32); labels (B) int32.
    /// </summary>
    public void AugmentBatch(Tensor images, Tensor sourceLabels, Tensor indices, AugmentSpec spec, int epoch, Tensor x, Tensor labels)
    {
        Own(images, nameof(images)); Own(sourceLabels, nameof(sourceLabels)); Own(indices, nameof(indices));
        Own(x, nameof(x)); Own(labels, nameof(labels));
        if (images.DType != DType.UInt8) throw new ArgumentException($"Images must be uint8; got {images.DType}.", nameof(images));
        if (sourceLabels.DType != DType.Int32 || indices.DType != DType.Int32 || labels.DType != DType.Int32)
            throw new ArgumentException("Labels and indices must be int32.");
        if (images.Shape.Rank != 4 || x.Shape.Rank != 4 || images.Shape.C != x.Shape.C || images.Shape.H != x.Shape.H || images.Shape.W != x.Shape.W)
            throw new ArgumentException($"Images {images.Shape} and batch {x.Shape} must both be (N, C, H, W) with equal C, H, W.");
        RequireLength(sourceLabels, images.Shape.N, nameof(sourceLabels), "one label per image");
        RequireLength(indices, x.Shape.N, nameof(indices), "one index per batch position");
        RequireLength(labels, x.Shape.N, nameof(labels), "one label per batch position");
        if (spec.Mean.Length != x.Shape.C || spec.Std.Length != x.Shape.C)
            throw new ArgumentException($"Normalisation needs {x.Shape.C} means and stds; got {spec.Mean.Length} and {spec.Std.Length}.", nameof(spec));
        if (spec.Pad < 0 || spec.Pad >= x.Shape.H)
            throw new ArgumentOutOfRangeException(nameof(spec), $"Padding must be in [0, {x.Shape.H}); got {spec.Pad}.");
        using (new OpTimer(this, "AugmentBatch")) AugmentBatchCore(images, sourceLabels, indices, spec, epoch, x, labels);
    }

    // ---------------------------------------------------------------- the Core methods a backend writes

    /// <summary>The backend's implementation of <see cref="Allocate"/>; the arguments are already validated.</summary>
    protected abstract DeviceBuffer AllocateCore(long length, DType dtype);
    /// <summary>The backend's implementation of <see cref="Upload{T}"/>; the arguments are already validated.</summary>
    protected abstract void UploadCore(ReadOnlySpan<byte> source, Tensor destination);
    /// <summary>The backend's implementation of <see cref="Download{T}"/>; the arguments are already validated.</summary>
    protected abstract void DownloadCore(Tensor source, Span<byte> destination);
    /// <summary>The backend's implementation of <see cref="Fill"/>; the arguments are already validated.</summary>
    protected abstract void FillCore(Tensor t, float value);
    /// <summary>The backend's implementation of <see cref="Copy"/>; the arguments are already validated.</summary>
    protected abstract void CopyCore(Tensor source, Tensor destination);
    /// <summary>The backend's implementation of <see cref="PrepareConvolution"/>.</summary>
    protected abstract void PrepareConvolutionCore(ConvGeometry geometry);
    /// <summary>The backend's implementation of <see cref="ConvolutionForward"/>; the arguments are already validated.</summary>
    protected abstract void ConvolutionForwardCore(Tensor x, Tensor w, Tensor y, ConvGeometry g);
    /// <summary>The backend's implementation of <see cref="ConvolutionBackwardData"/>; the arguments are already validated.</summary>
    protected abstract void ConvolutionBackwardDataCore(Tensor dy, Tensor w, Tensor dx, ConvGeometry g, bool accumulate);
    /// <summary>The backend's implementation of <see cref="ConvolutionBackwardFilter"/>; the arguments are already validated.</summary>
    protected abstract void ConvolutionBackwardFilterCore(Tensor x, Tensor dy, Tensor dw, ConvGeometry g);
    /// <summary>The backend's implementation of <see cref="AddChannelBias"/>; the arguments are already validated.</summary>
    protected abstract void AddChannelBiasCore(Tensor y, Tensor bias);
    /// <summary>The backend's implementation of <see cref="ChannelBiasBackward"/>; the arguments are already validated.</summary>
    protected abstract void ChannelBiasBackwardCore(Tensor dy, Tensor dBias);
    /// <summary>The backend's implementation of <see cref="BatchNormForwardTraining"/>; the arguments are already validated.</summary>
    protected abstract void BatchNormForwardTrainingCore(Tensor x, Tensor y, Tensor gamma, Tensor beta,
        Tensor runningMean, Tensor runningVar, double factor, double epsilon, Tensor saveMean, Tensor saveInvStd);
    /// <summary>The backend's implementation of <see cref="BatchNormForwardInference"/>; the arguments are already validated.</summary>
    protected abstract void BatchNormForwardInferenceCore(Tensor x, Tensor y, Tensor gamma, Tensor beta,
        Tensor runningMean, Tensor runningVar, double epsilon);
    /// <summary>The backend's implementation of <see cref="BatchNormBackward"/>; the arguments are already validated.</summary>
    protected abstract void BatchNormBackwardCore(Tensor x, Tensor dy, Tensor gamma, Tensor saveMean, Tensor saveInvStd,
        Tensor dx, Tensor dGamma, Tensor dBeta, double epsilon, bool accumulate);
    /// <summary>The backend's implementation of <see cref="BatchNormMergeStatistics"/>; the arguments are already validated.</summary>
    protected abstract void BatchNormMergeStatisticsCore(Tensor saveMean, Tensor saveInvStd, double epsilon,
        long batchCount, long previousCount, Tensor accMean, Tensor accM2);
    /// <summary>The backend's implementation of <see cref="ReluForward"/>; the arguments are already validated.</summary>
    protected abstract void ReluForwardCore(Tensor x, Tensor y);
    /// <summary>The backend's implementation of <see cref="ReluBackward"/>; the arguments are already validated.</summary>
    protected abstract void ReluBackwardCore(Tensor y, Tensor dy, Tensor dx, bool accumulate);
    /// <summary>The backend's implementation of <see cref="Add"/>; the arguments are already validated.</summary>
    protected abstract void AddCore(Tensor a, Tensor b, Tensor y);
    /// <summary>The backend's implementation of <see cref="AccumulateGradient"/>; the arguments are already validated.</summary>
    protected abstract void AccumulateGradientCore(Tensor source, Tensor destination, bool accumulate);
    /// <summary>The backend's implementation of <see cref="GlobalAveragePoolForward"/>; the arguments are already validated.</summary>
    protected abstract void GlobalAveragePoolForwardCore(Tensor x, Tensor y);
    /// <summary>The backend's implementation of <see cref="GlobalAveragePoolBackward"/>; the arguments are already validated.</summary>
    protected abstract void GlobalAveragePoolBackwardCore(Tensor dy, Tensor dx, bool accumulate);
    /// <summary>The backend's implementation of <see cref="MaxPoolForward"/>; the arguments are already validated.</summary>
    protected abstract void MaxPoolForwardCore(Tensor x, Tensor y);
    /// <summary>The backend's implementation of <see cref="MaxPoolBackward"/>; the arguments are already validated.</summary>
    protected abstract void MaxPoolBackwardCore(Tensor x, Tensor dy, Tensor dx, bool accumulate);
    /// <summary>The backend's implementation of <see cref="DropoutForward"/>; the arguments are already validated.</summary>
    protected abstract void DropoutForwardCore(Tensor x, Tensor y, float p, ulong seed, ulong stream);
    /// <summary>The backend's implementation of <see cref="DropoutBackward"/>; the arguments are already validated.</summary>
    protected abstract void DropoutBackwardCore(Tensor dy, Tensor dx, float p, ulong seed, ulong stream, bool accumulate);
    /// <summary>The backend's implementation of <see cref="LinearForward"/>; the arguments are already validated.</summary>
    protected abstract void LinearForwardCore(Tensor x, Tensor w, Tensor b, Tensor y);
    /// <summary>The backend's implementation of <see cref="LinearBackwardData"/>; the arguments are already validated.</summary>
    protected abstract void LinearBackwardDataCore(Tensor dy, Tensor w, Tensor dx, bool accumulate);
    /// <summary>The backend's implementation of <see cref="LinearBackwardWeights"/>; the arguments are already validated.</summary>
    protected abstract void LinearBackwardWeightsCore(Tensor x, Tensor dy, Tensor dw, Tensor db);
    /// <summary>The backend's implementation of <see cref="SoftmaxCrossEntropy"/>; the arguments are already validated.</summary>
    protected abstract void SoftmaxCrossEntropyCore(Tensor logits, Tensor labels, Tensor dLogits, Tensor stats);
    /// <summary>The backend's implementation of <see cref="Softmax"/>; the arguments are already validated.</summary>
    protected abstract void SoftmaxCore(Tensor logits, Tensor probabilities);
    /// <summary>The backend's implementation of <see cref="SgdStep"/>; the arguments are already validated.</summary>
    protected abstract void SgdStepCore(Tensor weights, Tensor gradients, Tensor velocity, SgdHyper hyper);
    /// <summary>The backend's implementation of <see cref="PrepareAverage"/>; the arguments are already validated.</summary>
    protected abstract AveragePlan PrepareAverageCore(AveragePair[] pairs);
    /// <summary>The backend's implementation of <see cref="AverageUpdate(AveragePlan, float)"/>; the arguments are already validated.</summary>
    protected abstract void AverageUpdateCore(AveragePlan plan, float alpha);
    /// <summary>The backend's implementation of <see cref="AugmentBatch"/>; the arguments are already validated.</summary>
    protected abstract void AugmentBatchCore(Tensor images, Tensor sourceLabels, Tensor indices, AugmentSpec spec, int epoch, Tensor x, Tensor labels);

    /// <summary>
    /// Releases what the backend holds (on CUDA: library handles, kernels and its hold on the device's
    /// primary context). Buffers it allocated are no longer usable afterwards: dispose networks and buffers first.
    /// </summary>
    public abstract void Dispose();

    // ---------------------------------------------------------------- validation helpers

    private void Own(Tensor t, string name)
    {
        if (t.IsNull) throw new ArgumentNullException(name, $"Tensor '{name}' is missing.");
        if (!ReferenceEquals(t.Backend, this))
            throw new ArgumentException($"Tensor '{name}' lives on backend '{t.Backend.Name}', not on '{Name}'.", name);
        if (t.Buffer.IsDisposed)
            throw new ObjectDisposedException(name, $"Tensor '{name}' points into a freed buffer.");
    }

    private static void RequireFloat(Tensor t, string name)
    {
        if (t.DType != DType.Float32) throw new ArgumentException($"Tensor '{name}' must be float32; got {t.DType}.", name);
    }

    private static void RequireElement<T>(Tensor t, string name) where T : unmanaged
    {
        if (Unsafe.SizeOf<T>() != t.DType.SizeInBytes())
            throw new ArgumentException($"Element type {typeof(T).Name} does not match tensor '{name}' of {t.DType}.", name);
    }

    private static void RequireShape(Tensor t, TensorShape expected, string name)
    {
        if (t.Shape.Length != expected.Length || t.Shape.N != expected.N || t.Shape.SampleLength != expected.SampleLength)
            throw new ArgumentException($"Tensor '{name}' has shape {t.Shape}; expected {expected}.", name);
    }

    private static void RequireLength(Tensor t, long expected, string name, string what)
    {
        if (t.IsNull) throw new ArgumentNullException(name, $"Tensor '{name}' is missing.");
        if (t.Length != expected)
            throw new ArgumentException($"Tensor '{name}' has {t.Length} elements {t.Shape}; expected {expected} ({what}).", name);
    }

    private static void CheckProbability(float p)
    {
        if (!(p >= 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p), $"Dropout probability must be in [0, 1); got {p}.");
    }

    private ConvGeometry CheckConvolution(Tensor x, Tensor w, Tensor y, ConvSpec spec)
    {
        Own(x, "x"); Own(w, "w"); Own(y, "y");
        if (x.Shape.Rank != 4 || w.Shape.Rank != 4 || y.Shape.Rank != 4)
            throw new ArgumentException($"Convolution needs rank-4 tensors; got x {x.Shape}, w {w.Shape}, y {y.Shape}.");
        if (spec.Stride < 1 || spec.Padding < 0)
            throw new ArgumentOutOfRangeException(nameof(spec), $"Stride must be >= 1 and padding >= 0; got {spec}.");
        if (w.Shape.C != x.Shape.C)
            throw new ArgumentException($"Weight {w.Shape} expects {w.Shape.C} input channels; x {x.Shape} has {x.Shape.C}.");
        var g = ConvGeometry.From(x.Shape, w.Shape, spec);
        if (g.P < 1 || g.Q < 1)
            throw new ArgumentException($"Kernel {w.Shape.H}x{w.Shape.W} with {spec} does not fit input {x.Shape}.");
        var expected = TensorShape.Nchw(x.Shape.N, w.Shape.N, g.P, g.Q);
        if (y.Shape != expected)
            throw new ArgumentException($"Convolution output has shape {y.Shape}; expected {expected} for x {x.Shape}, w {w.Shape}, {spec}.");
        return g;
    }

    private void CheckBatchNorm(Tensor x, Tensor y, Tensor gamma, Tensor beta, Tensor runningMean, Tensor runningVar, double epsilon)
    {
        Own(x, nameof(x)); Own(y, nameof(y));
        RequireShape(y, x.Shape, nameof(y));
        int c = x.Shape.C;
        RequireLength(gamma, c, nameof(gamma), "one value per channel");
        RequireLength(beta, c, nameof(beta), "one value per channel");
        RequireLength(runningMean, c, nameof(runningMean), "one value per channel");
        RequireLength(runningVar, c, nameof(runningVar), "one value per channel");
        if (!(epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), $"Epsilon must be > 0; got {epsilon}.");
    }

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

/// <summary>One (average, current) pair of a running-average update (<see cref="Backend.PrepareAverage"/>).</summary>
/// <param name="Average">The running average, updated in place.</param>
/// <param name="Current">The current values, read only; same length as <paramref name="Average"/>.</param>
public readonly record struct AveragePair(Tensor Average, Tensor Current);

/// <summary>SGD hyper-parameters of one step (PyTorch semantics, dampening 0).</summary>
/// <param name="LearningRate">Step size of this step.</param>
/// <param name="Momentum">Momentum factor (0 for plain SGD).</param>
/// <param name="WeightDecay">L2 penalty added to the gradient (decay * w).</param>
/// <param name="Nesterov">Nesterov momentum.</param>
public readonly record struct SgdHyper(float LearningRate, float Momentum, float WeightDecay, bool Nesterov);
