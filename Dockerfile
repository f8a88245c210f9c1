# Production image: the billflow binary (api, worker, migrate, admin commands)
# plus Debian's Chromium headless shell for PDFs. The Temporal server is not in it.
# curl is there for docker-compose.yml's healthcheck on the API (GET /readyz):
# bookworm-slim has neither curl nor wget.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/billflow ./cmd/billflow

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends chromium-headless-shell fonts-dejavu-core ca-certificates tzdata curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --home /app billflow
COPY --from=build /out/billflow /usr/local/bin/billflow
USER billflow
ENV CHROMIUM_PATH=/usr/lib/chromium/chromium-headless-shell HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["billflow"]
CMD ["api"]
