using System.Collections;
using Razorvine.Pickle;
using Razorvine.Pickle.Objects;

namespace CudaSwa.Data;

/// <summary>
/// Reads the CIFAR "python version" that torchvision downloads (cifar-10-batches-py: data_batch_1..5
/// and test_batch; cifar-100-python: train and test). Each file is a pickled dict whose <c>data</c>
/// is a numpy uint8 array of N×3072 rows in the binary version's pixel order (1024 red, then green,
/// then blue) and whose <c>labels</c> (CIFAR-10) or <c>fine_labels</c> (CIFAR-100) is a list of N
/// class indices — so both versions give the same images and labels. Unpickling here builds data
/// only, it never runs code: numpy arrays and dtypes are rebuilt by the two constructors below,
/// any other class becomes a plain dictionary, which the checks then refuse.
/// </summary>
public static class CifarPython
{
    /// <summary>The CIFAR-10 training files of the python version.</summary>
    public static readonly string[] Cifar10TrainFiles = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"];
    /// <summary>The CIFAR-10 test file of the python version.</summary>
    public const string Cifar10TestFile = "test_batch";
    /// <summary>The CIFAR-100 training file of the python version.</summary>
    public const string Cifar100TrainFile = "train";
    /// <summary>The CIFAR-100 test file of the python version.</summary>
    public const string Cifar100TestFile = "test";

    static CifarPython()
    {
        // numpy writes arrays as _reconstruct(ndarray, (0,), b'b') + __setstate__, dtypes as dtype('u1', ...) + __setstate__;
        // numpy 2 moved the module to numpy._core.
        foreach (var module in new[] { "numpy.core.multiarray", "numpy._core.multiarray" })
            Unpickler.registerConstructor(module, "_reconstruct", new NumpyArrayConstructor());
        Unpickler.registerConstructor("numpy", "dtype", new NumpyDtypeConstructor());
    }

    /// <summary>
    /// Reads pickled batch files already in memory (<c>Name</c> is what errors call each one) into one
    /// dataset called <paramref name="name"/>, in order; throws <see cref="DataFormatException"/>
    /// naming the file for anything that is not a CIFAR batch of <paramref name="kind"/>.
    /// </summary>
    public static ImageDataset ReadBatches(IEnumerable<(string Name, byte[] Bytes)> files, CifarKind kind, string name)
    {
        int classes = CifarBinary.Classes(kind);
        string labelKey = kind == CifarKind.Cifar10 ? "labels" : "fine_labels";
        var images = new List<byte[]>();
        var labels = new List<int>();
        foreach (var (file, bytes) in files)
        {
            var batch = Unpickle(file, bytes);
            var data = Entry(batch, "data", file) as NumpyArray
                ?? throw new DataFormatException($"'{file}': its 'data' is not a numpy array (not a CIFAR python batch?).");
            if (data.Dtype != "u1" || data.Shape.Length != 2 || data.Shape[1] != CifarBinary.PixelBytes)
                throw new DataFormatException($"'{file}': 'data' is a {data.Dtype} array of shape ({string.Join(", ", data.Shape)}), expected uint8 of shape (N, {CifarBinary.PixelBytes}).");
            if (data.Bytes.Length != (long)data.Shape[0] * CifarBinary.PixelBytes)
                throw new DataFormatException($"'{file}': 'data' holds {data.Bytes.Length} bytes for shape ({data.Shape[0]}, {data.Shape[1]}) (truncated?).");
            if (Entry(batch, labelKey, file) is not IList list)
                throw new DataFormatException($"'{file}': '{labelKey}' is not a list.");
            if (list.Count != data.Shape[0])
                throw new DataFormatException($"'{file}': {list.Count} labels for {data.Shape[0]} images.");
            for (int i = 0; i < list.Count; i++)
            {
                long label = list[i] switch { int v => v, long v => v, _ => -1 };
                if (label < 0 || label >= classes)
                    throw new DataFormatException($"'{file}': label {i} is {list[i] ?? "None"}, outside 0..{classes - 1}.");
                labels.Add((int)label);
            }
            images.Add(data.Bytes);
        }
        return CifarBinary.Join(images, labels, classes, name);
    }

