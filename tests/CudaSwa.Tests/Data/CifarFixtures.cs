using System.Buffers.Binary;
using System.Formats.Tar;
using System.IO.Compression;
using System.Text;
using CudaSwa.Data;

namespace CudaSwa.Tests.Data;

/// <summary>
/// Generated CIFAR files in every form cudaswa reads: the binary records, torchvision's pickled
/// python batches (written opcode by opcode the way Python's pickler writes numpy arrays, so the
/// reader is checked against the format, not against itself), and .tar.gz archives of either.
/// </summary>
public static class CifarFixtures
{
    /// <summary>Random images with random labels in 0..classes-1 (every class present when n allows).</summary>
    public static ImageDataset RandomSet(int n, int classes, Random rng, string name)
    {
        var images = new byte[n * CifarBinary.PixelBytes];
        rng.NextBytes(images);
        var labels = Enumerable.Range(0, n).Select(i => i < classes ? i : rng.Next(classes)).OrderBy(_ => rng.Next()).ToArray();
        return new ImageDataset(name, images, labels, classes);
    }

    /// <summary>The binary version in <paramref name="dir"/>: CIFAR-10 over five training files, CIFAR-100 with coarse label = fine / 5.</summary>
    public static void WriteBinary(string dir, CifarKind kind, ImageDataset train, ImageDataset test)
    {
        Directory.CreateDirectory(dir);
        if (kind == CifarKind.Cifar10) { CifarBinary.WriteCifar10(dir, train, test); return; }
        File.WriteAllBytes(Path.Combine(dir, CifarBinary.Cifar100TrainFile), Records100(train));
        File.WriteAllBytes(Path.Combine(dir, CifarBinary.Cifar100TestFile), Records100(test));
    }

    private static byte[] Records100(ImageDataset d)
    {
        var bytes = new byte[d.Count * (2 + CifarBinary.PixelBytes)];
        for (int i = 0; i < d.Count; i++)
        {
            int at = i * (2 + CifarBinary.PixelBytes);
            bytes[at] = (byte)(d.Labels[i] / 5);
            bytes[at + 1] = (byte)d.Labels[i];
            d.Image(i).CopyTo(bytes.AsSpan(at + 2));
        }
        return bytes;
    }

    /// <summary>
    /// The python version in <paramref name="dir"/>. <paramref name="python3"/>: keys and data as
    /// Python 3 writes them (unicode keys, bytes data, protocol 3) instead of Python 2's str (the
    /// official files).
    /// </summary>
    public static void WritePython(string dir, CifarKind kind, ImageDataset train, ImageDataset test, bool python3 = false)
    {
        Directory.CreateDirectory(dir);
        if (kind == CifarKind.Cifar10)
        {
            for (int f = 0; f < 5; f++)
            {
                int start = train.Count * f / 5, end = train.Count * (f + 1) / 5;
                File.WriteAllBytes(Path.Combine(dir, CifarPython.Cifar10TrainFiles[f]), Batch(kind, train, start, end, python3));
            }
            File.WriteAllBytes(Path.Combine(dir, CifarPython.Cifar10TestFile), Batch(kind, test, 0, test.Count, python3));
        }
        else
        {
            File.WriteAllBytes(Path.Combine(dir, CifarPython.Cifar100TrainFile), Batch(kind, train, 0, train.Count, python3));
            File.WriteAllBytes(Path.Combine(dir, CifarPython.Cifar100TestFile), Batch(kind, test, 0, test.Count, python3));
        }
    }

    /// <summary>One pickled batch dict, as cPickle (protocol 2) or Python 3 (protocol 3) writes it with numpy's reduce.</summary>
    public static byte[] Batch(CifarKind kind, ImageDataset d, int start, int end, bool python3 = false, string dtype = "u1", int? rowsInShape = null)
    {
        var p = new PickleBytes(python3);
        p.Op(0x80); p.Op((byte)(python3 ? 3 : 2));          // PROTO
        p.Op((byte)'}');                                     // EMPTY_DICT
        p.Op((byte)'(');                                     // MARK
        p.Str("batch_label"); p.Str($"generated batch {start}..{end}");
        var labels = d.Labels.Skip(start).Take(end - start).ToArray();
        if (kind == CifarKind.Cifar10) { p.Str("labels"); p.IntList(labels); }
        else
        {
            p.Str("fine_labels"); p.IntList(labels);
            p.Str("coarse_labels"); p.IntList(labels.Select(l => l / 5).ToArray());
        }
        p.Str("data");
        p.NumpyArray(d.Images.AsSpan(start * CifarBinary.PixelBytes, (end - start) * CifarBinary.PixelBytes).ToArray(),
                     rowsInShape ?? end - start, CifarBinary.PixelBytes, dtype);
        p.Op((byte)'u');                                     // SETITEMS
        p.Op((byte)'.');                                     // STOP
        return p.ToArray();
    }

