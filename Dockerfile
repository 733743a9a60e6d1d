# The plugin's root filesystem: the static binary and a CA bundle, nothing
# else. It starts FROM scratch over a binary built beforehand (make build), so
# it builds with no registry at all; `make plugin` exports it to plugin/rootfs.
FROM scratch
COPY bin/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY bin/swarmvault /swarmvault
ENTRYPOINT ["/swarmvault"]
