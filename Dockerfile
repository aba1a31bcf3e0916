# The image Airbyte runs: Airbyte's Python connector base image with this package installed.
FROM docker.io/airbyte/python-connector-base:4.0.2@sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73

WORKDIR /airbyte/integration_code
COPY setup.py README.md ./
COPY source_usage ./source_usage
COPY schemas ./schemas
# source_usage/schemas is a symlink to ../schemas in the repository; give the image the real files.
RUN rm -f source_usage/schemas && cp -r schemas source_usage/schemas \
    && pip install --no-cache-dir . \
    && rm -rf /airbyte/integration_code/build

ENV AIRBYTE_ENTRYPOINT="source-usage"
ENTRYPOINT ["source-usage"]

LABEL io.airbyte.name=airbyte/source-usage
LABEL io.airbyte.version=0.1.0
