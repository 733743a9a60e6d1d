# The plugin's root filesystem: the static binary, nothing else (Mozilla's
# CA roots are compiled into it, see main.go). It starts FROM scratch over a binary
# built beforehand (make build), so it builds with no registry at all; make
# exports it to bin/plugin-<arch>/rootfs, next to plugin/config.json.
FROM scratch
ARG BIN=bin/swarmvault
COPY ${BIN} /swarmvault
ENTRYPOINT ["/swarmvault"]
