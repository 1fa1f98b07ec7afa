"""A real single-node Slurm cluster for tests: munge, MariaDB, slurmdbd, slurmctld and slurmd under one folder.

Debian's slurm-wlm runs here as root without systemd or cgroups (see the project's slurm-local notes).
Everything lives under `root`: keys, sockets, state, logs, the database; every daemon listens on a port
chosen free at start, so two clusters (two test sessions) never meet. Daemons are started as child
processes whose PIDs are recorded and stopped by PID, never by name.

Accounting (slurmdbd over MariaDB) is on, as on real clusters: `sacct` then knows how a job ended
(COMPLETED, CANCELLED, TIMEOUT, OUT_OF_MEMORY, NODE_FAIL) after it leaves `squeue`.

    cluster = SlurmCluster(tmp); cluster.start()      # raises ClusterUnavailable with the reason
    env = cluster.env                                # SLURM_CONF for every client
    cluster.stop()
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge", "slurmdbd", "mariadb-server"]
BINARIES = ["slurmctld", "slurmd", "slurmdbd", "sbatch", "squeue", "sacct", "scontrol", "munged", "mungekey",
            "mariadbd", "mariadb-install-db"]


class ClusterUnavailable(Exception):
    """Slurm cannot run here; the message says why (tests skip with it)."""


def _which(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None)


def install() -> None:
    """apt-get the Debian packages when they are missing and we are root; else say why not."""
    missing = [b for b in BINARIES if _which(b) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        raise ClusterUnavailable(f"Slurm is not installed ({', '.join(missing)} missing) and installing needs root")
    if shutil.which("apt-get") is None:
        raise ClusterUnavailable(f"Slurm is not installed ({', '.join(missing)} missing) and there is no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
    result = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES], env=env,
                            capture_output=True, text=True, timeout=900)
    still = [b for b in BINARIES if _which(b) is None]
    if still:
        raise ClusterUnavailable(f"apt-get could not install Slurm ({', '.join(still)} still missing): "
                                 f"{(result.stderr or result.stdout).strip()[-300:]}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_state(pid: int) -> str | None:
    """The state letter of /proc/PID/stat (None when gone); a zombie ('Z') is stopped."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2:].split()[0]


