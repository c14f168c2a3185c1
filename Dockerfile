# Troupe on a slim glibc base: the distribution (dist/troupe-VERSION/, with its own Java runtime) and
# nothing else. Build the distribution first, then the image:
#   mvn -B -DskipTests package
#   docker build -t troupe:0.1.0-SNAPSHOT .
#   docker run --rm troupe:0.1.0-SNAPSHOT train --model tiny --steps 5 --layout 1x1
# A cluster node: docker run --network host -v /data/runs:/data/runs troupe:... node --config /opt/troupe/conf/multi-host.conf
# (TROUPE_HOST = the address other hosts reach; ports and storage: docs/deploy.md).
FROM debian:12-slim
ARG TROUPE_VERSION=0.1.0-SNAPSHOT
# bash runs bin/troupe; the bundled OpenBLAS and JCuda carry their own native libraries.
RUN apt-get update && apt-get install -y --no-install-recommends bash ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 troupe && mkdir -p /data/runs && chown troupe /data/runs
COPY dist/troupe-${TROUPE_VERSION}/ /opt/troupe/
ENV PATH=/opt/troupe/bin:$PATH
USER troupe
WORKDIR /data
# 25520/tcp control plane (Artery), 40123/udp data plane (Aeron, troupe.transport.udp-port),
# 9464/tcp metrics (troupe.metrics.port).
EXPOSE 25520/tcp 40123/udp 9464/tcp 8558/tcp
ENTRYPOINT ["/opt/troupe/bin/troupe"]
CMD ["--help"]
