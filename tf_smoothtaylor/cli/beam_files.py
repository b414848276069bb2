"""Apache Beam, imported quietly, and its file systems with the interface of the run
directory's ``LocalFiles``: how a Beam pipeline (``cli.beam``) writes and reads a
run's files anywhere Beam reaches (local paths, ``gs://``, ``s3://``, ``hdfs://``, ...)."""

import logging
import os
import uuid
from typing import List

logging.getLogger("apache_beam").setLevel(logging.WARNING)   # import-time INFO chatter
_ROOT_LEVEL = logging.getLogger().level
logging.getLogger().setLevel(logging.ERROR)   # optional cloud clients' warnings at import
try:
    import apache_beam as beam  # noqa: F401  (cli.beam's, imported here once, quietly)
    from apache_beam.io.filesystems import FileSystems
except ImportError as error:          # pragma: no cover - exercised without the extra
    raise ImportError("tf_smoothtaylor.cli.beam needs Apache Beam: pip install "
                      "'tf-smoothtaylor[beam]'") from error
finally:
    logging.getLogger().setLevel(_ROOT_LEVEL)

# Stores where an object is replaced whole when its upload completes: written in place.
OBJECT_STORES = ("gs", "s3", "azfs")


class BeamFiles:
    """Beam's file systems (local paths, ``gs://``, ``s3://``, ``hdfs://``, ...) with
    the interface of ``runs.LocalFiles``.

    A file is never seen half-written, and may be written again (``run.json`` each
    run, a record when it is scored): on an object store the object is uploaded in
    place (one operation; the store makes it visible whole, so a temporary name and a
    rename, which is a copy and a delete there, would gain nothing); elsewhere it goes
    to a temporary name and is renamed onto the file (atomic on POSIX); where a rename
    does not replace an existing file (HDFS), the old file is deleted first.
    """

    join = staticmethod(FileSystems.join)

    @staticmethod
    def makedirs(path: str) -> None:
        if not FileSystems.exists(path):
            try:
                FileSystems.mkdirs(path)
            except IOError:
                if not FileSystems.exists(path):    # another worker made it meanwhile
                    raise

    @classmethod
    def check_writable(cls, path: str) -> None:
        probe = FileSystems.join(path, f".probe-{uuid.uuid4().hex}")
        cls.write(probe, b"")
        FileSystems.delete([probe])

    @staticmethod
    def write(path: str, data: bytes) -> None:
        if FileSystems.get_scheme(path) in OBJECT_STORES:
            with FileSystems.create(path) as handle:
                handle.write(data)
            return
        directory, name = os.path.split(path) if "://" not in path else path.rsplit("/", 1)
        temporary = FileSystems.join(directory, f".tmp-{uuid.uuid4().hex}-{name}")
        with FileSystems.create(temporary) as handle:
            handle.write(data)
        try:
            FileSystems.rename([temporary], [path])
        except IOError:
            if not FileSystems.exists(path):
                FileSystems.delete([temporary])
                raise
            FileSystems.delete([path])          # a rename that does not overwrite
            FileSystems.rename([temporary], [path])

    @staticmethod
    def read(path: str) -> bytes:
        with FileSystems.open(path) as handle:
            return handle.read()

    exists = staticmethod(FileSystems.exists)

    @staticmethod
    def glob(pattern: str) -> List[str]:
        return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)

    @staticmethod
    def remove(path: str) -> None:
        FileSystems.delete([path])