    /// <summary>A .tar.gz of the files in <paramref name="dir"/> under <paramref name="folder"/>/, plus any extra entries given.</summary>
    public static void TarGz(string archive, string dir, string folder, params TarEntry[] extra)
    {
        using var file = File.Create(archive);
        using var gzip = new GZipStream(file, CompressionLevel.Fastest);
        using var tar = new TarWriter(gzip, TarEntryFormat.Pax);
        tar.WriteEntry(new PaxTarEntry(TarEntryType.Directory, folder + "/"));
        foreach (var path in Directory.GetFiles(dir).Order(StringComparer.Ordinal))
            tar.WriteEntry(path, $"{folder}/{Path.GetFileName(path)}");
        foreach (var e in extra) tar.WriteEntry(e);
    }

    /// <summary>Pickle opcodes, written by hand (the subset numpy arrays of CIFAR batches need).</summary>
    private sealed class PickleBytes(bool python3)
    {
        private readonly MemoryStream _s = new();

        public void Op(byte b) => _s.WriteByte(b);
        public byte[] ToArray() => _s.ToArray();

        private void Int32(int v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteInt32LittleEndian(b, v); _s.Write(b); }

        public void Int(int v)
        {
            if (v is >= 0 and < 256) { Op((byte)'K'); Op((byte)v); }  // BININT1
            else { Op((byte)'J'); Int32(v); }                         // BININT
        }

        /// <summary>A text string: Python 2's str (SHORT_BINSTRING) or Python 3's str (BINUNICODE).</summary>
        public void Str(string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s);
            if (python3) { Op((byte)'X'); Int32(bytes.Length); }
            else { Op((byte)'U'); Op((byte)bytes.Length); }
            _s.Write(bytes);
        }

        /// <summary>Raw bytes: Python 2's str (BINSTRING) or Python 3's bytes (BINBYTES).</summary>
        public void Bytes(byte[] data)
        {
            Op((byte)(python3 ? 'B' : 'T'));
            Int32(data.Length);
            _s.Write(data);
        }

        public void IntList(int[] values)
        {
            Op((byte)']');                                   // EMPTY_LIST
            if (values.Length == 0) return;
            Op((byte)'(');
            foreach (var v in values) Int(v);
            Op((byte)'e');                                   // APPENDS
        }

        private void Global(string module, string name)
        {
            Op((byte)'c');
            _s.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
        }

        /// <summary>numpy's ndarray.__reduce__: _reconstruct(ndarray, (0,), b'b'), then BUILD with (1, shape, dtype, False, data).</summary>
        public void NumpyArray(byte[] data, int rows, int cols, string dtype)
        {
            Global("numpy.core.multiarray", "_reconstruct");
            Global("numpy", "ndarray");
            Int(0); Op(0x85);                                // (0,) TUPLE1
            if (python3) { Op((byte)'C'); Op(1); Op((byte)'b'); } else { Op((byte)'U'); Op(1); Op((byte)'b'); }
            Op(0x87);                                        // TUPLE3
            Op((byte)'R');                                   // REDUCE
            Op((byte)'(');                                   // MARK: the state tuple
            Int(1);
            Int(rows); Int(cols); Op(0x86);                  // shape TUPLE2
            Global("numpy", "dtype");
            Str(dtype); Int(0); Int(1); Op(0x87); Op((byte)'R');
            Op((byte)'('); Int(3); Str("|"); Op((byte)'N'); Op((byte)'N'); Op((byte)'N'); Int(-1); Int(-1); Int(0); Op((byte)'t');
            Op((byte)'b');                                   // BUILD the dtype
            Op(0x89);                                        // NEWFALSE: C order
            Bytes(data);
            Op((byte)'t');                                   // TUPLE
            Op((byte)'b');                                   // BUILD the array
        }
    }
}
