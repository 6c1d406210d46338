# stainless-edge for x86-64 CPUs: ONNX Runtime CPU and OpenVINO (bf16/int8 on AMX CPUs), Prometheus.
#   docker build -f deploy/containers/cpu.Dockerfile -t stainless-edge:cpu .
#   docker run --rm --device /dev/stainless-led --device /dev/video0 --group-add dialout --group-add video \
#     -v /etc/stainless:/etc/stainless -v /var/lib/stainless:/var/lib/stainless \
#     -p 5556:5556 -p 127.0.0.1:5557:5557 stainless-edge:cpu
# The config, calibration, keys and trusted public key come from the host's /etc/stainless; models,
# engines and the spool live in /var/lib/stainless (both volumes, owned by uid 990 = stainless).
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
# OpenCV (headless) needs glib; nothing else of the system is used.
RUN apt-get update && apt-get install -y --no-install-recommends libglib2.0-0 && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 990 stainless \
    && useradd --system --uid 990 --gid stainless --groups dialout,video --no-create-home \
       --home-dir /var/lib/stainless --shell /usr/sbin/nologin stainless

# Only the device runtime's code: the simulator and the host side stay out of the image.
WORKDIR /opt/stainless/src
COPY pyproject.toml README.md ./
COPY core core
COPY firmware_bridge firmware_bridge
COPY edge edge
RUN python -m venv /opt/stainless/venv \
    && /opt/stainless/venv/bin/pip install ".[edge,openvino,metrics]" \
    && install -d -o stainless -g stainless -m 0750 /var/lib/stainless /etc/stainless
COPY --chown=stainless:stainless deploy/configs/device.toml /etc/stainless/device.toml

USER stainless
VOLUME ["/var/lib/stainless", "/etc/stainless"]
EXPOSE 5556 5557 9464
ENTRYPOINT ["/opt/stainless/venv/bin/stainless-edge"]
CMD ["run", "--config", "/etc/stainless/device.toml"]
