using System.Runtime.Intrinsics;

namespace CudaSwa.Cpu.Simd;

// The arithmetic of one elementwise op, written once per width with the SAME operations in the
// same order (a scalar body and Vector256/Vector512 bodies), in the style of .NET's
// TensorPrimitives operators. Structs carry the op's parameters (a learning rate, a scale); the
// drivers in Elementwise and Moments are generic over them, so the JIT specialises and inlines
// each op into one loop per width. Keep bodies free of FMA contraction unless the CUDA twin uses
// fmaf too: the CPU twin must round like its kernel.

/// <summary>y = f(x).</summary>
internal interface IUnaryOperator
{
    float Invoke(float x);
    Vector256<float> Invoke(Vector256<float> x);
    Vector512<float> Invoke(Vector512<float> x);
}

/// <summary>y = f(a, b).</summary>
internal interface IBinaryOperator
{
    float Invoke(float a, float b);
    Vector256<float> Invoke(Vector256<float> a, Vector256<float> b);
    Vector512<float> Invoke(Vector512<float> a, Vector512<float> b);
}

/// <summary>y = f(a, b, c).</summary>
internal interface ITernaryOperator
{
    float Invoke(float a, float b, float c);
    Vector256<float> Invoke(Vector256<float> a, Vector256<float> b, Vector256<float> c);
    Vector512<float> Invoke(Vector512<float> a, Vector512<float> b, Vector512<float> c);
}

/// <summary>y = f(a, b, c, d).</summary>
internal interface IQuaternaryOperator
{
    float Invoke(float a, float b, float c, float d);
    Vector256<float> Invoke(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d);
    Vector512<float> Invoke(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d);
}

/// <summary>(s, t) = f(s, t, x): two state streams updated in place from one input (SGD: weights and velocity from the gradient).</summary>
internal interface IStateOperator
{
    (float S, float T) Invoke(float s, float t, float x);
    (Vector256<float> S, Vector256<float> T) Invoke(Vector256<float> s, Vector256<float> t, Vector256<float> x);
    (Vector512<float> S, Vector512<float> T) Invoke(Vector512<float> s, Vector512<float> t, Vector512<float> x);
}

/// <summary>(s, t, y) = f(s, t, x): two state streams updated in place from one input, and one output stream written (SWAG's collection: mean, mean of squares, deviation).</summary>
internal interface IStateOutputOperator
{
    (float S, float T, float Y) Invoke(float s, float t, float x);
    (Vector256<float> S, Vector256<float> T, Vector256<float> Y) Invoke(Vector256<float> s, Vector256<float> t, Vector256<float> x);
    (Vector512<float> S, Vector512<float> T, Vector512<float> Y) Invoke(Vector512<float> s, Vector512<float> t, Vector512<float> x);
}

// Two running sums over a run of one to three input streams (BatchNorm's moments): Accumulate
// folds one position into float vector accumulators (one per lane), the scalar form into doubles
// for the tail.

/// <summary>Two sums over one stream.</summary>
internal interface IUnaryMoments
{
    void Accumulate(ref Vector256<float> s, ref Vector256<float> t, Vector256<float> a);
    void Accumulate(ref Vector512<float> s, ref Vector512<float> t, Vector512<float> a);
    void Accumulate(ref double s, ref double t, float a);
}

/// <summary>Two sums over two streams.</summary>
internal interface IBinaryMoments
{
    void Accumulate(ref Vector256<float> s, ref Vector256<float> t, Vector256<float> a, Vector256<float> b);
    void Accumulate(ref Vector512<float> s, ref Vector512<float> t, Vector512<float> a, Vector512<float> b);
    void Accumulate(ref double s, ref double t, float a, float b);
}

/// <summary>Two sums over three streams.</summary>
internal interface ITernaryMoments
{
    void Accumulate(ref Vector256<float> s, ref Vector256<float> t, Vector256<float> a, Vector256<float> b, Vector256<float> c);
    void Accumulate(ref Vector512<float> s, ref Vector512<float> t, Vector512<float> a, Vector512<float> b, Vector512<float> c);
    void Accumulate(ref double s, ref double t, float a, float b, float c);
}

/// <summary>acc + f(x): the accumulating form of a unary op (gradients that add into a buffer).</summary>
internal readonly struct Accumulating<TOp>(TOp op) : IBinaryOperator where TOp : struct, IUnaryOperator
{
    private readonly TOp _op = op;
    public float Invoke(float acc, float x) => acc + _op.Invoke(x);
    public Vector256<float> Invoke(Vector256<float> acc, Vector256<float> x) => acc + _op.Invoke(x);
    public Vector512<float> Invoke(Vector512<float> acc, Vector512<float> x) => acc + _op.Invoke(x);
}

/// <summary>acc + f(a, b).</summary>
internal readonly struct AccumulatingBinary<TOp>(TOp op) : ITernaryOperator where TOp : struct, IBinaryOperator
{
    private readonly TOp _op = op;
    public float Invoke(float acc, float a, float b) => acc + _op.Invoke(a, b);
    public Vector256<float> Invoke(Vector256<float> acc, Vector256<float> a, Vector256<float> b) => acc + _op.Invoke(a, b);
    public Vector512<float> Invoke(Vector512<float> acc, Vector512<float> a, Vector512<float> b) => acc + _op.Invoke(a, b);
}

/// <summary>acc + f(a, b, c).</summary>
internal readonly struct AccumulatingTernary<TOp>(TOp op) : IQuaternaryOperator where TOp : struct, ITernaryOperator
{
    private readonly TOp _op = op;
    public float Invoke(float acc, float a, float b, float c) => acc + _op.Invoke(a, b, c);
    public Vector256<float> Invoke(Vector256<float> acc, Vector256<float> a, Vector256<float> b, Vector256<float> c) => acc + _op.Invoke(a, b, c);
    public Vector512<float> Invoke(Vector512<float> acc, Vector512<float> a, Vector512<float> b, Vector512<float> c) => acc + _op.Invoke(a, b, c);
}