class SlurmCluster:
    def __init__(self, root: Path, cpus: int = 2, real_memory_mb: int | None = None):
        self.root = Path(root)
        self.cpus = cpus
        self.real_memory_mb = real_memory_mb
        self.node = socket.gethostname().split(".")[0]
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.ports = {name: free_port() for name in ("ctld", "slurmd", "dbd", "mysql")}
        self.conf = self.root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    # ------------------------------------------------------------ paths
    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.socket"

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    # ------------------------------------------------------------ start
    def start(self) -> None:
        if os.geteuid() != 0:
            raise ClusterUnavailable("the test cluster runs its daemons as root (SlurmUser=root); not root here")
        install()
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # the munge user must reach its socket
        try:
            self._start_munge()
            self._start_mariadb()
            self._write_configs()
            self._spawn("slurmdbd", [_which("slurmdbd"), "-D"])
            self._wait(self._dbd_up, 30, "slurmdbd to accept connections", "slurmdbd")
            self._spawn("slurmctld", [_which("slurmctld"), "-D", "-i"])
            self._wait(lambda: self._run(["scontrol", "ping"]).returncode == 0, 30, "slurmctld to answer", "slurmctld")
            self._spawn("slurmd", [_which("slurmd"), "-D"])
            self._wait(self._node_idle, 30, "the node to become idle", "slurmd")
            self._start_watchdog()
        except BaseException:
            self.stop()
            raise

    def _start_watchdog(self) -> None:
        """A small process that stops the daemons (by PID) if this process dies without calling stop()
        (a test run killed by a timeout must not leave slurmctld and MariaDB running)."""
        me = os.getpid()
        pids = " ".join(str(p.pid) for _, p in reversed(self.processes))
        script = (
            "import os, signal, sys, time\n"
            f"parent, pids = {me}, [int(p) for p in '{pids}'.split()]\n"
            "start = lambda pid: open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[19]\n"
            "mine = {p: start(p) for p in pids}\n"
            "parent_start = start(parent)\n"
            "def alive(pid, st):\n"
            "    try: return start(pid) == st\n"
            "    except OSError: return False\n"
            "while alive(parent, parent_start): time.sleep(1)\n"
            "for p, st in mine.items():\n"
            "    if alive(p, st): os.kill(p, signal.SIGTERM); time.sleep(1)\n"
        )
        self.watchdog = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def _spawn(self, name: str, argv: list[str], **kw) -> subprocess.Popen:
        out = open(self.root / f"{name}.stdout", "ab")
        process = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True, **kw)
        out.close()
        self.processes.append((name, process))
        return process

    def _run(self, argv: list[str], timeout: float = 20) -> subprocess.CompletedProcess:
        return subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)

    def _wait(self, ok, timeout: float, what: str, log: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self.processes:
                if p.poll() is not None:
                    raise ClusterUnavailable(f"{name} exited with status {p.returncode} while waiting for {what}: "
                                             f"{self.log(name)[-600:]} {(self.root / f'{name}.stdout').read_text()[-400:]}")
            try:
                if ok():
                    return
            except (OSError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.1)
        raise ClusterUnavailable(f"timed out after {timeout}s waiting for {what}: {self.log(log)[-800:]}")

    def _start_munge(self) -> None:
        munge = pwd.getpwnam("munge")
        folder = self.root / "munge"
        folder.mkdir(exist_ok=True)
        os.chmod(folder, 0o755)  # munged wants its socket folder searchable by all (clients connect to it)
        key = folder / "munge.key"
        subprocess.run([_which("mungekey"), "--create", f"--keyfile={key}"], check=True, capture_output=True)
        for path in (folder, key):
            os.chown(path, munge.pw_uid, munge.pw_gid)
        argv = [_which("munged"), "--foreground", f"--socket={self.munge_socket}", f"--key-file={key}",
                f"--pid-file={folder / 'munged.pid'}", f"--seed-file={folder / 'munged.seed'}",
                f"--log-file={folder / 'munged.log'}"]
        self._spawn("munged", ["setpriv", f"--reuid={munge.pw_uid}", f"--regid={munge.pw_gid}", "--init-groups", *argv])
        self._wait(lambda: self.munge_socket.exists(), 15, "munged's socket", "munge/munged")

    def _start_mariadb(self) -> None:
        data = self.root / "mysql"
        result = subprocess.run([_which("mariadb-install-db"), "--no-defaults", f"--datadir={data}", "--user=root",
                                 "--auth-root-authentication-method=normal", "--skip-test-db"],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise ClusterUnavailable(f"mariadb-install-db failed: {result.stderr.strip()[-400:]}")
        self._spawn("mariadbd", [_which("mariadbd"), "--no-defaults", f"--datadir={data}", "--user=root",
                                 "--bind-address=127.0.0.1", f"--port={self.ports['mysql']}",
                                 f"--socket={self.root / 'mysql.sock'}", f"--pid-file={self.root / 'mysql.pid'}",
                                 "--skip-grant-tables", "--skip-name-resolve", "--innodb-buffer-pool-size=32M",
                                 "--innodb-log-file-size=8M", f"--log-error={self.root / 'mariadbd.log'}"])

        def up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.ports["mysql"])) == 0

        self._wait(up, 60, "MariaDB", "mariadbd")

    def _dbd_up(self) -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.ports["dbd"])) == 0

    def _node_idle(self) -> bool:
        result = self._run(["sinfo", "-h", "-n", self.node, "-o", "%T"])
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def _write_configs(self) -> None:
        r = self.root
        for d in ("state", "spool"):
            (r / d).mkdir(exist_ok=True)
        memory = self.real_memory_mb or int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.9)
        auth = f"AuthType=auth/munge\nAuthInfo=socket={self.munge_socket}\n"
        self.conf.write_text(
            "ClusterName=ci\nSlurmctldHost=localhost\nSlurmUser=root\nSlurmdUser=root\n" + auth +
            f"SlurmctldPort={self.ports['ctld']}\nSlurmdPort={self.ports['slurmd']}\n"
            f"StateSaveLocation={r / 'state'}\nSlurmdSpoolDir={r / 'spool'}\n"
            f"SlurmctldPidFile={r / 'slurmctld.pid'}\nSlurmdPidFile={r / 'slurmd.pid'}\n"
            f"SlurmctldLogFile={r / 'slurmctld.log'}\nSlurmdLogFile={r / 'slurmd.log'}\n"
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nJobAcctGatherType=jobacct_gather/none\n"
            f"AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\n"
            f"AccountingStoragePort={self.ports['dbd']}\nAccountingStoragePass={self.munge_socket}\n"
            "JobCompType=jobcomp/none\n"
            "MpiDefault=none\nSwitchType=switch/none\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n"
            "ReturnToService=2\nKillWait=2\nMinJobAge=60\nMailProg=/bin/true\n"
            "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0\n"
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory={memory} State=UNKNOWN\n"
            # a node that is not this machine and never answers: the partition where the artifacts folder must
            # be on shared storage (the shared-file-system check is tested against it)
            "NodeName=far-node NodeAddr=127.0.0.2 CPUs=1 RealMemory=100 State=FUTURE\n"
            f"PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP\n"
            "PartitionName=far Nodes=far-node MaxTime=INFINITE State=UP\n"
        )
        dbd = r / "slurmdbd.conf"
        dbd.write_text(
            auth + f"DbdHost=localhost\nDbdPort={self.ports['dbd']}\nSlurmUser=root\n"
            f"PidFile={r / 'slurmdbd.pid'}\nLogFile={r / 'slurmdbd.log'}\n"
            f"StorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\nStoragePort={self.ports['mysql']}\n"
            "StorageUser=root\nStorageLoc=slurm_acct_db\n"
        )
        os.chmod(dbd, 0o600)

    # ------------------------------------------------------------ stop
    def cancel_all(self, timeout: float = 30) -> None:
        """scancel every job of this cluster and wait (bounded) until squeue shows none."""
        self._run(["scancel", "--user", pwd.getpwuid(os.getuid()).pw_name])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self._run(["squeue", "-h", "-o", "%i"])
            if result.returncode == 0 and not result.stdout.strip():
                return
            time.sleep(0.25)

    def stop(self) -> None:
        """SIGTERM each daemon by its recorded PID (the reverse of start order), then wait; SIGKILL stragglers."""
        watchdog = getattr(self, "watchdog", None)
        if watchdog is not None and watchdog.poll() is None:
            watchdog.kill()
            watchdog.wait(timeout=5)
        if any(name == "slurmctld" and p.poll() is None for name, p in self.processes):
            try:
                self.cancel_all(timeout=20)  # no job step outlives the cluster
            except (OSError, subprocess.TimeoutExpired):
                pass
        for _name, process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.kill(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        self.processes.clear()

    def stopped(self) -> bool:
        return all(process_state(p.pid) in (None, "Z") for _, p in self.processes)
