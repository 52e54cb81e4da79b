using CudaSwa.Devices;
using CudaSwa.Layers;
using CudaSwa.Tensors;

namespace CudaSwa.Averaging;

/// <summary>
/// SWA, EMA, SWAG or LAWA of a network's weights over its flat parameter arena: one fused pass per update,
/// the CPU twin of the CUDA kernel. The averaged model is the same network bound to
/// <see cref="Parameters"/> and <see cref="Buffers"/> (see <see cref="Bind"/>): no copy of the
/// network object, and activation memory is shared with training.
/// </summary>
public sealed class WeightAverager : IDisposable
{
    private readonly MultiBufferAverager _averager;
    private readonly IAveragingState? _state;
    private readonly Backend? _host;
    private readonly Arena? _hostParameters, _hostBuffers, _hostStaging, _hostStagingBuffers;
    private Arena? _deviceParameters;
    private readonly Arena _deviceBuffers;
    /// <summary>The current weights and the mean that a method with state (SWAG, LAWA) updates itself (the others use the fused pairs).</summary>
    private readonly Tensor _current, _mean;
    private Arena? _sampleParameters, _sampleBuffers;

    /// <summary>
    /// Allocates the average (on the device, or in host memory under <see cref="AveragePlacement.Host"/>)
    /// and the averaged model's BN-statistics arena, and prepares the fused update over the network's
    /// own parameter arena. Nothing is averaged until the first <see cref="Update"/>.
    /// </summary>
    public WeightAverager(Network network, AveragingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(network);
        Network = network;
        Options = options ?? new AveragingOptions();
        Options.Validate();
        Method = Options.CreateMethod();
        _deviceBuffers = network.CreateBufferArena();
        var pairs = new List<AveragePair>();
        if (Options.Placement == AveragePlacement.Device || network.Backend.MemoryIsHostVisible)
        {
            _deviceParameters = network.CreateParameterArena();
            (_current, _mean) = (network.OwnParameters.All, _deviceParameters.All);
            _state = Method.CreateState(network.Backend, _mean);
            if (_state is null) pairs.Add(new AveragePair(_deviceParameters.All, network.OwnParameters.All));
            if (Options.AverageBatchNormStatistics) pairs.Add(new AveragePair(_deviceBuffers.All, network.OwnBuffers.All));
            _averager = new MultiBufferAverager(network.Backend, pairs, Options);
        }
        else
        {
            // Host placement: the average and a staging copy of the current weights live in host memory.
            _host = BackendFactory.CreateHost();
            _hostParameters = new Arena(network.ParameterLayout, _host);
            _hostStaging = new Arena(network.ParameterLayout, _host);
            _hostBuffers = new Arena(network.BufferLayout, _host);
            _hostStagingBuffers = new Arena(network.BufferLayout, _host);
            (_current, _mean) = (_hostStaging.All, _hostParameters.All);
            _state = Method.CreateState(_host, _mean);
            if (_state is null) pairs.Add(new AveragePair(_hostParameters.All, _hostStaging.All));
            if (Options.AverageBatchNormStatistics) pairs.Add(new AveragePair(_hostBuffers.All, _hostStagingBuffers.All));
            _averager = new MultiBufferAverager(_host, pairs, Options);
        }
    }

    /// <summary>The averaging method (SWA, EMA, SWAG, LAWA) as a component: its update weight, state, name and descriptions.</summary>
    internal AveragingMethod Method { get; }

    /// <summary>The averaged model's name in tables and metrics columns: "SWA", "EMA", "LAWA" (SWAG's mean is "SWA").</summary>
    public string AverageName => Method.AverageName;

    /// <summary>What the method keeps beyond the average (SWAG's moments, LAWA's ring), which checkpoints save and restore; null for SWA and EMA.</summary>
    internal IAveragingState? State => _state;

    /// <summary>SWAG's mean of squares and deviation ring (null unless the kind is <see cref="AveragingKind.Swag"/>); the mean is <see cref="Parameters"/>. Its samples (<see cref="BindSwagSample"/>) are what SWAG adds to the public surface.</summary>
    public SwagMoments? Swag => _state as SwagMoments;

    /// <summary>The network whose own weights are averaged.</summary>
    public Network Network { get; }
    /// <summary>Kind, decay and placement of the average.</summary>
    public AveragingOptions Options { get; }

