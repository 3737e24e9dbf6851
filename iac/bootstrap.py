"""Boot scripts of the EC2 nodes (NATS, Cassandra, the hub). Pure text; no Pulumi.

A node's user data never changes after it is created: it only mounts the data volume and
copies the node's files out of SSM Parameter Store, where every rendered config and the
software setup script live. Changing a config therefore updates a parameter in place and
restarts nothing; docs/operations.md ("Rolling a cell") applies it one node at a time.

Parameter names are the files' paths under a prefix: the parameter
``/chorus/prod/us-east/nats/nats-0/etc/nats/nats.conf`` becomes ``/etc/nats/nats.conf`` on the
node ``nats-0``.
"""

from __future__ import annotations

from dataclasses import dataclass

DATA_DEVICE = "/dev/sdf"
DATA_MOUNT = "/data"


@dataclass(frozen=True)
class NodePaths:
    """SSM prefixes of one node: files shared by its role, and its own."""

    common: str
    node: str


def parameter_prefix(stack: str, region: str, role: str) -> str:
    """``/chorus/<stack>/<region>/<role>``: everything a role's nodes read in one region."""
    return f"/chorus/{stack}/{region}/{role}"


def common_prefix(stack: str, region: str, role: str) -> str:
    """Files every node of ``role`` in ``region`` shares (setup script, TLS material)."""
    return f"{parameter_prefix(stack, region, role)}/common"


def node_paths(stack: str, region: str, role: str, node: str) -> NodePaths:
    return NodePaths(common=common_prefix(stack, region, role),
                     node=f"{parameter_prefix(stack, region, role)}/{node}")


# Writes each parameter under the given prefixes to the path its name ends with, atomically,
# keys and certificates readable by root only until setup.sh hands them to the service user.
_SYNC = r"""#!/bin/bash
set -euo pipefail
for prefix in "$@"; do
  aws ssm get-parameters-by-path --path "$prefix" --recursive --with-decryption \
      --output json --query 'Parameters[].[Name,Value]' |
  python3 -c '
import json, os, sys
prefix = sys.argv[1].rstrip("/")
for name, value in json.load(sys.stdin):
    path = name[len(prefix):]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".new", "w") as f:
        f.write(value)
    os.chmod(path + ".new", 0o600 if "/tls/" in path else 0o644)
    os.replace(path + ".new", path)
' "$prefix"
done
"""


def user_data(role: str, aws_region: str, paths: NodePaths, *, data_volume: bool) -> str:
    """The node's cloud-init script: mount the data volume, fetch its files, run setup.sh."""
    mount = ""
    if data_volume:
        # Amazon Linux's udev rules give the NVMe device of the volume attached as /dev/sdf
        # that name. The attachment happens after boot starts, so wait for it.
        mount = f"""
for _ in $(seq 1 120); do [ -e {DATA_DEVICE} ] && break; sleep 5; done
[ -e {DATA_DEVICE} ] || {{ echo "data volume {DATA_DEVICE} never appeared" >&2; exit 1; }}
blkid {DATA_DEVICE} >/dev/null || mkfs.xfs -L chorus-data {DATA_DEVICE}
mkdir -p {DATA_MOUNT}
grep -q LABEL=chorus-data /etc/fstab ||
  echo "LABEL=chorus-data {DATA_MOUNT} xfs defaults,noatime,nofail 0 2" >> /etc/fstab
mount -a
"""
    return f"""#!/bin/bash
# Chorus {role} node. Stable on purpose: configs live in SSM under {paths.common} and
# {paths.node}; `chorus-node-refresh` re-applies them.
set -euo pipefail
export AWS_DEFAULT_REGION={aws_region}
cat > /usr/local/bin/chorus-node-sync <<'SYNC'
{_SYNC}SYNC
cat > /usr/local/bin/chorus-node-refresh <<'REFRESH'
#!/bin/bash
set -euo pipefail
export AWS_DEFAULT_REGION={aws_region}
/usr/local/bin/chorus-node-sync {paths.common} {paths.node}
bash /opt/chorus/setup.sh
REFRESH
chmod 0755 /usr/local/bin/chorus-node-sync /usr/local/bin/chorus-node-refresh
{mount}
/usr/local/bin/chorus-node-refresh
"""


