namespace CudaSwa.Averaging;

/// <summary>When to fold the current weights into the average.</summary>
public abstract class AveragingSchedule
{
    /// <summary>After the last iteration of 0-based <paramref name="epoch"/>?</summary>
    public virtual bool AfterEpoch(int epoch) => false;

    /// <summary>After 1-based global step <paramref name="step"/>?</summary>
    public virtual bool AfterStep(long step) => false;

    /// <summary>One line for logs, e.g. "average after every epoch from epoch 161".</summary>
    public abstract string Describe();

    /// <summary>
    /// Every <paramref name="cycleEpochs"/> epochs from swaStart, as the SWA reference code:
    /// after 0-based epoch e when e + 1 >= swaStart and (e + 1 - swaStart) mod c == 0. With c = 1
    /// that is every epoch; with c the cycle length of a cyclical schedule, every cycle end.
    /// </summary>
    public static AveragingSchedule Epochs(int swaStart, int cycleEpochs = 1) => new EpochSchedule(swaStart, cycleEpochs);

    /// <summary>After every k-th step from step <paramref name="startStep"/> (1-based) on.</summary>
    public static AveragingSchedule Steps(long every, long startStep) => new StepSchedule(every, startStep);

    private sealed class EpochSchedule : AveragingSchedule
    {
        private readonly int _start, _cycle;

        public EpochSchedule(int swaStart, int cycleEpochs)
        {
            if (swaStart < 1) throw new ArgumentOutOfRangeException(nameof(swaStart), $"swaStart must be >= 1 (1-based epoch count); got {swaStart}.");
            if (cycleEpochs < 1) throw new ArgumentOutOfRangeException(nameof(cycleEpochs), $"Averaging every {cycleEpochs} epochs is not valid.");
            _start = swaStart;
            _cycle = cycleEpochs;
        }

        public override bool AfterEpoch(int epoch) => epoch + 1 >= _start && (epoch + 1 - _start) % _cycle == 0;

        public override string Describe() => _cycle == 1 ? $"average after every epoch from epoch {_start}" : $"average every {_cycle} epochs (cycle ends) from epoch {_start}";
    }

    private sealed class StepSchedule : AveragingSchedule
    {
        private readonly long _every, _start;

        public StepSchedule(long every, long start)
        {
            if (every < 1) throw new ArgumentOutOfRangeException(nameof(every), $"Averaging every {every} steps is not valid.");
            _every = every;
            _start = Math.Max(1, start);
        }

        public override bool AfterStep(long step) => step >= _start && step % _every == 0;

        public override string Describe() => $"average every {_every} steps from step {_start}";
    }
}
