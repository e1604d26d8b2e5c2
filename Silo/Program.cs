// The silo host. This first version runs a single localhost silo; device discovery, real clustering
// (Azure Table, Redis) and the data-plane endpoint are configured here as they arrive.
using Microsoft.Extensions.Hosting;

var builder = Host.CreateApplicationBuilder(args);
builder.UseOrleans(silo => silo.UseLocalhostClustering());
await builder.Build().RunAsync();
