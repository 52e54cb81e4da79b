using CudaSwa.Util;

namespace CudaSwa.Data;

/// <summary>
/// The embedded default dataset: deterministic, CIFAR-like 32x32 colour images of 10 procedural
/// classes, generated in memory (no download). Each class is a kind of figure; everything a
/// class does not depend on is random per image: figure and background colours (so colour is no
/// cue), position, size, thickness, background texture (flat, gradient or blotches), a random
/// occluding bar on some images, and pixel noise. Some classes are close cousins (ring vs disc,
/// horizontal vs diagonal stripes, cross vs two bars of a grid), so a small ResNet learns it fast
/// but does not reach 100% test accuracy in a few epochs. Image i of a split is a pure function
/// of (seed, split, i).
/// </summary>
public static class SyntheticCifar
{
    /// <summary>Number of classes.</summary>
    public const int Classes = 10;
    /// <summary>Image height and width, in pixels.</summary>
    public const int Size = 32;

    /// <summary>The name of each class, by label.</summary>
    public static readonly string[] ClassNames =
        ["disc", "square", "triangle", "h-stripes", "v-stripes", "ring", "cross", "d-stripes", "two-dots", "checker"];

    /// <summary>
    /// Generates a training set of <paramref name="trainCount"/> and a test set of <paramref name="testCount"/>
    /// images, classes balanced, deterministic in <paramref name="seed"/>; each split needs at least
    /// <see cref="Classes"/> images.
    /// </summary>
    public static (ImageDataset Train, ImageDataset Test) Generate(int trainCount, int testCount, ulong seed)
    {
        if (trainCount < Classes || testCount < Classes)
            throw new ArgumentOutOfRangeException(nameof(trainCount), $"Need at least {Classes} train and test images; got {trainCount} and {testCount}.");
        return (Split("synthetic-train", trainCount, seed, 1), Split("synthetic-test", testCount, seed, 2));
    }

    private static ImageDataset Split(string name, int count, ulong seed, uint split)
    {
        var images = new byte[count * 3 * Size * Size];
        var labels = new int[count];
        Parallel.For(0, count, i =>
        {
            labels[i] = i % Classes; // balanced
            Render(labels[i], new Draws(seed, split, (uint)i), images.AsSpan(i * 3 * Size * Size, 3 * Size * Size));
        });
        return new ImageDataset(name, images, labels, Classes);
    }

    /// <summary>A stream of uniform draws keyed by (seed, split, image).</summary>
    private sealed class Draws(ulong seed, uint split, uint index)
    {
        private uint _counter;
        private Philox.Block _block;
        private int _used = 4;

        public double Next()
        {
            if (_used == 4)
            {
                _block = Philox.Generate(index, split, _counter++, 0x51C1FA4u, (uint)seed, (uint)(seed >> 32));
                _used = 0;
            }
            return (_block[_used++] >> 8) / 16777216.0;
        }

        public double Range(double lo, double hi) => lo + (hi - lo) * Next();
        public int Int(int lo, int hiExclusive) => lo + (int)(Next() * (hiExclusive - lo));
    }

    private static void Render(int label, Draws d, Span<byte> image)
    {
        // Colours: background and figure far enough apart in luminance to be visible, hue random.
        var bg = RandomColour(d);
        double[] fg;
        do fg = RandomColour(d); while (Math.Abs(Luma(fg) - Luma(bg)) < 0.25);
        int texture = d.Int(0, 3);
        double gdx = d.Range(-1, 1), gdy = d.Range(-1, 1), gAmp = d.Range(0.1, 0.3);
        double bx1 = d.Range(0, 32), by1 = d.Range(0, 32), bx2 = d.Range(0, 32), by2 = d.Range(0, 32);

        double cx = d.Range(10, 22), cy = d.Range(10, 22);
        double r = d.Range(5, 10);
        double thick = d.Range(1.5, 3.5);
        double period = d.Range(4, 7);
        double phase = d.Range(0, period);
        double angle = d.Range(-0.35, 0.35); // small tilt for triangles and crosses
        double sep = d.Range(4, 8), dotAngle = d.Range(0, Math.PI);
        bool occlude = d.Next() < 0.3;
        double ox = d.Range(0, 32), oWidth = d.Range(2, 5);
        bool occludeVertical = d.Next() < 0.5;
        var occ = RandomColour(d);
        double noise = d.Range(0.03, 0.12);

        for (int y = 0; y < Size; y++)
        for (int x = 0; x < Size; x++)
        {
            double px = x + 0.5, py = y + 0.5;
            double shade = texture switch
            {
                1 => gAmp * (gdx * (px - 16) + gdy * (py - 16)) / 16,
                2 => gAmp * (Blob(px, py, bx1, by1) - Blob(px, py, bx2, by2)),
                _ => 0,
            };
            double cover = Coverage(label, px, py, cx, cy, r, thick, period, phase, angle, sep, dotAngle);
            if (occlude)
            {
                double along = occludeVertical ? px : py;
                if (Math.Abs(along - ox) < oWidth / 2) cover = -1;
            }
            for (int c = 0; c < 3; c++)
            {
                double v = cover < 0 ? occ[c] : bg[c] + shade + cover * (fg[c] - bg[c] - shade);
                v += noise * Gaussian(d);
                image[(c * Size + y) * Size + x] = (byte)Math.Clamp((int)Math.Round(v * 255), 0, 255);
            }
        }
    }