def nats_setup(version: str) -> str:
    """Installs nats-server ``version`` (checksum-verified) and runs /etc/nats/nats.conf.

    Idempotent: run again after a config change; it does not restart a running server
    (``systemctl reload nats`` applies a config, ``restart`` a new binary).
    """
    v = version.removeprefix("v")
    tarball = f"nats-server-v{v}-linux-amd64"
    url = f"https://github.com/nats-io/nats-server/releases/download/v{v}"
    return f"""#!/bin/bash
set -euo pipefail
if ! /usr/local/bin/nats-server --version 2>/dev/null | grep -q "v{v}$"; then
  cd /tmp
  curl -fsSLO {url}/{tarball}.tar.gz
  curl -fsSL {url}/SHA256SUMS | grep " {tarball}.tar.gz$" | sha256sum -c -
  tar xzf {tarball}.tar.gz
  install -m 0755 {tarball}/nats-server /usr/local/bin/nats-server
fi
id nats >/dev/null 2>&1 || useradd --system --no-create-home --shell /sbin/nologin nats
install -d -o nats -g nats {DATA_MOUNT}/jetstream
chown -R nats:nats /etc/nats
cat > /etc/systemd/system/nats.service <<'UNIT'
[Unit]
Description=NATS server (Chorus)
After=network-online.target
Wants=network-online.target
[Service]
User=nats
ExecStart=/usr/local/bin/nats-server -c /etc/nats/nats.conf
ExecReload=/bin/kill -HUP $MAINPID
Restart=always
RestartSec=2
LimitNOFILE=1048576
# Lets JetStream flush and step down as leader before the process ends.
KillSignal=SIGTERM
TimeoutStopSec=60
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now nats
"""


def cassandra_setup(version: str, heap_mib: int) -> str:
    """Installs Apache Cassandra ``version`` from the Apache archive on Java 17 and runs it
    with /etc/cassandra (cassandra.yaml and cassandra-rackdc.properties come from SSM)."""
    url = f"https://archive.apache.org/dist/cassandra/{version}/apache-cassandra-{version}-bin.tar.gz"
    new_gen = max(heap_mib // 8, 256)
    return f"""#!/bin/bash
set -euo pipefail
dnf install -y -q java-17-amazon-corretto-headless
if [ ! -x /opt/cassandra-{version}/bin/cassandra ]; then
  cd /tmp
  curl -fsSLo cassandra.tar.gz {url}
  echo "$(curl -fsSL {url}.sha256 | cut -d' ' -f1)  cassandra.tar.gz" | sha256sum -c -
  tar xzf cassandra.tar.gz -C /opt
  mv /opt/apache-cassandra-{version} /opt/cassandra-{version}
fi
ln -sfn /opt/cassandra-{version} /opt/cassandra
id cassandra >/dev/null 2>&1 || useradd --system --home-dir {DATA_MOUNT}/cassandra cassandra
# The tarball's conf/ supplies the JVM options (jvm17-server.options) and logging; the two
# files rendered by iac/ stay as SSM wrote them.
find /opt/cassandra/conf -maxdepth 1 -type f ! -name cassandra.yaml \\
    ! -name cassandra-rackdc.properties -exec cp {{}} /etc/cassandra/ \\;
install -d -o cassandra -g cassandra {DATA_MOUNT}/cassandra /var/log/cassandra
chown -R cassandra:cassandra /etc/cassandra /opt/cassandra-{version}
cat > /etc/sysctl.d/60-cassandra.conf <<'SYSCTL'
vm.max_map_count = 1048575
vm.swappiness = 1
SYSCTL
sysctl --system >/dev/null
cat > /etc/systemd/system/cassandra.service <<'UNIT'
[Unit]
Description=Apache Cassandra (Chorus)
After=network-online.target
Wants=network-online.target
[Service]
User=cassandra
Environment=CASSANDRA_CONF=/etc/cassandra CASSANDRA_LOG_DIR=/var/log/cassandra
Environment=MAX_HEAP_SIZE={heap_mib}M HEAP_NEWSIZE={new_gen}M
ExecStart=/opt/cassandra/bin/cassandra -f
Restart=on-failure
RestartSec=10
LimitNOFILE=1048576
LimitMEMLOCK=infinity
LimitNPROC=32768
TimeoutStopSec=120
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now cassandra
"""
