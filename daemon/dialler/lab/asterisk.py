"""The lab's Asterisk 22: a Debian sid root file system (debootstrap), cached as a tarball,
run under chroot with the project's own dialplan (agi/) and PJSIP templates (config/asterisk/).

Several instances share the one root file system (`dialler lab up --asterisk-servers N`): each
has its own configuration directory, control socket directory, logs, astdb and spool
(`Instance`), and its own SIP, AMI and RTP ports; the binaries, modules and sounds are shared.

No mounts: the root file system already carries the device nodes Asterisk needs (debootstrap
creates /dev/null, /dev/urandom, ...), and Asterisk runs without /proc, so `lab down` never has
anything to unmount.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import LabError

ROOTFS_FORMAT = 1  # bump when the package list changes: a new cache file is built
PACKAGES = ("asterisk", "asterisk-modules", "asterisk-core-sounds-en-gsm")
DEFAULT_CACHE = Path("/var/cache/dialler-lab")
MIRROR = "http://deb.debian.org/debian"
ETC = "/etc/asterisk-lab"  # inside the root file system: only our configs, not the package's
FIRST = "lab"  # the first instance keeps the package's own run, log, lib and spool directories

# Modules the lab needs, loaded explicitly: faster and more predictable than autoload.
MODULES = (
    "res_sorcery_config.so",
    "res_sorcery_memory.so",
    "res_sorcery_astdb.so",
    "res_pjproject.so",
    "res_pjsip.so",
    "res_pjsip_session.so",
    "res_pjsip_sdp_rtp.so",
    "res_pjsip_caller_id.so",
    "res_pjsip_endpoint_identifier_ip.so",
    "res_pjsip_outbound_authenticator_digest.so",
    "res_pjsip_authenticator_digest.so",
    "res_pjsip_pubsub.so",
    "res_speech.so",
    "res_pjsip_rfc3326.so",
    "res_pjsip_nat.so",
    "res_pjsip_logger.so",
    "chan_pjsip.so",
    "res_rtp_asterisk.so",
    "res_timing_timerfd.so",
    "res_agi.so",
    "res_audiosocket.so",
    "app_audiosocket.so",
    "chan_audiosocket.so",
    "app_echo.so",
    "app_exec.so",  # TryExec: the dialplan's fallback when AudioSocket fails
    "app_playback.so",
    "app_stack.so",
    "app_userevent.so",
    "app_dial.so",
    "func_channel.so",
    "func_hangupcause.so",
    "func_callerid.so",
    "pbx_config.so",
    "codec_ulaw.so",
    "codec_alaw.so",
    "codec_gsm.so",
    "format_gsm.so",
    "format_wav.so",
    "format_pcm.so",
    "format_sln.so",
    "bridge_simple.so",
    "bridge_native_rtp.so",
    "res_musiconhold.so",
    "cel_pgsql.so",  # Asterisk's own record of each call, for recovery (docs/reliability.md)
)


@dataclass(frozen=True, slots=True)
class CelDatabase:
    """Where a lab Asterisk's `cel_pgsql` writes its CEL rows: the lab's PostgreSQL (trust
    authentication on loopback, no password), table `asterisk_cel` of the dialler's schema."""

    host: str
    port: int
    dbname: str
    user: str


@dataclass(frozen=True, slots=True)
class Instance:
    """Where one lab Asterisk keeps its files inside the shared root file system."""

    name: str
    etc: str  # configuration directory (asterisk.conf and the rest)
    run: str  # control socket and pid file: `asterisk -rx` finds the instance through it
    log: str
    db: str  # astdb (SQLite): never shared, two writers would lock each other out
    spool: str

    @property
    def conf(self) -> str:
        return f"{self.etc}/asterisk.conf"

    def private_dirs(self) -> tuple[str, ...]:
        """Directories this instance writes to (owned by the chroot's asterisk user)."""
        return (self.run, self.log, self.db, self.spool)


def instance(name: str) -> Instance:
    """The file layout of the lab Asterisk called `name` (`lab`, `lab-2`, ...)."""
    if name == FIRST:
        # As before several servers existed: a running first server is never disturbed.
        return Instance(
            name,
            ETC,
            "/var/run/asterisk",
            "/var/log/asterisk",
            "/var/lib/asterisk",
            "/var/spool/asterisk",
        )
    # /var/run is a symlink to /run inside the root: use /run so the host never resolves it.
    return Instance(
        name,
        f"/etc/asterisk-{name}",
        f"/run/asterisk-{name}",
        f"/var/log/asterisk-{name}",
        f"/var/lib/asterisk-{name}",
        f"/var/spool/asterisk-{name}",
    )


@dataclass(frozen=True, slots=True)
class AsteriskPorts:
    sip: int
    ami: int
    rtp_start: int
    rtp_end: int
    agi: int = 4573


