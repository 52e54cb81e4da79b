using CudaSwa.Cli;

return CliApp.Run(args, CliEnvironment.FromProcess());