    /// <summary>Models averaged so far (counted on the host).</summary>
    public long Count => _averager.Count;

    /// <summary>Folds the network's current weights into the average.</summary>
    public void Update()
    {
        if (_host is not null)
        {
            var staging = _hostStaging!.All;
            Network.Backend.Download<float>(Network.OwnParameters.All, _host!.HostSpan(staging));
            if (Options.AverageBatchNormStatistics)
                Network.Backend.Download<float>(Network.OwnBuffers.All, _host!.HostSpan(_hostStagingBuffers!.All));
        }
        _state?.Collect(_current, _mean);
        _averager.Update();
    }

    /// <summary>
    /// Writes SWAG sample <paramref name="sample"/> (see <see cref="SwagMoments.Sample"/>) into a
    /// parameter arena of its own and binds the network to it until the returned scope is disposed,
    /// with a BN-statistics arena of its own (recompute them before evaluating; the SWA model's
    /// statistics stay untouched) — or, when BN statistics are averaged, the averaged ones.
    /// </summary>
    public Network.BindingScope BindSwagSample(int sample, ulong seed, double scale = SwagMoments.DefaultScale)
    {
        if (Swag is null) throw new InvalidOperationException($"Samples need SWAG averaging; this averager keeps {Options.Kind}.");
        _sampleParameters ??= Network.CreateParameterArena();
        // Statistics: the sample's own arena (to be recomputed), or, when BN statistics are averaged
        // with the weights instead of recomputed, the averaged ones.
        _sampleBuffers ??= Options.AverageBatchNormStatistics ? null : Network.CreateBufferArena();
        if (_host is null) Swag.Sample(_deviceParameters!.All, _sampleParameters.All, sample, seed, scale);
        else
        {
            Swag.Sample(_hostParameters!.All, _hostStaging!.All, sample, seed, scale);
            _sampleParameters.FromHost(_host.HostSpan(_hostStaging.All));
        }
        return Network.Bind(_sampleParameters, _sampleBuffers ?? Buffers);
    }

    /// <summary>The averaged parameters on the network's device (uploaded from the host first under host placement).</summary>
    public Arena Parameters
    {
        get
        {
            if (_host is null) return _deviceParameters!;
            _deviceParameters ??= Network.CreateParameterArena();
            _deviceParameters.FromHost(_host!.HostSpan(_hostParameters!.All));
            return _deviceParameters;
        }
    }

    /// <summary>BN statistics of the averaged model: recomputed (the default) or averaged.</summary>
    public Arena Buffers
    {
        get
        {
            if (_host is not null && Options.AverageBatchNormStatistics)
                _deviceBuffers.FromHost(_host!.HostSpan(_hostBuffers!.All));
            return _deviceBuffers;
        }
    }

    /// <summary>Binds the network to the averaged weights until the returned scope is disposed.</summary>
    public Network.BindingScope Bind() => Network.Bind(Parameters, Buffers);

    /// <summary>The averaged parameters as host values (for checkpoints).</summary>
    public float[] ParametersToHost() => _host is null ? _deviceParameters!.ToHost() : _host!.HostSpan(_hostParameters!.All).ToArray();

    /// <summary>Reloads a saved average and its count (resume).</summary>
    public void Restore(ReadOnlySpan<float> parameters, ReadOnlySpan<float> buffers, long count)
    {
        if (_host is null)
        {
            _deviceParameters!.FromHost(parameters);
        }
        else
        {
            parameters.CopyTo(_host!.HostSpan(_hostParameters!.All));
            buffers.CopyTo(_host!.HostSpan(_hostBuffers!.All));
        }
        _deviceBuffers.FromHost(buffers);
        _averager.Restore(count);
    }

    /// <summary>Frees the averaged arenas and the prepared update.</summary>
    public void Dispose()
    {
        _averager.Dispose();
        (_state as IDisposable)?.Dispose();
        _sampleParameters?.Dispose();
        _sampleBuffers?.Dispose();
        _deviceParameters?.Dispose();
        _deviceBuffers.Dispose();
        _hostParameters?.Dispose();
        _hostStaging?.Dispose();
        _hostBuffers?.Dispose();
        _hostStagingBuffers?.Dispose();
        _host?.Dispose();
    }
}
