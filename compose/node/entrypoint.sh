#!/bin/sh
# A lab machine: sshd (with the host key labctl provisioned) in front of a Docker engine.
# A killed engine leaves pid files behind; a restart must not trip on them.
set -e
rm -f /var/run/docker.pid /run/docker/containerd/containerd.pid /run/sshd.pid
mkdir -p /run/sshd
# sshd's own defaults otherwise, MaxSessions 10 included: labctl must live within what a
# stock machine allows.
/usr/sbin/sshd -e -o HostKey=/etc/ssh/ssh_host_ed25519_key -o PasswordAuthentication=no
exec dockerd --host unix:///var/run/docker.sock
