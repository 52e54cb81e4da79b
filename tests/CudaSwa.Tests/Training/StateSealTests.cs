using CudaSwa.Data;
using CudaSwa.Training;
using NUnit.Framework;

namespace CudaSwa.Tests.Training;

/// <summary>The state seal: any changed byte of a sealed state is found, including in the seal itself; only states from before seals may lack one.</summary>
public class StateSealTests
{
    private static string Sealed() => CheckpointIntegrity.Seal(new TrainingState { NextEpoch = 3, Files = new Dictionary<string, FileDigest> { ["model.safetensors"] = new(10, new string('a', 32)) } }.ToJson());

    [Test]
    public void Integrity_EveryFlippedBitOfASealedStateIsFound()
    {
        string text = Sealed();
        Assert.That(CheckpointIntegrity.CheckSeal(text, "state.json"), Is.True, "intact");
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        int found = 0;
        for (int i = 0; i < bytes.Length; i++)
            for (int bit = 0; bit < 8; bit++)
            {
                var damaged = (byte[])bytes.Clone();
                damaged[i] ^= (byte)(1 << bit);
                string t = System.Text.Encoding.UTF8.GetString(damaged);
                try { CheckpointIntegrity.CheckSeal(t, "state.json"); }
                catch (DataFormatException) { found++; continue; }
                Assert.Fail($"byte {i} bit {bit} ('{(char)bytes[i]}' -> '{(char)damaged[i]}') was not found");
            }
        Assert.That(found, Is.EqualTo(8 * bytes.Length));
    }

    [Test]
    public void Integrity_OnlyAStateFromBeforeSealsMayHaveNone()
    {
        var legacy = new TrainingState { NextEpoch = 3 }.ToJson();
        Assert.That(CheckpointIntegrity.CheckSeal(legacy, "state.json"), Is.False, "read as before");
        string withFiles = System.Text.RegularExpressions.Regex.Replace(Sealed(), ",\\s*\"state_xxh128\": \"[0-9a-f]{32}\"", "");
        Assert.Throws<DataFormatException>(() => CheckpointIntegrity.CheckSeal(withFiles, "state.json"), "a state with digests has a seal");
    }
}
