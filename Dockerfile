# Builds the operator image with a container engine: the manager and the fetch helper, static, on
# distroless nonroot. `make image` builds the same image without one (hack/image, on a base made from
# nothing with the same users and paths); internal/imagetest checks that both describe one image.
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(cat VERSION) --build-arg REVISION=$(git rev-parse HEAD) -t IMG .
ARG BASE_IMAGE=golang:1.26
FROM --platform=${BUILDPLATFORM} ${BASE_IMAGE} AS builder
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=""
ARG REVISION=""

WORKDIR /workspace
COPY go.mod go.sum ./
RUN go mod download

COPY api/ api/
COPY cmd/ cmd/
COPY internal/ internal/

# Cross-compiled on the build platform; GOARCH is left to it unless TARGETARCH is given.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build -trimpath -buildvcs=false \
    -ldflags="-s -w -X github.com/pixxel-space/taskdownload-operator/internal/version.Version=${VERSION} -X github.com/pixxel-space/taskdownload-operator/internal/version.Revision=${REVISION}" \
    -o /workspace/out/ ./cmd ./cmd/fetch && \
    mv /workspace/out/cmd /workspace/out/manager

FROM gcr.io/distroless/static:nonroot
ARG VERSION=""
ARG REVISION=""
ARG CREATED=""
LABEL org.opencontainers.image.title="taskdownload-operator" \
      org.opencontainers.image.description="Publishes signed URLs of platform task outputs to ConfigMaps or Secrets; /fetch downloads them in pods" \
      org.opencontainers.image.source="https://github.com/pixxel-space/taskdownload-operator" \
      org.opencontainers.image.url="https://github.com/pixxel-space/taskdownload-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
WORKDIR /
COPY --from=builder /workspace/out/manager /manager
COPY --from=builder /workspace/out/fetch /fetch
USER 65532:65532

ENTRYPOINT ["/manager"]
