// Package swarm owns every Docker API call the plugin makes, all through the
// Docker socket of the plugin's own node: whether this manager leads, the
// state of the swarm's tasks (for the task lifecycle), the services that use
// rotating secrets and their forced updates (for rotation), and the tasks
// of a service and an exec that reads a file in a container (for the
// helper-service bootstrap, package bootstrap).
//
// The socket is root on the host, so plugin/config.json mounts /dev/null in
// its place unless the operator points the docker-socket mount at
// /var/run/docker.sock.
package swarm
