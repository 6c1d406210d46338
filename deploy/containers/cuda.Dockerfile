# stainless-edge for x86-64 with an NVIDIA GPU (RTX): TensorRT 10 engines from the bundle, ONNX Runtime CPU fallback.
#   docker build -f deploy/containers/cuda.Dockerfile -t stainless-edge:cuda .
#   docker run --rm --gpus all --device /dev/stainless-led --device /dev/video0 --group-add dialout \
#     --group-add video -v /etc/stainless:/etc/stainless -v /var/lib/stainless:/var/lib/stainless \
#     -p 5556:5556 -p 127.0.0.1:5557:5557 stainless-edge:cuda
# Needs the NVIDIA Container Toolkit on the host. The base carries the CUDA runtime and cuDNN; TensorRT
# 10 and pycuda come from PyPI (the `trt` extra) for the image's Python 3.12. Engines are built on first
# start into /var/lib/stainless/models/engines (keep the volume, or the build repeats). Not built here
# (no container engine, no GPU on the development machine).
ARG BASE=nvcr.io/nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04
FROM ${BASE}

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 DEBIAN_FRONTEND=noninteractive
# Ubuntu 24.04: Python 3.12; pycuda builds against the CUDA headers (the -dev packages of the base).
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-dev \
        build-essential cuda-nvcc-12-6 cuda-cudart-dev-12-6 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 990 stainless \
    && useradd --system --uid 990 --gid stainless --groups dialout,video --no-create-home \
       --home-dir /var/lib/stainless --shell /usr/sbin/nologin stainless

WORKDIR /opt/stainless/src
COPY pyproject.toml README.md ./
COPY core core
COPY firmware_bridge firmware_bridge
COPY edge edge
ENV PATH=/usr/local/cuda/bin:${PATH}
RUN python3 -m venv /opt/stainless/venv \
    && /opt/stainless/venv/bin/pip install ".[edge,trt,metrics]" \
    && install -d -o stainless -g stainless -m 0750 /var/lib/stainless /etc/stainless
COPY --chown=stainless:stainless deploy/configs/device.toml /etc/stainless/device.toml

USER stainless
VOLUME ["/var/lib/stainless", "/etc/stainless"]
EXPOSE 5556 5557 9464
ENTRYPOINT ["/opt/stainless/venv/bin/stainless-edge"]
CMD ["run", "--config", "/etc/stainless/device.toml"]
