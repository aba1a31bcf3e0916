# The image Airbyte runs: this package in a virtualenv on top of Airbyte's Python connector base image.
#
#   make image                              FROM the base that metadata.yaml pins (pulled from Docker Hub)
#   make image BASE_IMAGE=<image>           FROM another base, e.g. the one scripts/local-base-image.sh
#                                           builds offline from Debian's packages
#
# The base must provide Python 3.10-3.12 as `python` on PATH and a non-root user to run as (Airbyte's
# runs as `airbyte`, uid 1000): the final stage sets no USER, so the connector runs as the base's user.
ARG BASE_IMAGE=docker.io/airbyte/python-connector-base:4.0.2@sha256:9fdb1888c4264cf6fee473649ecb593f56f58e5d0096a87ee0b231777e2e3e73

# Build stage: installs the package and its dependencies into a virtualenv; the sources, setup.py and
# pip's build files stay behind in this stage.
FROM ${BASE_IMAGE} AS build
USER root
WORKDIR /build
# The dependencies first, in a layer of their own that only a change to setup.py rebuilds (a stub package
# stands in for ours). The test suites that some of them ship (pandas, numpy...: ~60 MB) are left out.
COPY setup.py ./
RUN python -m venv --without-pip /airbyte/integration_code/venv \
    && mkdir source_usage && touch source_usage/__init__.py \
    && python -m pip --python /airbyte/integration_code/venv/bin/python install --no-cache-dir \
        --disable-pip-version-check --no-warn-script-location . \
    && rm -rf source_usage build *.egg-info \
    && find /airbyte/integration_code/venv/lib -type d -name tests -prune -exec rm -rf {} +
# Then the package itself. source_usage/schemas is a symlink to ../schemas: it resolves here, and the
# wheel gets the real files.
COPY README.md ./
COPY schemas ./schemas
COPY source_usage ./source_usage
RUN python -m pip --python /airbyte/integration_code/venv/bin/python install --no-cache-dir \
        --disable-pip-version-check --no-warn-script-location --no-deps --force-reinstall . \
    && /airbyte/integration_code/venv/bin/source-usage spec > /dev/null

# Final stage: the base image plus the virtualenv, owned by root (read-only for the user that runs it).
FROM ${BASE_IMAGE}
COPY --from=build /airbyte/integration_code/venv /airbyte/integration_code/venv
# The virtualenv comes first on PATH: `source-usage` is its console script (Airbyte runs $AIRBYTE_ENTRYPOINT).
ENV PATH="/airbyte/integration_code/venv/bin:${PATH}" \
    AIRBYTE_ENTRYPOINT="source-usage"
ENTRYPOINT ["source-usage"]

# Must agree with metadata.yaml (dockerRepository, dockerImageTag) and setup.py (VERSION): checked by
# integration_tests/test_image.py (without Docker).
LABEL io.airbyte.name=airbyte/source-usage
LABEL io.airbyte.version=0.1.0