    /// <summary>How much of pixel (px, py) the figure covers, in [0, 1], with a one-pixel soft edge.</summary>
    private static double Coverage(int label, double px, double py, double cx, double cy, double r, double thick,
        double period, double phase, double angle, double sep, double dotAngle)
    {
        double dx = px - cx, dy = py - cy;
        double ca = Math.Cos(angle), sa = Math.Sin(angle);
        double ux = ca * dx + sa * dy, uy = -sa * dx + ca * dy; // tilted frame
        double dist = Math.Sqrt(dx * dx + dy * dy);
        bool inBox = Math.Abs(dx) <= r && Math.Abs(dy) <= r;
        double edge;
        switch (label)
        {
            case 0: // disc
                edge = r - dist;
                break;
            case 1: // axis-aligned square
                edge = r - Math.Max(Math.Abs(dx), Math.Abs(dy));
                break;
            case 2: // triangle, apex down (tilted)
                {
                    double h = 1.5 * r;
                    double top = uy + h / 2;          // >0 below the apex line
                    double bottom = h / 2 - uy;       // >0 above the base
                    double side = (h - (uy + h / 2)) * 0.6 - Math.Abs(ux); // width grows downwards
                    edge = Math.Min(Math.Min(top, bottom), side);
                    break;
                }
            case 3: // horizontal stripes in a box
                edge = inBox ? StripeEdge(py + phase, period) : -1;
                break;
            case 4: // vertical stripes in a box
                edge = inBox ? StripeEdge(px + phase, period) : -1;
                break;
            case 5: // ring
                edge = thick - Math.Abs(dist - r + thick);
                break;
            case 6: // cross (tilted plus)
                edge = Math.Max(Math.Min(thick - Math.Abs(ux), r - Math.Abs(uy)), Math.Min(thick - Math.Abs(uy), r - Math.Abs(ux)));
                break;
            case 7: // diagonal stripes in a box
                edge = inBox ? StripeEdge((px + py) / Math.Sqrt(2) + phase, period) : -1;
                break;
            case 8: // two dots
                {
                    double ex = Math.Cos(dotAngle) * sep, ey = Math.Sin(dotAngle) * sep;
                    double d1 = Math.Sqrt((dx - ex) * (dx - ex) + (dy - ey) * (dy - ey));
                    double d2 = Math.Sqrt((dx + ex) * (dx + ex) + (dy + ey) * (dy + ey));
                    edge = r * 0.45 - Math.Min(d1, d2);
                    break;
                }
            default: // checkerboard in a box
                {
                    if (!inBox) { edge = -1; break; }
                    double a = StripeEdge(px + phase, period), b = StripeEdge(py + phase, period);
                    edge = Math.Sign(a) == Math.Sign(b) ? Math.Min(Math.Abs(a), Math.Abs(b)) : -Math.Min(Math.Abs(a), Math.Abs(b));
                    break;
                }
        }
        return Math.Clamp(edge + 0.5, 0, 1);
    }

    /// <summary>Signed distance-like value: positive on the first half of each period.</summary>
    private static double StripeEdge(double t, double period)
    {
        double m = ((t % period) + period) % period;
        double half = period / 2;
        return m < half ? Math.Min(m, half - m) : -Math.Min(m - half, period - m);
    }

    private static double Blob(double px, double py, double bx, double by) =>
        Math.Exp(-((px - bx) * (px - bx) + (py - by) * (py - by)) / 120.0);

    private static double[] RandomColour(Draws d) => [d.Range(0.05, 0.95), d.Range(0.05, 0.95), d.Range(0.05, 0.95)];

    private static double Luma(double[] c) => 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];

    private static double Gaussian(Draws d)
    {
        double u1 = Math.Max(d.Next(), 1e-12), u2 = d.Next();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }
}
