#!/bin/sh
# Asterisk container entrypoint: fill in what manager.conf cannot hold in the image, then exec
# the command (asterisk -f -U asterisk).
#
# The project's manager.conf (config/asterisk/manager.conf) binds AMI to loopback and permits
# 127.0.0.1 only, with a placeholder secret: right beside the daemon, wrong across containers.
# Appending to its sections ([name](+)) keeps the file as shipped and overrides three things:
# bind on every address, also permit $AMI_PERMIT (the compose network), the secret from
# $DIALLER_AMI_SECRET. Rebuilt from the pristine copy at every start (restarts stay idempotent).
# Likewise extensions.conf gets the FastAGI secret ($DIALLER_AGI_SECRET) in its [globals].
set -eu

: "${DIALLER_AMI_SECRET:?set DIALLER_AMI_SECRET (the AMI secret the dialler logs in with)}"
: "${DIALLER_AGI_SECRET:?set DIALLER_AGI_SECRET (the FastAGI secret the dialplan passes)}"
: "${AMI_PERMIT:?set AMI_PERMIT (the network allowed to reach AMI, e.g. 172.28.0.0/24)}"
case "$DIALLER_AMI_SECRET" in
  *";"*|*"
"*) echo "asterisk-entrypoint: DIALLER_AMI_SECRET must be one line without ';'" >&2; exit 2 ;;
esac

cp /etc/asterisk/manager.conf.dist /etc/asterisk/manager.conf
cat >> /etc/asterisk/manager.conf <<CONF

; ---- added by the container entrypoint (docker/asterisk/entrypoint.sh) ----
[general](+)
bindaddr = 0.0.0.0

[dialler](+)
secret = ${DIALLER_AMI_SECRET}
permit = ${AMI_PERMIT}
CONF
chown root:asterisk /etc/asterisk/manager.conf
chmod 0640 /etc/asterisk/manager.conf

# The FastAGI secret (agi/dialler.conf passes ${DIALLER_AGI_SECRET} on every attach).
case "$DIALLER_AGI_SECRET" in
  *[!A-Za-z0-9_-]*) echo "asterisk-entrypoint: DIALLER_AGI_SECRET must be letters, digits, - or _" >&2; exit 2 ;;
esac
cp /etc/asterisk/extensions.conf.dist /etc/asterisk/extensions.conf
cat >> /etc/asterisk/extensions.conf <<CONF

; ---- added by the container entrypoint (docker/asterisk/entrypoint.sh) ----
[globals](+)
DIALLER_AGI_SECRET=${DIALLER_AGI_SECRET}
CONF
chown root:asterisk /etc/asterisk/extensions.conf
chmod 0640 /etc/asterisk/extensions.conf

exec "$@"
