"""Can the compute nodes see the artifacts folder? Checked at submit time, before anything is queued.

A job on a node reads its spec from, and writes everything to, its run folder under the artifacts root, and
Slurm writes the job's own output there too. If the node cannot see that folder the job dies before sptui
runs, with no log anywhere. So at submit time: when the partition's nodes include machines other than this
one, the artifacts folder must not be on storage that only this machine has (tmpfs, /tmp, a local disk).

A local disk that this machine exports to the nodes at the same path (a head node serving /home over NFS)
is fine but cannot be told apart from here: `check_shared = false` in [slurm] says so.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from sptui.errors import SptuiError
from sptui.slurm import slurmctl

# network and cluster file systems: every node mounting them sees the same files
SHARED_TYPES = {"nfs", "nfs4", "lustre", "gpfs", "beegfs", "cifs", "smb3", "smbfs", "ceph", "fuse.ceph", "cephfs",
                "glusterfs", "fuse.glusterfs", "panfs", "wekafs", "afs", "orangefs", "pvfs2", "fuse.juicefs",
                "fuse.sshfs", "9p", "virtiofs", "quobyte", "fuse.quobyte", "dvs", "fuse.weka"}
# never seen by another machine
PRIVATE_TYPES = {"tmpfs", "ramfs", "overlay", "squashfs", "devtmpfs"}
PRIVATE_PLACES = ("/tmp", "/var/tmp", "/dev/shm", "/run")


def mount_of(path: Path) -> tuple[str, str]:
    """(mount point, file system type) of the mount holding `path`, from /proc/self/mountinfo."""
    path = Path(os.path.realpath(path))
    best = ("/", "unknown")
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return best
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        point = fields[4].replace("\\040", " ")
        inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, right.split()[0])
    return best


def this_machine() -> set[str]:
    names = {socket.gethostname(), socket.gethostname().split(".")[0], "localhost"}
    try:
        names.add(socket.getfqdn())
    except OSError:
        pass
    return names


def where_private(path: Path) -> str | None:
    """Why `path` is certainly private to this machine (None when it may be shared)."""
    real = os.path.realpath(path)
    point, fstype = mount_of(Path(real))
    if fstype in SHARED_TYPES:
        return None
    for place in PRIVATE_PLACES:
        if real == place or real.startswith(place + "/"):
            return f"is under {place}, which every machine has its own of"
    if fstype in PRIVATE_TYPES:
        return f"is on {fstype} (mounted at {point}), which only this machine has"
    return f"is on a local {fstype} file system (mounted at {point}), not a network file system"


def check_shared(root: Path, partition: str | None) -> None:
    """Raise one clear line when compute nodes of `partition` other than this machine cannot see `root`."""
    name, nodes = slurmctl.partition_nodes(partition)
    here = this_machine()
    others = [n for n in nodes if n not in here]
    if not others:
        return  # every node of the partition is this machine: its own disks are fine
    why = where_private(root)
    if why is None:
        return
    shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
    raise SptuiError(f"the artifacts folder {root} {why}; partition {name} runs jobs on {shown}, which cannot see it. "
                     "Use --artifacts on storage shared with the compute nodes (NFS, Lustre, GPFS, ...), or set "
                     "check_shared = false in [slurm] if this machine exports it to them at the same path")
