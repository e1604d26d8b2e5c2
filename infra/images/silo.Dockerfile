# The silo image: the published silo host with libtorch for CUDA 12.8 (the NVIDIA driver comes from the node through
# the NVIDIA device plugin; the CUDA runtime libraries ship inside libtorch's package). Build from the repository root:
#   infra/images/publish.sh --cuda && docker build -f infra/images/silo.Dockerfile -t elastic-silo .
# (infra/images/publish.sh without --cuda makes a CPU-only image for overlays/local.)
FROM mcr.microsoft.com/dotnet/aspnet:10.0-noble
# libtorch's OpenMP runtime.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
WORKDIR /app
COPY artifacts/publish/silo/ ./
USER $APP_UID
# Orleans silo-to-silo, gateway, data plane, probes (infra/k8s/base/silo.yaml names them).
EXPOSE 11111 30000 40000 8081
ENTRYPOINT ["dotnet", "Elastic.Silo.dll"]
