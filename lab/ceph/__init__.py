"""Lab Ceph: a real single-node cluster from Debian's packages, and pool operations through librados."""

from lab.ceph.cluster import LabCeph
from lab.ceph.errors import CephCommandError, LabCephError, PoolNotFoundError
from lab.ceph.pools import CephPools

__all__ = ["CephCommandError", "CephPools", "LabCeph", "LabCephError", "PoolNotFoundError"]
