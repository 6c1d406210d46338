# stainless-edge on NVIDIA Jetson (Orin, JetPack 6 / L4T r36): CUDA and TensorRT from the L4T base image.
#   docker build -f deploy/containers/jetson.Dockerfile -t stainless-edge:jetson .      (on the Jetson)
#   docker run --rm --runtime nvidia --device /dev/stainless-led --device /dev/video0 --group-add dialout \
#     --group-add video -v /etc/stainless:/etc/stainless -v /var/lib/stainless:/var/lib/stainless \
#     -p 5556:5556 -p 127.0.0.1:5557:5557 stainless-edge:jetson
# Open problem (see the README, "Deployment"): the base's TensorRT Python bindings are built for the
# system Python 3.10 and TensorRT for Jetson is not on PyPI, while the daemon needs Python >= 3.11
# (tomllib). This image runs the daemon on Python 3.11 with ONNX Runtime; mount or build TensorRT
# bindings for 3.11 into the venv (TRT_WHEEL=path of such a wheel in the build context) to get the
# TensorRT backend; `status` says which backend runs and why. Not built or run on a Jetson yet.
ARG BASE=nvcr.io/nvidia/l4t-jetpack:r36.4.0
FROM ${BASE}
ARG TRT_WHEEL=""

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 DEBIAN_FRONTEND=noninteractive
RUN apt-get update && apt-get install -y --no-install-recommends software-properties-common \
    && add-apt-repository -y ppa:deadsnakes/ppa && apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev build-essential \
        libglib2.0-0 \
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
RUN python3.11 -m venv /opt/stainless/venv \
    && /opt/stainless/venv/bin/pip install ".[edge,metrics]" \
    && if [ -n "$TRT_WHEEL" ]; then /opt/stainless/venv/bin/pip install "/opt/stainless/src/$TRT_WHEEL" pycuda; fi \
    && install -d -o stainless -g stainless -m 0750 /var/lib/stainless /etc/stainless
COPY --chown=stainless:stainless deploy/configs/device.toml /etc/stainless/device.toml

USER stainless
VOLUME ["/var/lib/stainless", "/etc/stainless"]
EXPOSE 5556 5557 9464
ENTRYPOINT ["/opt/stainless/venv/bin/stainless-edge"]
CMD ["run", "--config", "/etc/stainless/device.toml"]
