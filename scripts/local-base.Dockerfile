# The second half of scripts/local-base-image.sh: turns the imported Debian root file system into a base
# image equivalent to Airbyte's python-connector-base for building our Dockerfile (Python 3.11 first on
# PATH, time zone UTC, WORKDIR /airbyte/integration_code, running as the non-root user airbyte, uid 1000).
# Needs no network: everything came from Debian's packages through debootstrap.
ARG ROOTFS_IMAGE
FROM ${ROOTFS_IMAGE}

# The CA bundle of the machine that built it: the package index may only be reachable through a proxy
# that this bundle trusts (Debian's pip reads /etc/ssl/certs/ca-certificates.crt).
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt

RUN ln -snf /usr/share/zoneinfo/Etc/UTC /etc/localtime && echo Etc/UTC > /etc/timezone \
    && python3 -m venv /opt/venv \
    && groupadd --gid 1000 airbyte \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/airbyte --shell /bin/bash airbyte \
    && mkdir -p /airbyte/integration_code \
    && chown -R airbyte:airbyte /airbyte

ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    TZ=Etc/UTC \
    PYTHONUNBUFFERED=1
WORKDIR /airbyte/integration_code
USER airbyte