def cache_tarball(cache_dir: Path = DEFAULT_CACHE) -> Path:
    return cache_dir / f"asterisk-sid-rootfs-v{ROOTFS_FORMAT}.tar"


def build_rootfs_tarball(cache_dir: Path = DEFAULT_CACHE, log: Path | None = None) -> Path:
    """Build (once) the Debian sid root file system with Asterisk and cache it as a tarball."""
    tarball = cache_tarball(cache_dir)
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        raise LabError("debootstrap is not installed (apt-get install debootstrap)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix="build-") as tmp:
        root = Path(tmp) / "root"
        cmd = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            "sid",
            str(root),
            MIRROR,
        ]
        _run(cmd, log)
        # Docs, man pages and locales are a third of the size and never read in the lab.
        for sub in ("usr/share/doc", "usr/share/man", "usr/share/locale", "var/cache/apt"):
            shutil.rmtree(root / sub, ignore_errors=True)
        partial = tarball.with_suffix(".tar.partial")
        _run(["tar", "-C", str(root), "-cf", str(partial), "."], log)
        partial.rename(tarball)  # atomic: a half-written cache is never reused
    return tarball


def extract_rootfs(tarball: Path, root: Path) -> None:
    """Unpack the cached root file system into the lab's state directory (once)."""
    if (root / "usr/sbin/asterisk").exists():
        return
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    _run(["tar", "-C", str(partial), "-xf", str(tarball)], None)
    partial.rename(root)


def render_configs(
    root: Path,
    project: Path,
    ports: AsteriskPorts,
    ami_user: str,
    ami_secret: str,
    agi_secret: str,
    carrier_host: str,
    carrier_port: int,
    where: Instance | None = None,
    cel: CelDatabase | None = None,
) -> None:
    """Write one lab Asterisk's configuration into its directory in the root file system."""
    where = where or instance(FIRST)
    etc = root / where.etc.lstrip("/")
    etc.mkdir(parents=True, exist_ok=True)
    _own_dirs(root, where)
    shutil.copy(project / "agi/dialler.conf", etc / "dialler.conf")
    shutil.copy(
        project / "config/asterisk/pjsip_dialler_templates.conf",
        etc / "pjsip_dialler_templates.conf",
    )
    files = {
        "asterisk.conf": f"""[directories]
astetcdir => {where.etc}
astmoddir => /usr/lib/x86_64-linux-gnu/asterisk/modules
astvarlibdir => /var/lib/asterisk
astdbdir => {where.db}
astkeydir => /var/lib/asterisk
astdatadir => /usr/share/asterisk
astagidir => /usr/share/asterisk/agi-bin
astspooldir => {where.spool}
astrundir => {where.run}
astlogdir => {where.log}
astsbindir => /usr/sbin

[options]
verbose = 0
debug = 0
highpriority = no
maxfiles = 8192
hideconnect = yes
""",
        "modules.conf": "[modules]\nautoload = no\n" + "".join(f"load = {m}\n" for m in MODULES),
        "logger.conf": "[general]\n[logfiles]\nmessages.log => notice,warning,error\n",
        # `timestampevents`: every event carries Asterisk's own clock (`Timestamp`), which the
        # attach benchmark and the abandon test measure from. The observer user (same secret)
        # is for those measurements: it also reads the dialplan's steps (`Newexten`), which
        # the daemon's user never needs.
        "manager.conf": f"""[general]
enabled = yes
bindaddr = 127.0.0.1
port = {ports.ami}
displayconnects = no
timestampevents = yes

[{ami_user}]
secret = {ami_secret}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = call,reporting,user
write = originate,call,reporting
eventfilter = Event: (Newchannel|Newstate|Hangup|OriginateResponse|UserEvent|FullyBooted|Shutdown)
writetimeout = 1000

[{observer_user(ami_user)}]
secret = {ami_secret}
deny = 0.0.0.0/0.0.0.0
permit = 127.0.0.1/255.255.255.255
read = call,dialplan
eventfilter = Event: (Newstate|Newexten|Hangup)
writetimeout = 1000
""",
        # No ICE/STUN: candidate gathering resolves host names for every call, which in a
        # chroot without DNS stalls Asterisk's threads and makes the carrier retransmit.
        "rtp.conf": f"[general]\nrtpstart = {ports.rtp_start}\nrtpend = {ports.rtp_end}\n"
        "icesupport = no\n",
        "pjsip.conf": f"""[global]
type = global
user_agent = {_user_agent(where)}

[transport-udp]
type = transport
protocol = udp
bind = 127.0.0.1:{ports.sip}

#include "pjsip_dialler_templates.conf"

[lab](dialler-endpoint)
aors = lab
media_address = {carrier_host}
bind_rtp_to_media_address = yes   ; RTP on loopback too, like everything in the lab

[lab](dialler-aor)
contact = sip:{carrier_host}:{carrier_port}
qualify_frequency = 0   ; the lab carrier is a SIPp scenario that only expects INVITEs

[lab-identify]
type = identify
endpoint = lab
match = {carrier_host}
""",
        "extensions.conf": """[general]
static = yes
writeprotect = yes

#include "dialler.conf"

[globals]
DIALLER_AGI=agi://127.0.0.1:{agi_port}
DIALLER_AGI_SECRET={agi_secret}

[dialler-inbound-reject]
exten => _X.,1,Hangup(21)
exten => _+X.,1,Hangup(21)
""".replace("{agi_port}", str(ports.agi)).replace("{agi_secret}", agi_secret),
        "musiconhold.conf": "[general]\n",
        "cdr.conf": "[general]\nenable = no\n",
        # CEL: the channel events recovery reads when no daemon saw a call end. `appname` is
        # the server's name: the table's `server` column defaults to it (docs/asterisk.md).
        "cel.conf": "[general]\nenable = yes\nevents = CHAN_START,ANSWER,HANGUP,CHAN_END\n"
        if cel is not None
        else "",
        "cel_pgsql.conf": f"""[global]
hostname = {cel.host}
port = {cel.port}
dbname = {cel.dbname}
user = {cel.user}
table = asterisk_cel
appname = {where.name}
usegmtime = yes
"""
        if cel is not None
        else "",
        # Present but empty, so Asterisk does not log an error for each at start.
        **{
            name: ""
            for name in (
                "indications.conf",
                "acl.conf",
                "udptl.conf",
                "ccss.conf",
                "features.conf",
                "pjproject.conf",
            )
        },
    }
    for name, text in files.items():
        (etc / name).write_text(text, encoding="utf-8")
    # Name resolution inside the chroot never leaves the machine: Asterisk looks up its own
    # host name, and a DNS query that times out would stall its call threads.
    hostname = socket.gethostname()
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost {hostname}\n::1 localhost\n")
    (root / "etc/resolv.conf").write_text("# dialler lab: no DNS inside the chroot\n")


