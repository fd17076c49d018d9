"""Lab OpenBao server: a real `bao server` with file storage and TLS, for tests and the demo."""

from lab.openbao.server import LabState, OpenBaoLab, OpenBaoLabError, find_bao

__all__ = ["LabState", "OpenBaoLab", "OpenBaoLabError", "find_bao"]
