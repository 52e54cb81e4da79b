using CudaSwa.Tensors;
using CudaSwa.Tests.Support;
using NUnit.Framework;

namespace CudaSwa.Tests.Data;

/// <summary>
/// Augmentation against a plain implementation written here, on every backend (the CPU twin and
/// the kernel are otherwise only compared with each other, so a mistake both share would pass).
/// The images carry known pixel patterns — every pixel of an image distinct and non-zero — so the
/// crop offset and flip the backend drew can be read back from its output without the random
/// generator: each output image must equal exactly one of the (2p+1)^2 x 2 candidate transforms of
/// its source computed here the way torchvision defines them (pad by p with zeros or by reflection
/// without repeating the edge, take the HxW window at (dy, dx), then flip horizontally, then
/// (x/255 - mean)/std). Over many samples every offset must occur and about half must be flipped;
/// with crop and flip off (evaluation), the output is the centred, unflipped image.
/// </summary>
[TestFixtureSource(typeof(BackendFixtures), nameof(BackendFixtures.All))]
public class AugmentReferenceTests(string backend) : BackendTest(backend)
{
    private const int C = 3, H = 32, W = 32, Count = 40, Batch = 240;

    /// <summary>Channel 0: row + 1, channel 1: column + 1, channel 2: a sample-dependent mix: every pixel of an image unique and non-zero.</summary>
    private static byte[] PatternImages(int salt)
    {
        var images = new byte[Count * C * H * W];
        for (int n = 0; n < Count; n++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                {
                    int at = n * C * H * W + y * W + x;
                    images[at] = (byte)(y + 1);
                    images[at + H * W] = (byte)(x + 1);
                    images[at + 2 * H * W] = (byte)(1 + (y * 7 + x * 13 + n * 31 + salt) % 250);
                }
        return images;
    }

    /// <summary>torchvision's pad (zeros, or reflection without repeating the edge), crop at (dy, dx), horizontal flip, normalisation; in float64.</summary>
    private static double[] Reference(byte[] images, int sample, int pad, PaddingMode padding, int dy, int dx, bool flip, float[] mean, float[] std)
    {
        static int Mirror(int i, int n) => i < 0 ? -i : i >= n ? 2 * (n - 1) - i : i;
        var result = new double[C * H * W];
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                {
                    int cx = flip ? W - 1 - x : x;          // the flip is of the cropped window
                    int py = y + dy - pad, px = cx + dx - pad; // padded-image coordinates back to the source's
                    double raw;
                    if (py >= 0 && py < H && px >= 0 && px < W) raw = images[((sample * C + c) * H + py) * W + px];
                    else if (padding == PaddingMode.Reflect) raw = images[((sample * C + c) * H + Mirror(py, H)) * W + Mirror(px, W)];
                    else raw = 0;
                    result[(c * H + y) * W + x] = (raw / 255.0 - mean[c]) / std[c];
                }
        return result;
    }

    private static bool Matches(ReadOnlySpan<float> got, double[] expected)
    {
        for (int i = 0; i < expected.Length; i++)
            if (Math.Abs(got[i] - expected[i]) > 1e-5 * (1 + Math.Abs(expected[i]))) return false;
        return true;
    }

    [TestCase(PaddingMode.Zero)]
    [TestCase(PaddingMode.Reflect)]
    public void EveryOutputIsOneTorchvisionCropAndFlipOfItsSource(PaddingMode padding)
    {
        int pad = 4;
        var images = PatternImages(Rng.Seed & 0xff);
        var sourceLabels = Rng.Ints(Count, 0, 10);
        var indices = Rng.Ints(Batch, 0, Count);
        var spec = new AugmentSpec { Padding = padding, Pad = pad, Seed = (ulong)Rng.Seed };
        var timages = B.AllocateTensor(TensorShape.Nchw(Count, C, H, W), DType.UInt8);
        B.Upload<byte>(images, timages);
        var x = Poisoned(Batch, C, H, W);
        var labels = B.AllocateTensor(new TensorShape(Batch), DType.Int32);
        var offsetsY = new int[2 * pad + 1];
        var offsetsX = new int[2 * pad + 1];
        // A draw is keyed by (epoch, sample): a sample repeated within an epoch gets the same crop and
        // flip, so the statistics below count each (epoch, sample) once — the independent draws.
        var drawn = new Dictionary<(int Epoch, int Sample), (int Dy, int Dx, bool Flip)>();
        foreach (int epoch in new[] { 0, 7, 19, 1000 })
        {
            B.AugmentBatch(timages, PutInts(sourceLabels), PutInts(indices), spec, epoch, x, labels);
            var got = Get(x);
            var gotLabels = new int[Batch];
            B.Download<int>(labels, gotLabels);
            Assert.That(gotLabels, Is.EqualTo(indices.Select(i => sourceLabels[i]).ToArray()), $"labels ({Rng})");
            for (int b = 0; b < Batch; b++)
            {
                var image = got.AsSpan(b * C * H * W, C * H * W);
                var found = new List<(int Dy, int Dx, bool Flip)>();
                for (int dy = 0; dy <= 2 * pad; dy++)
                    for (int dx = 0; dx <= 2 * pad; dx++)
                        foreach (bool flip in new[] { false, true })
                            if (Matches(image, Reference(images, indices[b], pad, padding, dy, dx, flip, spec.Mean, spec.Std))) found.Add((dy, dx, flip));
                Assert.That(found, Has.Count.EqualTo(1), $"epoch {epoch}, position {b}: the output is exactly one crop-and-flip of sample {indices[b]} ({Rng})");
                if (drawn.TryGetValue((epoch, indices[b]), out var first))
                {
                    Assert.That(found[0], Is.EqualTo(first), $"epoch {epoch}: sample {indices[b]} repeated in the batch gets the same draw ({Rng})");
                    continue;
                }
                drawn[(epoch, indices[b])] = found[0];
                offsetsY[found[0].Dy]++;
                offsetsX[found[0].Dx]++;
            }
        }
        int draws = drawn.Count, flips = drawn.Values.Count(d => d.Flip);
        Assert.That(offsetsY, Is.All.GreaterThan(0), $"every vertical offset 0..{2 * pad} occurs ({Rng})");
        Assert.That(offsetsX, Is.All.GreaterThan(0), $"every horizontal offset 0..{2 * pad} occurs ({Rng})");
        // Binomial(draws, 1/2): five standard deviations either side (a false alarm about once in 10^6 runs).
        double band = 5 * 0.5 / Math.Sqrt(draws);
        Assert.That(draws, Is.GreaterThanOrEqualTo(100), $"enough independent draws ({Rng})");
        Assert.That(flips / (double)draws, Is.InRange(0.5 - band, 0.5 + band), $"about half flipped: {flips} of {draws} independent draws ({Rng})");
    }

    [TestCase(PaddingMode.Zero)]
    [TestCase(PaddingMode.Reflect)]
    public void EvaluationIsTheCentredUnflippedImage(PaddingMode padding)
    {
        var images = PatternImages(Rng.Seed & 0xff);
        var indices = Rng.Ints(Batch, 0, Count);
        var spec = new AugmentSpec { Padding = padding, Seed = (ulong)Rng.Seed }.ForEvaluation();
        var timages = B.AllocateTensor(TensorShape.Nchw(Count, C, H, W), DType.UInt8);
        B.Upload<byte>(images, timages);
        var x = Poisoned(Batch, C, H, W);
        var labels = B.AllocateTensor(new TensorShape(Batch), DType.Int32);
        B.AugmentBatch(timages, PutInts(new int[Count]), PutInts(indices), spec, 3, x, labels);
        var got = Get(x);
        for (int b = 0; b < Batch; b++)
            Assert.That(Matches(got.AsSpan(b * C * H * W, C * H * W), Reference(images, indices[b], spec.Pad, padding, spec.Pad, spec.Pad, false, spec.Mean, spec.Std)),
                Is.True, $"position {b}: the source image itself, normalised ({Rng})");
    }
}
