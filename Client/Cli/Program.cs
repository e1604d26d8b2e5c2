using Elastic.Cli;

return await ElasticCommandLine.Create().Parse(args).InvokeAsync();
