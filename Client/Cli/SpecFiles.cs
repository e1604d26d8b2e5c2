using Elastic.Checkpoints.HuggingFace;
using Elastic.Jobs;

namespace Elastic.Cli;

/// <summary>A spec file as the commands that run or plan it need it: parsed, and its model taken from model.init.from when it imports one.</summary>
internal static class SpecFiles
{
    public static TrainingSpec Read(string path)
    {
        var (spec, errors) = ModelImport.Resolve(SpecJson.Read(path));
        return errors.Count > 0 ? throw new SpecValidationException(errors) : spec;
    }
}