    private static IDictionary Unpickle(string file, byte[] bytes)
    {
        object result;
        try
        {
            using var unpickler = new Unpickler();
            result = unpickler.loads(bytes);
        }
        catch (Exception e) when (e is PickleException or InvalidOpcodeException or InvalidCastException or InvalidDataException
                                      or EndOfStreamException or IndexOutOfRangeException or ArgumentException or NotSupportedException)
        {
            throw new DataFormatException($"'{file}' is not a readable pickle of a CIFAR batch: {e.Message}");
        }
        return result as IDictionary ?? throw new DataFormatException($"'{file}' holds a {result?.GetType().Name ?? "None"}, not the dict of a CIFAR python batch.");
    }

    /// <summary>The dict's value for <paramref name="key"/>, whether the file wrote its keys as text (Python 2) or bytes.</summary>
    private static object? Entry(IDictionary batch, string key, string file)
    {
        foreach (DictionaryEntry e in batch)
        {
            string? k = e.Key switch { string s => s, byte[] b => System.Text.Encoding.Latin1.GetString(b), _ => null };
            if (k == key) return e.Value;
        }
        throw new DataFormatException($"'{file}' has no '{key}' entry (not a CIFAR python batch of this dataset?).");
    }

    /// <summary>The bytes of a Python 2 str (one char per byte) or a Python 3 bytes object.</summary>
    private static byte[] RawBytes(object? value, string what) => value switch
    {
        byte[] b => b,
        string s => System.Text.Encoding.Latin1.GetBytes(s),
        _ => throw new PickleException($"{what} is a {value?.GetType().Name ?? "None"}, not bytes"),
    };

    private static int AsInt(object? value) => value switch
    {
        int v => v,
        long v => checked((int)v),
        _ => throw new PickleException($"expected an integer, got {value?.GetType().Name ?? "None"}"),
    };

    /// <summary>A numpy array as its pickled state gives it: shape, dtype code and raw C-order bytes.</summary>
    private sealed class NumpyArray
    {
        internal int[] Shape { get; private set; } = [];
        internal string Dtype { get; private set; } = "";
        internal byte[] Bytes { get; private set; } = [];

        /// <summary>numpy's state: (version, shape, dtype, is_fortran, raw data).</summary>
        public void __setstate__(object[] state)
        {
            if (state.Length != 5) throw new PickleException($"a numpy array state has 5 fields, this one {state.Length}");
            Shape = ((object[])state[1]).Select(AsInt).ToArray();
            Dtype = (state[2] as NumpyDtype)?.Code ?? throw new PickleException("a numpy array without a dtype");
            if (state[3] is true && Shape.Length > 1) throw new PickleException("a Fortran-order array (CIFAR batches are C order)");
            Bytes = RawBytes(state[4], "the array's data");
        }
    }

    /// <summary>A numpy dtype: its code ('u1', 'i8', ...) and byte order.</summary>
    private sealed class NumpyDtype(string code)
    {
        internal string Code { get; } = code;

        /// <summary>numpy's state: (version, byte order, ...); the byte order does not matter for one-byte codes.</summary>
        public void __setstate__(object[] state) { }
    }

    private sealed class NumpyArrayConstructor : IObjectConstructor
    {
        public object construct(object[] args)
        {
            if (args.Length < 1 || args[0] is not ClassDictConstructor { module: "numpy", name: "ndarray" })
                throw new PickleException("_reconstruct of something other than numpy.ndarray");
            return new NumpyArray();
        }
    }

    private sealed class NumpyDtypeConstructor : IObjectConstructor
    {
        public object construct(object[] args) =>
            new NumpyDtype(args.Length > 0 && args[0] is string code ? code : throw new PickleException("a numpy dtype without a type code"));
    }
}
