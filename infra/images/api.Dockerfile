# The API and CLI image: the published `elastic` CLI; the Deployment runs `elastic serve` (the HTTP API and dashboard,
# an Orleans client of the silos). Build from the repository root:
#   infra/images/publish.sh && docker build -f infra/images/api.Dockerfile -t elastic-api .
FROM mcr.microsoft.com/dotnet/aspnet:10.0-noble
WORKDIR /app
COPY artifacts/publish/cli/ ./
USER $APP_UID
EXPOSE 8080
ENTRYPOINT ["dotnet", "elastic.dll"]
CMD ["serve", "--urls", "http://0.0.0.0:8080"]