def observer_user(ami_user: str) -> str:
    """The lab's read-only AMI user for measurements (`Newstate`, `Newexten`, `Hangup`, each
    with Asterisk's `Timestamp`); its secret is the daemon's AMI user's."""
    return f"{ami_user}-observer"


def _user_agent(where: Instance) -> str:
    # The first server's as it always was; the others name themselves in every request.
    return "dialler-lab-asterisk" if where.name == FIRST else f"dialler-lab-asterisk-{where.name}"


def _own_dirs(root: Path, where: Instance) -> None:
    """Create the instance's private directories, owned by the chroot's asterisk user (the
    package created the first instance's, some behind the root's absolute /var/run symlink,
    which the host must never follow)."""
    if where.name == FIRST:
        return
    uid, gid = _asterisk_ids(root)
    for sub in where.private_dirs():
        path = root / sub.lstrip("/")
        if not path.is_symlink() and not path.exists():
            path.mkdir(parents=True)
            os.chown(path, uid, gid)


def _asterisk_ids(root: Path) -> tuple[int, int]:
    """The asterisk user's uid and gid inside the root file system (its /etc/passwd)."""
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[0] == "asterisk":
            return int(fields[2]), int(fields[3])
    raise LabError(f"no asterisk user in {root / 'etc/passwd'}")


def start(root: Path, log_file: Path, where: Instance | None = None) -> int:
    """Start Asterisk in the foreground under chroot, detached from us; returns its pid."""
    where = where or instance(FIRST)
    cmd = [
        "chroot",
        str(root),
        "/usr/sbin/asterisk",
        "-f",
        "-C",
        where.conf,
        "-U",
        "asterisk",
        "-G",
        "asterisk",
    ]
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    return proc.pid


def cli(root: Path, command: str, timeout: float = 10.0, name: str = FIRST) -> str:
    """Run an Asterisk CLI command against a running lab Asterisk (asterisk -rx)."""
    conf = instance(name).conf
    cmd = ["chroot", str(root), "/usr/sbin/asterisk", "-C", conf, "-rx", command]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise LabError(f"asterisk -rx {command!r} failed: {proc.stderr.strip()[-300:]}")
    return proc.stdout


def version(root: Path) -> str:
    proc = subprocess.run(
        ["chroot", str(root), "/usr/sbin/asterisk", "-V"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip().removeprefix("Asterisk ").strip()


def _run(cmd: list[str], log: Path | None) -> None:
    if log is None:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        out = proc.stdout + proc.stderr
    else:
        with log.open("a") as fh:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True, check=False)
        out = log.read_text(errors="replace")
    if proc.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed (exit {proc.returncode}): {out.strip()[-500:]}")
