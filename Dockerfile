# The tileclass image for workers, the CLI and migrations. PyPI's Linux torch wheels are CUDA builds, so this
# image runs on NVIDIA GPUs (with the NVIDIA container toolkit) and falls back to the CPU elsewhere.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /app

# torch first, in its own layer: it is by far the largest and changes least often.
RUN pip install "torch>=2.6,<=2.14.1" "torchvision<=0.29.1"

COPY pyproject.toml README.md ./
COPY core ./core
COPY model ./model
COPY producer ./producer
COPY worker ./worker
COPY api ./api
RUN pip install ".[ml,raster,serve,flower]"

RUN useradd --create-home tileclass && mkdir -p /models /tiles && chown tileclass /models
USER tileclass
CMD ["tileclass", "--help"]
